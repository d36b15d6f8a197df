//! Downloading the daily trade bill: APIv2 `/pay/downloadbill` (a signed XML
//! request answered with the bill's text, its gzip, or an XML error such as
//! "No Bill Exist"), and the file both APIs end with ([`BillDownload`]),
//! streamed to a temporary file so that memory does not grow with the bill.
//! v3's `tradebill` is `v3::bills`. Reading the bill is `shared::bill`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use tokio::io::AsyncWriteExt;

use super::{PayApi, PayRequest};
use crate::error::PayError;

const PATH: &str = "/pay/downloadbill";

/// Largest bill accepted (about three million rows); a bigger answer is refused.
pub const MAX_BILL_BYTES: u64 = 1 << 30;
/// The whole download's limit: a bill is far bigger than the usual answer.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An error answer is XML of a few hundred bytes.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// A downloaded bill, on disk until dropped.
#[derive(Debug)]
pub struct BillDownload {
    path: PathBuf,
    /// The file is gzip (checked by its magic bytes, not by what was asked).
    pub gzip: bool,
    /// v3's `hash_value`: the SHA1 (hex) of the bill (before gzip). v2 gives none.
    pub sha1: Option<String>,
    pub bytes: u64,
}

impl BillDownload {
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        std::fs::File::open(&self.path)
    }
}

impl Drop for BillDownload {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "bill file not removed");
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn temp_path() -> PathBuf {
    std::env::temp_dir().join(format!("wxpay-bill-{}.tmp", shared::random::nonce()))
}

/// The HTTP client for bill downloads: the usual one's limits are for
/// answers of a few KiB.
pub(crate) fn download_client() -> Result<reqwest::Client, PayError> {
    shared::http_client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(DOWNLOAD_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("wxpay/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| PayError::Internal(format!("bill download client: {e}")))
}

fn network(e: reqwest::Error) -> PayError {
    let e = e.without_url();
    let w = if e.is_timeout() {
        shared::wechat::WechatError::Timeout(e.to_string())
    } else {
        shared::wechat::WechatError::Unreachable(e.to_string())
    };
    PayError::Wechat(w)
}

/// What the start of an answer turned out to be.
pub(crate) enum Answer {
    Bill(BillDownload),
    /// An XML body (v2's errors): its bytes.
    Xml(Vec<u8>),
}

/// Streams `res`'s body to a temporary file, at most [`MAX_BILL_BYTES`];
/// a body that starts with `<` (an XML error) is returned instead.
pub(crate) async fn save(
    mut res: reqwest::Response,
    sha1: Option<String>,
) -> Result<Answer, PayError> {
    let first = res.chunk().await.map_err(network)?.unwrap_or_default();
    let trimmed = first.iter().find(|b| !b.is_ascii_whitespace());
    if trimmed == Some(&b'<') {
        let mut body = first.to_vec();
        while let Some(chunk) = res.chunk().await.map_err(network)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ERROR_BYTES {
                return Err(PayError::PayUnusable(
                    "Pay downloadbill answered an oversized XML body".into(),
                ));
            }
        }
        return Ok(Answer::Xml(body));
    }
    let path = temp_path();
    // From here on dropping `download` removes the file, whatever happens.
    let mut download = BillDownload {
        path: path.clone(),
        gzip: first.starts_with(&GZIP_MAGIC),
        sha1,
        bytes: 0,
    };
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| PayError::Internal(format!("bill file: {e}")))?;
    let mut chunk = Some(first);
    while let Some(bytes) = chunk {
        download.bytes += bytes.len() as u64;
        if download.bytes > MAX_BILL_BYTES {
            return Err(PayError::PayUnusable(format!(
                "the bill is larger than {MAX_BILL_BYTES} bytes"
            )));
        }
        file.write_all(&bytes)
            .await
            .map_err(|e| PayError::Internal(format!("bill file: {e}")))?;
        chunk = res.chunk().await.map_err(network)?;
    }
    file.flush()
        .await
        .map_err(|e| PayError::Internal(format!("bill file: {e}")))?;
    Ok(Answer::Bill(download))
}

