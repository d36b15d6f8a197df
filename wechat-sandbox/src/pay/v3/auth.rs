//! Checking a merchant's v3 request: the `Authorization` header names a
//! known merchant and its certificate serial, is recent, and its signature
//! over `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n` verifies with the
//! merchant certificate's key.

use actix_web::HttpRequest;
use actix_web::http::header;
use shared::wechatpay_v3::{Authorization, request_message};

use super::wire::{V3Failure, failure, sign_error};
use crate::config::SandboxMerchant;
use crate::state::SandboxState;

/// WeChat refuses requests signed further than this from its clock.
const MAX_SKEW_SECONDS: i64 = 300;

impl SandboxState {
    /// The merchant whose signed request this is, or WeChat's 401.
    pub(crate) fn v3_authenticate(
        &self,
        req: &HttpRequest,
        body: &[u8],
    ) -> Result<SandboxMerchant, V3Failure> {
        let raw = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                sign_error("Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》")
            })?;
        let auth = Authorization::parse(raw).map_err(|e| sign_error(e.to_string()))?;
        let merchant = self
            .merchant(&auth.mchid)
            .ok_or_else(|| sign_error("商户号不存在或商户证书序列号有误"))?;
        if !auth
            .serial_no
            .eq_ignore_ascii_case(self.v3.keys.merchant_cert.serial_no())
        {
            return Err(sign_error(
                "商户证书序列号有误，请使用签名私钥匹配的证书序列号",
            ));
        }
        let timestamp: i64 = auth
            .timestamp
            .parse()
            .map_err(|_| sign_error("Http头Authorization中的timestamp格式错误"))?;
        // Real time: the merchant's clock is not the sandbox's scaled one.
        if (chrono::Utc::now().timestamp() - timestamp).abs() > MAX_SKEW_SECONDS {
            return Err(sign_error(
                "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟",
            ));
        }
        let body = std::str::from_utf8(body)
            .map_err(|_| failure(400, "PARAM_ERROR", "请求体不是UTF-8编码的JSON"))?;
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or_else(|| req.path());
        let message = request_message(
            req.method().as_str(),
            path,
            timestamp,
            &auth.nonce_str,
            body,
        );
        self.v3
            .merchant_public_key()
            .verify(message.as_bytes(), &auth.signature)
            .map_err(|_| sign_error("错误的签名，验签失败"))?;
        Ok(merchant.clone())
    }
}
