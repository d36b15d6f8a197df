// Where the mini program finds wxpay: the one place to change per deployment.
// WeChat only lets a released mini program call https origins listed under
// 开发管理 → 开发设置 → 服务器域名 → request合法域名 (see README.md).
module.exports = {
  // A deployment's PUBLIC_BASE_URL, without a trailing slash, e.g.
  // 'https://pay.example.com'. The default is `cargo run -p stack` on this
  // machine, reachable from WeChat DevTools with 不校验合法域名 ticked.
  baseUrl: 'http://127.0.0.1:8080',
};
