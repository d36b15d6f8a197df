//! `GET /v3/bill/tradebill?bill_date=&bill_type=ALL&tar_type=GZIP`: a signed
//! answer `{hash_type, hash_value, download_url}`; then the file at
//! `download_url`, fetched with a signed GET too. WeChat does not sign the
//! file's answer: `hash_value` (SHA1 of the bill before gzip) is what checks
//! it, which the domain does as it reads the bill.

use chrono::NaiveDate;
use reqwest::Method;
use serde::Deserialize;

use super::{V3Api, parse};
use crate::error::PayError;
use crate::wechat::bills::{Answer, BillDownload, download_client, save};

const LABEL: &str = "/v3/bill/tradebill";

#[derive(Deserialize)]
struct TradeBill {
    hash_type: String,
    hash_value: String,
    download_url: String,
}

/// WeChat's codes for "no bill for that day (yet)".
const NO_BILL: &[&str] = &["NO_STATEMENT_EXIST", "STATEMENT_CREATING"];

impl V3Api {
    /// The bill of the Beijing day `date` (`bill_type=ALL`), downloaded;
    /// no bill (yet) is [`PayError::Conflict`].
    pub async fn download_trade_bill(
        &self,
        date: NaiveDate,
        gzip: bool,
    ) -> Result<BillDownload, PayError> {
        let mut path = format!("/v3/bill/tradebill?bill_date={date}&bill_type=ALL");
        if gzip {
            path.push_str("&tar_type=GZIP");
        }
        let body = match self.call(LABEL, Method::GET, &path, None).await {
            Err(PayError::PayRefused { code, description }) if NO_BILL.contains(&code.as_str()) => {
                return Err(PayError::Conflict(format!(
                    "no bill for {date} yet (WeChat: {code} {description})"
                )));
            }
            other => other?.1,
        };
        let bill: TradeBill = parse(LABEL, &body)?;
        if !bill.hash_type.eq_ignore_ascii_case("SHA1")
            || bill.hash_value.len() != 40
            || !bill.hash_value.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(PayError::PayUnusable(format!(
                "Pay {LABEL} answered an unusable hash ({})",
                bill.hash_type
            )));
        }
        let path_and_query = self.same_origin_path(&bill.download_url)?;
        let auth = self.signer.authorization("GET", &path_and_query, "");
        let download = download_client()?.get(format!("{}{path_and_query}", self.base));
        let res = shared::traces::propagate(download)
            .header("Authorization", auth)
            .send()
            .await
            .map_err(|e| PayError::Wechat(super::network_error(e)))?;
        let status = res.status();
        if !status.is_success() {
            return Err(PayError::PayUnusable(format!(
                "the bill download answered HTTP {status}"
            )));
        }
        match save(res, Some(bill.hash_value.to_ascii_lowercase())).await? {
            Answer::Bill(file) => Ok(file),
            Answer::Xml(_) => Err(PayError::PayUnusable(
                "the bill download answered XML, not a bill".into(),
            )),
        }
    }

    /// `download_url`'s path and query, once it is on the host this client
    /// talks to (the signed request must not go anywhere else).
    fn same_origin_path(&self, download_url: &str) -> Result<String, PayError> {
        let unusable = || {
            PayError::PayUnusable(format!(
                "Pay {LABEL} answered a download_url on another host"
            ))
        };
        let url = url::Url::parse(download_url).map_err(|_| unusable())?;
        let base = url::Url::parse(&self.base).map_err(|_| unusable())?;
        if url.origin() != base.origin() {
            return Err(unusable());
        }
        let mut p = url.path().to_owned();
        if let Some(q) = url.query() {
            p.push('?');
            p.push_str(q);
        }
        Ok(p)
    }
}
