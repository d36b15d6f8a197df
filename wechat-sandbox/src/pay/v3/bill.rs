//! APIv3 trade bill: `GET /v3/bill/tradebill?bill_date=&bill_type=&tar_type=`
//! answers `{hash_type: "SHA1", hash_value, download_url}` (signed, like every
//! v3 answer); `GET /v3/billdownload/file?token=` (a signed request too)
//! serves the file: the bill text, or its gzip with `tar_type=GZIP`. As
//! WeChat documents, `hash_value` is the SHA1 of the bill itself (before
//! gzip), and the download answer carries no signature: the hash is what
//! checks it. The bill comes from [`SandboxState::trade_bill`].

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::wire::{V3Reply, failure, param_error};
use crate::params::Params;
use crate::pay::bills::{BillType, gzip, parse_bill_date};
use crate::state::SandboxState;

impl SandboxState {
    fn v3_tradebill(&self, req: &HttpRequest) -> V3Reply {
        let merchant = self.v3_authenticate(req, b"")?;
        let q = Params::from_query(req);
        let date = parse_bill_date(q.get("bill_date").unwrap_or_default(), true)
            .ok_or_else(|| param_error("bill_date格式错误，应为yyyy-MM-dd"))?;
        let bill_type = BillType::parse(q.get("bill_type").unwrap_or_default())
            .ok_or_else(|| param_error("bill_type取值错误"))?;
        let gz = match q.get("tar_type").unwrap_or_default() {
            "" => false,
            "GZIP" => true,
            _ => return Err(param_error("tar_type取值错误")),
        };
        let file = self
            .trade_bill(&merchant.mch_id, date, bill_type)
            .map_err(|_| failure(400, "NO_STATEMENT_EXIST", "要下载的账单不存在"))?;
        let bytes = if gz { gzip(&file.served) } else { file.served };
        let token = self.keep_download(&merchant.mch_id, bytes);
        let url = format!(
            "{}/v3/billdownload/file?token={token}",
            self.public_base_url()
        );
        Ok(self.v3_ok(&json!({
            "hash_type": "SHA1",
            "hash_value": file.sha1,
            "download_url": url,
        })))
    }

    fn v3_bill_download(&self, req: &HttpRequest) -> V3Reply {
        let merchant = self.v3_authenticate(req, b"")?;
        let q = Params::from_query(req);
        let bytes = self
            .kept_download(&merchant.mch_id, q.get("token").unwrap_or_default())
            .ok_or_else(|| failure(400, "INVALID_REQUEST", "下载链接已过期或不存在"))?;
        Ok(HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes))
    }
}

pub(crate) async fn tradebill(s: web::Data<SandboxState>, req: HttpRequest) -> HttpResponse {
    s.v3_reply(s.v3_tradebill(&req))
}

pub(crate) async fn download(s: web::Data<SandboxState>, req: HttpRequest) -> HttpResponse {
    s.v3_reply(s.v3_bill_download(&req))
}
