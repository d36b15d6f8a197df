//! The endpoints under load and what counts as a success for each. Requests'
//! inputs (codes, tokens, signed notifications) are made before the clock
//! starts, so only the service's work is timed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use serde_json::Value;
use shared::sign::{SignType, jssdk_signature, pay_sign, strip_fragment};
use wechat_sandbox::{
    OrderSnapshot, PayOptions, SANDBOX_MCH_KEY, SANDBOX_MP_APPID, SANDBOX_OA_APPID, Sandbox,
};

use crate::light;
use crate::load::{LoadResult, drive};

pub const TOKEN_PATHS: [&str; 2] = ["/cgi-bin/token", "/cgi-bin/stable_token"];
pub const TICKET_PATH: &str = "/cgi-bin/ticket/getticket";
pub const JSCODE_PATH: &str = "/sns/jscode2session";
pub const UNIFIEDORDER_PATH: &str = "/pay/unifiedorder";

/// Sandbox calls to WeChat endpoints, all paths together.
pub fn upstream_total(sb: &Sandbox) -> u64 {
    sb.state().call_counts().values().sum()
}

async fn json_of(res: reqwest::Result<reqwest::Response>) -> Option<Value> {
    let res = res.ok()?;
    if res.status() != 200 {
        return None;
    }
    let body: Value = res.json().await.ok()?;
    (body["code"] == 0).then_some(body)
}

/// A 200 answer's body. Every timed request reads its answer whole, `/healthz`
/// included, so that the yardstick and the endpoint measured against it cost
/// the bench the same.
async fn body_of(res: reqwest::Result<reqwest::Response>) -> Option<bytes::Bytes> {
    let res = res.ok()?;
    if res.status() != 200 {
        return None;
    }
    res.bytes().await.ok()
}

/// `url` parsed once, before the clock (a request then only clones it).
fn parsed(url: &str) -> reqwest::Url {
    reqwest::Url::parse(url).unwrap_or_else(|e| panic!("the bench's own URL {url}: {e}"))
}

/// jssdkConfig's URL at `base` for `page`.
fn config_url(base: &str, page: &str) -> reqwest::Url {
    let mut url = parsed(&format!("{base}/api/wechat/jssdkConfig"));
    url.query_pairs_mut().append_pair("url", page);
    url
}

/// What an open-loop job returns for each request: whether it succeeded.
type JobFuture = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

pub async fn healthz(client: &reqwest::Client, base: &str, c: usize, n: usize) -> LoadResult {
    let (client, url) = (client.clone(), parsed(&format!("{base}/healthz")));
    drive(c, n, move |_| {
        let req = client.get(url.clone());
        async move { body_of(req.send().await).await.is_some() }
    })
    .await
}

/// `wx.config` for a different page each time, each signature checked against
/// the sandbox's current ticket. The requests' URLs are made before the clock
/// and the answers checked after it, so that the timed loop does for each
/// request what [`healthz`]'s does (send, read the answer): the ratio of the
/// two is the service's, not the bench's JSON parsing and SHA-1 (issue #16
/// goal 1).
pub async fn jssdk_config(
    client: &reqwest::Client,
    base: &str,
    sb: &Sandbox,
    c: usize,
    n: usize,
) -> LoadResult {
    let pages: Vec<String> = (0..n)
        .map(|i| format!("https://shop.example/bench/{i}?x=1#frag"))
        .collect();
    let urls: Arc<Vec<reqwest::Url>> =
        Arc::new(pages.iter().map(|page| config_url(base, page)).collect());
    let answers: Arc<Vec<OnceLock<bytes::Bytes>>> =
        Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let (client, kept) = (client.clone(), answers.clone());
    let mut load = drive(c, n, move |i| {
        let req = client.get(urls[i].clone());
        let kept = kept.clone();
        async move {
            let Some(body) = body_of(req.send().await).await else {
                return false;
            };
            kept[i].set(body).is_ok()
        }
    })
    .await;
    load.errors += wrongly_signed(sb, answers.iter().map(|a| a.get().map(|b| &b[..])), &pages);
    load
}

/// [`healthz`] with the light client ([`crate::light`]).
pub async fn light_healthz(addr: std::net::SocketAddr, c: usize, n: usize) -> LoadResult {
    let request: Arc<[u8]> = Arc::from(light::get(addr, "/healthz"));
    let (load, _) = light::drive_gets(addr, c, n, move |_| request.clone(), false).await;
    load
}

