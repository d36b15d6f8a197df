//! The few pages a browser sees: WeChat's OAuth error and consent pages, the
//! H5 cashier, and generated avatars. Every interpolated value is escaped.

use std::fmt::Write;

use actix_web::HttpResponse;
use actix_web::http::header;

use crate::config::SandboxUser;

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{margin:0;font-family:-apple-system,'PingFang SC','Microsoft YaHei',sans-serif;background:#ededed;color:#191919}\
main{max-width:28rem;margin:0 auto;padding:1.5rem 1rem}\
h1{font-size:1.25rem;font-weight:600;margin:.5rem 0 1rem}\
p{line-height:1.6}\
.card{background:#fff;border-radius:.5rem;padding:1rem;margin:1rem 0}\
ul{list-style:none;margin:0;padding:0}\
li{display:flex;align-items:center;gap:.75rem;padding:.75rem 0;border-bottom:1px solid #eee}\
li:last-child{border-bottom:0}\
li img{width:3rem;height:3rem;border-radius:.25rem}\
.who{flex:1;min-width:0}\
.who strong{display:block;overflow-wrap:anywhere}\
.who span{font-size:.875rem;color:#767676}\
.btn{display:inline-block;min-width:5rem;padding:.625rem 1rem;border-radius:.375rem;border:0;\
font-size:1rem;text-align:center;text-decoration:none;cursor:pointer;background:#07c160;color:#fff}\
.btn.secondary{background:#f2f2f2;color:#06ae56}\
.btn.block{display:block;width:100%;box-sizing:border-box;margin-top:1rem}\
.btn:focus-visible{outline:3px solid #1a73e8;outline-offset:2px}\
.amount{font-size:2rem;font-weight:600;text-align:center;margin:.5rem 0}\
.muted{color:#767676;font-size:.875rem}";

fn page(title: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

/// WeChat shows OAuth parameter errors in its browser with HTTP 200.
pub(crate) fn error_page(message: &str) -> HttpResponse {
    page(
        "微信网页授权",
        &format!(
            "<h1>Oops! Something went wrong:(</h1><div class=\"card\" role=\"alert\"><p>{}</p></div>",
            escape(message)
        ),
    )
}

pub(crate) struct ConsentUser<'a> {
    pub user: &'a SandboxUser,
    pub avatar_href: String,
    pub allow_href: String,
    /// The user this browser "is logged in as" (sandbox_user), listed first.
    pub preselected: bool,
}

fn region(u: &SandboxUser) -> String {
    let parts: Vec<&str> = [&u.country, &u.province, &u.city]
        .into_iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        "未设置地区".to_owned()
    } else {
        parts.join(" ")
    }
}

/// The `snsapi_userinfo` consent page: one 允许 per test user, one 拒绝.
pub(crate) fn consent_page(
    appid: &str,
    users: &[ConsentUser<'_>],
    deny_href: &str,
) -> HttpResponse {
    let mut ordered: Vec<&ConsentUser<'_>> = users.iter().collect();
    ordered.sort_by_key(|u| !u.preselected);
    let mut items = String::new();
    for u in ordered {
        let nickname = escape(&u.user.nickname);
        let _ = write!(
            items,
            "<li><img src=\"{avatar}\" alt=\"\" width=\"48\" height=\"48\">\
<div class=\"who\"><strong>{nickname}</strong><span>{region}</span></div>\
<a class=\"btn\" href=\"{allow}\" aria-label=\"以{nickname}的身份允许\">允许</a></li>",
            avatar = escape(&u.avatar_href),
            region = escape(&region(u.user)),
            allow = escape(&u.allow_href),
        );
    }
    page(
        "微信授权",
        &format!(
            "<h1>授权登录</h1>\
<div class=\"card\"><p>公众号 <code>{appid}</code> 申请获得以下权限：</p>\
<p><strong>获得你的公开信息（昵称、头像等）</strong></p></div>\
<section class=\"card\" aria-labelledby=\"pick\"><h2 id=\"pick\" class=\"muted\">选择以哪位测试用户的身份授权</h2>\
<ul>{items}</ul></section>\
<a class=\"btn secondary block\" href=\"{deny}\">拒绝</a>\
<p class=\"muted\">这是 wechat-sandbox 模拟的微信授权页，不会连接微信。</p>",
            appid = escape(appid),
            deny = escape(deny_href),
        ),
    )
}

pub(crate) struct CashierOrder<'a> {
    pub body: &'a str,
    pub out_trade_no: &'a str,
    pub total_fee: u64,
    pub prepay_id: &'a str,
    pub package: &'a str,
    pub redirect_url: Option<&'a str>,
}

/// Stands in for WeChat's H5 cashier (mweb_url).
pub(crate) fn cashier_page(o: &CashierOrder<'_>) -> HttpResponse {
    let redirect = o
        .redirect_url
        .map(|r| {
            format!(
                "<input type=\"hidden\" name=\"redirect_url\" value=\"{}\">",
                escape(r)
            )
        })
        .unwrap_or_default();
    page(
        "微信支付",
        &format!(
            "<h1>微信支付</h1><div class=\"card\"><p>{body}</p>\
<p class=\"amount\">¥{amount}</p><p class=\"muted\">商户订单号：{no}</p></div>\
<form method=\"post\" action=\"/sandbox/mweb/pay\">\
<input type=\"hidden\" name=\"prepay_id\" value=\"{prepay}\">\
<input type=\"hidden\" name=\"package\" value=\"{package}\">{redirect}\
<button class=\"btn block\" type=\"submit\">确认支付</button></form>\
<p class=\"muted\">这是 wechat-sandbox 模拟的收银台，不会真实扣款。</p>",
            body = escape(o.body),
            amount = shared::money::fen_to_yuan(i64::try_from(o.total_fee).unwrap_or(i64::MAX)),
            no = escape(o.out_trade_no),
            prepay = escape(o.prepay_id),
            package = escape(o.package),
        ),
    )
}

pub(crate) struct JsapiCashier<'a> {
    pub body: &'a str,
    pub out_trade_no: &'a str,
    pub total_fee: u64,
    pub ticket: &'a str,
}

/// The sheet `wx.chooseWXPay` opens: 确认支付 or 取消, each a plain form post.
pub(crate) fn jsapi_cashier_page(o: &JsapiCashier<'_>) -> HttpResponse {
    let ticket = escape(o.ticket);
    page(
        "微信支付",
        &format!(
            "<h1>微信支付</h1><div class=\"card\"><p>{body}</p>\
<p class=\"amount\">¥{amount}</p><p class=\"muted\">商户订单号：{no}</p></div>\
<form method=\"post\" action=\"/sandbox/jsapi/cashier/confirm\">\
<input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
<button class=\"btn block\" type=\"submit\">确认支付</button></form>\
<form method=\"post\" action=\"/sandbox/jsapi/cashier/cancel\">\
<input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
<button class=\"btn secondary block\" type=\"submit\">取消</button></form>\
<p class=\"muted\">这是 wechat-sandbox 模拟的收银台，不会真实扣款。</p>",
            body = escape(o.body),
            amount = shared::money::fen_to_yuan(i64::try_from(o.total_fee).unwrap_or(i64::MAX)),
            no = escape(o.out_trade_no),
        ),
    )
}

/// The cashier's answer; it tells the page that opened it (its parent window)
/// `errMsg` through `postMessage`, which the sandbox's `wx.chooseWXPay` awaits.
pub(crate) fn jsapi_cashier_result(title: &str, message: &str, err_msg: &str) -> HttpResponse {
    let payload = serde_json::json!({
        "source": "wechat-sandbox",
        "kind": "chooseWXPay",
        "errMsg": err_msg,
    })
    .to_string()
    // Inside <script>, `<` could close the element.
    .replace('<', "\\u003c");
    page(
        "微信支付",
        &format!(
            "<h1>{}</h1><div class=\"card\" role=\"status\"><p>{}</p></div>\
<script>if(window.parent!==window){{window.parent.postMessage({payload},\"*\");}}</script>",
            escape(title),
            escape(message),
        ),
    )
}

pub(crate) struct ScanCashier<'a> {
    pub body: &'a str,
    pub out_trade_no: &'a str,
    pub total_fee: u64,
    pub code_url: &'a str,
    /// The nickname of the test user who pays.
    pub payer: &'a str,
}

/// What WeChat shows after scanning a NATIVE order's QR code.
pub(crate) fn scan_cashier_page(o: &ScanCashier<'_>) -> HttpResponse {
    page(
        "微信支付",
        &format!(
            "<h1>微信支付</h1><div class=\"card\"><p>{body}</p>\
<p class=\"amount\">¥{amount}</p><p class=\"muted\">商户订单号：{no}</p>\
<p class=\"muted\">付款用户：{payer}</p></div>\
<form method=\"post\" action=\"/sandbox/native/pay\">\
<input type=\"hidden\" name=\"code_url\" value=\"{code_url}\">\
<button class=\"btn block\" type=\"submit\">确认支付</button></form>\
<p class=\"muted\">这是 wechat-sandbox 模拟的扫码支付，不会真实扣款。</p>",
            body = escape(o.body),
            amount = shared::money::fen_to_yuan(i64::try_from(o.total_fee).unwrap_or(i64::MAX)),
            no = escape(o.out_trade_no),
            payer = escape(o.payer),
            code_url = escape(o.code_url),
        ),
    )
}

/// What the cashier shows after paying, or instead of paying.
pub(crate) fn cashier_message(title: &str, message: &str) -> HttpResponse {
    page(
        "微信支付",
        &format!(
            "<h1>{}</h1><div class=\"card\" role=\"status\"><p>{}</p></div>",
            escape(title),
            escape(message)
        ),
    )
}

/// A coloured square with the nickname's first character.
pub(crate) fn avatar_svg(user: &SandboxUser) -> String {
    const COLOURS: [&str; 6] = [
        "#07c160", "#1485ee", "#fa9d3b", "#e64340", "#6467f0", "#10aeff",
    ];
    let hash = user
        .key
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    let colour = COLOURS[hash % COLOURS.len()];
    let initial: String = user.nickname.chars().take(1).collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"132\" height=\"132\" viewBox=\"0 0 132 132\" \
role=\"img\" aria-label=\"{label}\"><rect width=\"132\" height=\"132\" fill=\"{colour}\"/>\
<text x=\"66\" y=\"66\" dy=\".35em\" text-anchor=\"middle\" font-size=\"64\" fill=\"#fff\" \
font-family=\"PingFang SC,Microsoft YaHei,sans-serif\">{initial}</text></svg>",
        label = escape(&user.nickname),
        initial = escape(&initial),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_html_specials() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn avatar_is_svg_with_initial() {
        let u = SandboxUser::new("u1", "张三", 1, "广东", "深圳", "中国");
        let svg = avatar_svg(&u);
        assert!(svg.starts_with("<svg "));
        assert!(svg.contains(">张</text>"));
    }
}