struct DownloadBillRequest {
    appid: String,
    bill_date: NaiveDate,
    gzip: bool,
}

impl PayRequest for DownloadBillRequest {
    fn fields(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::from([
            ("appid".to_owned(), self.appid.clone()),
            (
                "bill_date".to_owned(),
                self.bill_date.format("%Y%m%d").to_string(),
            ),
            ("bill_type".to_owned(), "ALL".to_owned()),
        ]);
        if self.gzip {
            f.insert("tar_type".into(), "GZIP".into());
        }
        f
    }
}

/// Whether an error answer means "no bill (yet)": WeChat's `error_code`
/// 20002 / "No Bill Exist", or "Bill Creating" while it is being made.
fn is_no_bill(fields: &BTreeMap<String, String>) -> bool {
    let msg = fields.get("return_msg").map(String::as_str).unwrap_or("");
    fields.get("error_code").map(String::as_str) == Some("20002")
        || msg.eq_ignore_ascii_case("No Bill Exist")
        || msg.eq_ignore_ascii_case("Bill Creating")
}

impl PayApi {
    /// The bill of the Beijing day `date` (`bill_type=ALL`), as WeChat sent
    /// it. "No Bill Exist" is [`PayError::Conflict`]; any other error answer
    /// is WeChat's refusal.
    #[tracing::instrument(level = "debug", name = "wechat", skip_all, fields(otel.kind = "client", otel.name = "wechat /pay/downloadbill"))]
    pub async fn download_bill(
        &self,
        appid: &str,
        date: NaiveDate,
        gzip: bool,
    ) -> Result<BillDownload, PayError> {
        let req = DownloadBillRequest {
            appid: appid.to_owned(),
            bill_date: date,
            gzip,
        };
        let url = format!("{}{PATH}", self.client.bases().pay);
        let started = std::time::Instant::now();
        let res = shared::traces::propagate(download_client()?.post(url))
            .header("content-type", "text/xml; charset=utf-8")
            .body(self.signed_xml(req.fields()))
            .send()
            .await
            .map_err(network)?;
        let status = res.status();
        let outcome = |o: &str| {
            shared::traces::finish_client_span(&tracing::Span::current(), o);
            shared::telemetry::WECHAT_CALLS
                .with_label_values(&[PATH, o])
                .observe(started.elapsed().as_secs_f64());
        };
        if !status.is_success() {
            outcome("bad_response");
            return Err(PayError::PayUnusable(format!(
                "Pay {PATH} answered HTTP {status}"
            )));
        }
        match save(res, None).await? {
            Answer::Bill(file) => {
                outcome("ok");
                Ok(file)
            }
            Answer::Xml(body) => {
                outcome("errcode");
                let fields = shared::xml::parse(&body, MAX_ERROR_BYTES).map_err(|e| {
                    PayError::PayUnusable(format!("Pay {PATH} answered garbage: {e}"))
                })?;
                let msg = fields.get("return_msg").cloned().unwrap_or_default();
                if is_no_bill(&fields) {
                    return Err(PayError::Conflict(format!(
                        "no bill for {date} yet (WeChat: {msg})"
                    )));
                }
                Err(PayError::PayGatewayRefused(format!(
                    "Pay {PATH} refused the request: {msg}"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bill_answers() {
        let f = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(is_no_bill(&f(&[
            ("return_code", "FAIL"),
            ("return_msg", "No Bill Exist"),
            ("error_code", "20002")
        ])));
        assert!(is_no_bill(&f(&[("return_msg", "Bill Creating")])));
        assert!(!is_no_bill(&f(&[
            ("return_msg", "invalid bill_date"),
            ("error_code", "20001")
        ])));
    }

    #[test]
    fn the_request_asks_for_the_whole_day() {
        let r = DownloadBillRequest {
            appid: "wx1".into(),
            bill_date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            gzip: true,
        };
        let f = r.fields();
        assert_eq!(f["bill_date"], "20261129");
        assert_eq!(f["bill_type"], "ALL");
        assert_eq!(f["tar_type"], "GZIP");
    }
}