/// [`jssdk_config`] with the light client, in three steps so that only the
/// middle one is measured: the requests made before the clock
/// ([`LightJssdk::prepare`]), sent ([`LightJssdk::send`]), every signature
/// checked after it ([`LightJssdk::wrongly_signed`]).
pub struct LightJssdk {
    pages: Vec<String>,
    requests: Arc<Vec<Arc<[u8]>>>,
}

impl LightJssdk {
    pub fn prepare(addr: std::net::SocketAddr, n: usize) -> Self {
        let pages: Vec<String> = (0..n)
            .map(|i| format!("https://shop.example/light/{i}?x=1#frag"))
            .collect();
        let requests = pages
            .iter()
            .map(|page| {
                let url = config_url(&format!("http://{addr}"), page);
                let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
                Arc::from(light::get(addr, &target))
            })
            .collect();
        LightJssdk {
            pages,
            requests: Arc::new(requests),
        }
    }

    /// Every request over `c` connections; the answers' bodies by index.
    pub async fn send(
        &self,
        addr: std::net::SocketAddr,
        c: usize,
    ) -> (LoadResult, Vec<Option<Vec<u8>>>) {
        let requests = self.requests.clone();
        light::drive_gets(addr, c, requests.len(), move |i| requests[i].clone(), true).await
    }

    /// How many of `bodies` (from [`LightJssdk::send`]) are not signed right.
    pub fn wrongly_signed(&self, sb: &Sandbox, bodies: &[Option<Vec<u8>>]) -> usize {
        wrongly_signed(sb, bodies.iter().map(|b| b.as_deref()), &self.pages)
    }
}

/// How many of the answers (each for the page at the same index; None for
/// a request that failed, already counted) are not signed right for the
/// sandbox's current ticket.
fn wrongly_signed<'a>(
    sb: &Sandbox,
    answers: impl Iterator<Item = Option<&'a [u8]>>,
    pages: &[String],
) -> usize {
    let ticket = sb.state().current_jsapi_ticket(SANDBOX_OA_APPID);
    answers
        .zip(pages)
        .filter(|(answer, page)| answer.is_some_and(|b| !signed_for(b, ticket.as_deref(), page)))
        .count()
}

/// Whether a jssdkConfig answer is a success whose signature is the one
/// `ticket` gives for `page`.
fn signed_for(body: &[u8], ticket: Option<&str>, page: &str) -> bool {
    let (Ok(body), Some(ticket)) = (serde_json::from_slice::<Value>(body), ticket) else {
        return false;
    };
    let d = &body["data"];
    let (Some(nonce), Some(ts)) = (d["nonceStr"].as_str(), d["timestamp"].as_i64()) else {
        return false;
    };
    body["code"] == 0 && d["signature"] == jssdk_signature(ticket, nonce, ts, strip_fragment(page))
}

/// Mini-program logins, each with a fresh `wx.login()` code; returns the
/// session tokens handed out, in order.
pub async fn get_session(
    client: &reqwest::Client,
    base: &str,
    sb: &Sandbox,
    c: usize,
    n: usize,
) -> (LoadResult, Vec<Option<String>>) {
    let users = ["u1", "u2", "u3"];
    let codes: Arc<Vec<String>> = Arc::new(
        (0..n)
            .map(|i| {
                sb.state()
                    .issue_js_code(SANDBOX_MP_APPID, users[i % users.len()])
            })
            .collect(),
    );
    let tokens = Arc::new(Mutex::new(vec![None; n]));
    let (client, base, t) = (client.clone(), base.to_owned(), tokens.clone());
    let result = drive(c, n, move |i| {
        let req = client
            .get(format!("{base}/api/mp/getSession"))
            .query(&[("code", codes[i].as_str())]);
        let t = t.clone();
        async move {
            let Some(body) = json_of(req.send().await).await else {
                return false;
            };
            let token = body["data"]["token"].as_str().map(str::to_owned);
            let ok = token.is_some();
            locked(&t)[i] = token;
            ok
        }
    })
    .await;
    let tokens = locked(&tokens).clone();
    (result, tokens)
}

/// The results collected so far. A poisoned lock means a job panicked; that
/// panic reaches the caller through `drive`, and what the others wrote stands.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An order placed by `v2Pay`, with the token of its owner.
#[derive(Debug, Clone)]
pub struct Placed {
    pub out_trade_no: String,
    pub token: String,
}

