// WeChat's callback APIs (`success` / `fail`) as promises. Called as a method
// of `wx`, as WeChat's own APIs expect.
function call(wx, name, options) {
  return new Promise((resolve, reject) => {
    wx[name]({
      ...options,
      success: resolve,
      fail: reject,
    });
  });
}

module.exports = { call };