/// `GET /api/mp/v2Pay?money=0.01` with the tokens of `get_session`.
pub async fn v2pay(
    client: &reqwest::Client,
    base: &str,
    tokens: &[String],
    c: usize,
    n: usize,
) -> (LoadResult, Vec<Placed>) {
    let tokens: Arc<Vec<String>> = Arc::new(tokens.to_vec());
    let placed = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let (client, base, p) = (client.clone(), base.to_owned(), placed.clone());
    let result = drive(c, n, move |i| {
        let token = tokens[i % tokens.len()].clone();
        let req = client
            .get(format!("{base}/api/mp/v2Pay"))
            .query(&[("money", "0.01")])
            .bearer_auth(&token);
        let p = p.clone();
        async move {
            let Some(body) = json_of(req.send().await).await else {
                return false;
            };
            let d = &body["data"];
            let Some(no) = d["outTradeNo"].as_str() else {
                return false;
            };
            let ok = d["package"]
                .as_str()
                .is_some_and(|p| p.starts_with("prepay_id="))
                && d["paySign"].as_str().is_some_and(|s| !s.is_empty());
            locked(&p).push(Placed {
                out_trade_no: no.to_owned(),
                token,
            });
            ok
        }
    })
    .await;
    let placed = locked(&placed).clone();
    (result, placed)
}

/// A payment notification for a paid sandbox order, signed as WeChat signs it.
pub fn notification_xml(order: &OrderSnapshot, key: &str) -> String {
    let mut f: BTreeMap<String, String> = BTreeMap::new();
    let fee = order.total_fee.to_string();
    for (k, v) in [
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("appid", order.appid.as_str()),
        ("mch_id", order.mch_id.as_str()),
        ("nonce_str", &shared::random::nonce()),
        ("openid", order.payer_openid.as_deref().unwrap_or("oPAYER")),
        ("is_subscribe", "N"),
        ("trade_type", order.trade_type.as_str()),
        ("bank_type", "OTHERS"),
        ("total_fee", &fee),
        ("fee_type", "CNY"),
        ("cash_fee", &fee),
        (
            "transaction_id",
            order
                .transaction_id
                .as_deref()
                .unwrap_or("4200000000202601010000000000"),
        ),
        ("out_trade_no", order.out_trade_no.as_str()),
        (
            "time_end",
            order.time_end.as_deref().unwrap_or("20260101120000"),
        ),
    ] {
        f.insert(k.to_owned(), v.to_owned());
    }
    let sign = pay_sign(&f, key, SignType::Md5);
    f.insert("sign".into(), sign);
    shared::xml::map_to_xml(&f)
}

/// Pays every order in the sandbox without its own delivery, then POSTs each
/// order's signed notification to `/api/pay/notify`; success is WeChat's
/// `return_code` SUCCESS.
pub async fn notifications(
    client: &reqwest::Client,
    base: &str,
    sb: &Sandbox,
    placed: &[Placed],
    c: usize,
) -> anyhow::Result<LoadResult> {
    notifications_from(client, base, sb, placed, c, false).await
}

/// [`notifications`], each one with an `X-Forwarded-For` address of its own
/// when `spread` (through the gateway, whose per-address limit would
/// otherwise stop one sender at 50/s).
pub async fn notifications_from(
    client: &reqwest::Client,
    base: &str,
    sb: &Sandbox,
    placed: &[Placed],
    c: usize,
    spread: bool,
) -> anyhow::Result<LoadResult> {
    let quiet = PayOptions {
        notify: false,
        fail_first_deliveries: 0,
    };
    let mut bodies = Vec::with_capacity(placed.len());
    for p in placed {
        sb.state()
            .pay_order(&p.out_trade_no, quiet)
            .map_err(|e| anyhow::anyhow!("sandbox cannot pay {}: {e}", p.out_trade_no))?;
        let order = sb
            .state()
            .order(&p.out_trade_no)
            .ok_or_else(|| anyhow::anyhow!("sandbox lost {}", p.out_trade_no))?;
        bodies.push(notification_xml(&order, SANDBOX_MCH_KEY));
    }
    let bodies = Arc::new(bodies);
    let (client, url) = (client.clone(), format!("{base}/api/pay/notify"));
    Ok(drive(c, placed.len(), move |i| {
        let mut req = client
            .post(&url)
            .header("content-type", "text/xml")
            .body(bodies[i].clone());
        if spread {
            let [_, a, b, c] = (i as u32).to_be_bytes();
            req = req.header("x-forwarded-for", format!("10.{a}.{b}.{c}"));
        }
        async move {
            let Ok(res) = req.send().await else {
                return false;
            };
            let status = res.status();
            let Ok(text) = res.text().await else {
                return false;
            };
            status == 200
                && shared::xml::parse(text.as_bytes(), 4096)
                    .is_ok_and(|f| f.get("return_code").map(String::as_str) == Some("SUCCESS"))
        }
    })
    .await)
}

/// How many of the orders their owners now see PAID.
pub async fn count_paid(client: &reqwest::Client, base: &str, placed: &[Placed]) -> usize {
    let mut paid = 0;
    for p in placed {
        let res = client
            .get(format!("{base}/api/pay/orders/{}", p.out_trade_no))
            .bearer_auth(&p.token)
            .send()
            .await;
        if let Some(body) = json_of(res).await
            && body["data"]["status"] == "PAID"
        {
            paid += 1;
        }
    }
    paid
}

/// A 200 with the envelope's `"code":0`, read without building a JSON tree:
/// the open-loop runs check many answers and the bench shares the CPUs.
async fn ok_envelope(res: reqwest::Result<reqwest::Response>) -> bool {
    let Ok(res) = res else {
        return false;
    };
    if res.status() != 200 {
        return false;
    }
    res.bytes()
        .await
        .is_ok_and(|b| b.windows(8).any(|w| w == b"\"code\":0"))
}

/// One open-loop jssdkConfig request (one of 4,096 pages, their URLs made
/// before the clock); its signatures are checked in the closed-loop run.
pub fn jssdk_config_job(
    client: &reqwest::Client,
    base: &str,
) -> impl Fn(u64) -> JobFuture + Send + Sync + 'static {
    let urls: Vec<reqwest::Url> = (0..4096)
        .map(|i| config_url(base, &format!("https://shop.example/open/{i}")))
        .collect();
    let client = client.clone();
    move |i| {
        let req = client.get(urls[i as usize % urls.len()].clone());
        Box::pin(async move { ok_envelope(req.send().await).await })
    }
}

/// One open-loop `/healthz` request, its answer read as [`jssdk_config_job`]'s is.
pub fn healthz_job(
    client: &reqwest::Client,
    base: &str,
) -> impl Fn(u64) -> JobFuture + Send + Sync + 'static {
    let (client, url) = (client.clone(), parsed(&format!("{base}/healthz")));
    move |_| {
        let req = client.get(url.clone());
        Box::pin(async move { body_of(req.send().await).await.is_some() })
    }
}

/// One open-loop v2Pay request with one of `tokens`.
pub fn v2pay_job(
    client: &reqwest::Client,
    base: &str,
    tokens: Arc<Vec<String>>,
) -> impl Fn(u64) -> JobFuture + Send + Sync + 'static {
    let (client, url) = (client.clone(), format!("{base}/api/mp/v2Pay"));
    move |i| {
        let token = &tokens[i as usize % tokens.len().max(1)];
        let req = client
            .get(&url)
            .query(&[("money", "0.01")])
            .bearer_auth(token);
        Box::pin(async move { ok_envelope(req.send().await).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check made after the clock: a success whose signature is the
    /// ticket's for that page, and nothing else.
    #[test]
    fn a_config_answer_counts_only_with_the_right_signature() {
        let page = "https://shop.example/light/1?x=1#frag";
        let answer = |signature: &str, code: i64| {
            serde_json::json!({
                "code": code,
                "data": {"nonceStr": "n", "timestamp": 7, "signature": signature},
            })
            .to_string()
        };
        let right = jssdk_signature("T", "n", 7, "https://shop.example/light/1?x=1");
        assert!(signed_for(answer(&right, 0).as_bytes(), Some("T"), page));
        assert!(!signed_for(
            answer(&right, 0).as_bytes(),
            Some("other"),
            page
        ));
        assert!(!signed_for(answer(&right, 0).as_bytes(), None, page));
        assert!(!signed_for(answer(&right, 1).as_bytes(), Some("T"), page));
        assert!(!signed_for(answer("0f", 0).as_bytes(), Some("T"), page));
        assert!(!signed_for(b"not json", Some("T"), page));
    }
}
