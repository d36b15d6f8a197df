//! The merchant's side of a v3 call: the signed message, the `Authorization`
//! header, and the JSAPI `paySign`.

use super::{AUTH_SCHEMA, PrivateKey, V3Error};

/// `METHOD\nPATH_AND_QUERY\nTIMESTAMP\nNONCE\nBODY\n`: what a request's
/// signature covers. `path_and_query` is the URL without scheme and host
/// (`/v3/pay/transactions/out-trade-no/1?mchid=1900000109`); `body` is empty
/// for GET.
pub fn request_message(
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &str,
) -> String {
    format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body}\n")
}

/// `TIMESTAMP\nNONCE\nBODY\n`: what WeChat's answer and notification
/// signatures cover (headers `Wechatpay-Timestamp` and `Wechatpay-Nonce`).
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    for part in [timestamp.as_bytes(), nonce.as_bytes(), body] {
        m.extend_from_slice(part);
        m.push(b'\n');
    }
    m
}

/// `appId\ntimeStamp\nnonceStr\npackage\n`: what a JSAPI (and mini program)
/// `paySign` with `signType: "RSA"` covers; `package` is `prepay_id=…`.
pub fn jsapi_pay_message(app_id: &str, time_stamp: &str, nonce_str: &str, package: &str) -> String {
    format!("{app_id}\n{time_stamp}\n{nonce_str}\n{package}\n")
}

/// The `Authorization` header's value.
pub fn authorization_header(
    mchid: &str,
    serial_no: &str,
    nonce: &str,
    timestamp: i64,
    signature: &str,
) -> String {
    format!(
        "{AUTH_SCHEMA} mchid=\"{mchid}\",nonce_str=\"{nonce}\",signature=\"{signature}\",\
         timestamp=\"{timestamp}\",serial_no=\"{serial_no}\""
    )
}

/// A parsed `Authorization` header (what WeChat, or the sandbox, reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub mchid: String,
    pub nonce_str: String,
    pub signature: String,
    pub timestamp: String,
    pub serial_no: String,
}

impl Authorization {
    /// `WECHATPAY2-SHA256-RSA2048 k="v",k="v",…` with all five fields, in any
    /// order.
    pub fn parse(header: &str) -> Result<Self, V3Error> {
        let bad = |why: &str| V3Error::Authorization(why.to_owned());
        let rest = header
            .strip_prefix(AUTH_SCHEMA)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| bad("scheme is not WECHATPAY2-SHA256-RSA2048"))?;
        let mut fields = std::collections::HashMap::new();
        for pair in rest.split(',') {
            let (k, v) = pair
                .trim()
                .split_once('=')
                .ok_or_else(|| bad("expected key=\"value\" pairs"))?;
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| bad("values must be quoted"))?;
            fields.insert(k.trim(), v.to_owned());
        }
        let mut take = |name: &str| {
            fields
                .remove(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| V3Error::Authorization(format!("{name} is missing")))
        };
        Ok(Authorization {
            mchid: take("mchid")?,
            nonce_str: take("nonce_str")?,
            signature: take("signature")?,
            timestamp: take("timestamp")?,
            serial_no: take("serial_no")?,
        })
    }
}

/// Signs the merchant's requests and JSAPI pay parameters.
#[derive(Debug, Clone)]
pub struct MerchantSigner {
    mchid: String,
    serial_no: String,
    key: PrivateKey,
}

impl MerchantSigner {
    /// `serial_no` is the merchant API certificate's (`MCH_CERT_SERIAL_NO`).
    pub fn new(mchid: impl Into<String>, serial_no: impl Into<String>, key: PrivateKey) -> Self {
        MerchantSigner {
            mchid: mchid.into(),
            serial_no: serial_no.into(),
            key,
        }
    }

    /// With the key read from `MCH_KEY_PEM`'s text.
    pub fn from_pem(
        mchid: impl Into<String>,
        serial_no: impl Into<String>,
        key_pem: &str,
    ) -> Result<Self, V3Error> {
        Ok(Self::new(mchid, serial_no, PrivateKey::from_pem(key_pem)?))
    }

    pub fn mchid(&self) -> &str {
        &self.mchid
    }

    pub fn serial_no(&self) -> &str {
        &self.serial_no
    }

    /// Base64 SHA256withRSA over `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        self.key.sign(message)
    }

    /// The `Authorization` value for a request made now with a fresh nonce.
    pub fn authorization(&self, method: &str, path_and_query: &str, body: &str) -> String {
        let timestamp = chrono::Utc::now().timestamp();
        self.authorization_at(
            method,
            path_and_query,
            timestamp,
            &crate::random::nonce(),
            body,
        )
    }

    /// The `Authorization` value with a given timestamp and nonce.
    pub fn authorization_at(
        &self,
        method: &str,
        path_and_query: &str,
        timestamp: i64,
        nonce: &str,
        body: &str,
    ) -> String {
        let message = request_message(method, path_and_query, timestamp, nonce, body);
        let signature = self.sign(message.as_bytes());
        authorization_header(&self.mchid, &self.serial_no, nonce, timestamp, &signature)
    }

    /// `paySign` for `signType: "RSA"` JSAPI / mini-program pay parameters.
    pub fn jsapi_pay_sign(
        &self,
        app_id: &str,
        time_stamp: &str,
        nonce_str: &str,
        package: &str,
    ) -> String {
        self.sign(jsapi_pay_message(app_id, time_stamp, nonce_str, package).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_end_every_line_with_a_newline() {
        assert_eq!(
            request_message("GET", "/v3/certificates", 1554208460, "593BEC0C", ""),
            "GET\n/v3/certificates\n1554208460\n593BEC0C\n\n"
        );
        assert_eq!(response_message("1", "n", b"{}"), b"1\nn\n{}\n");
        assert_eq!(
            jsapi_pay_message("wx1", "1", "n", "prepay_id=p"),
            "wx1\n1\nn\nprepay_id=p\n"
        );
    }

    #[test]
    fn authorization_round_trips_and_names_what_is_missing() {
        let h = authorization_header("1900000109", "SERIAL", "NONCE", 1554208460, "c2ln");
        assert_eq!(
            h,
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1900000109\",nonce_str=\"NONCE\",\
             signature=\"c2ln\",timestamp=\"1554208460\",serial_no=\"SERIAL\""
        );
        let a = Authorization::parse(&h).unwrap();
        assert_eq!(a.mchid, "1900000109");
        assert_eq!(a.signature, "c2ln");
        assert_eq!(a.timestamp, "1554208460");
        assert_eq!(a.serial_no, "SERIAL");
        let e = Authorization::parse(&h.replace("serial_no", "serial")).unwrap_err();
        assert_eq!(e, V3Error::Authorization("serial_no is missing".into()));
        assert!(Authorization::parse("Bearer x").is_err());
        assert!(Authorization::parse("WECHATPAY2-SHA256-RSA2048 mchid=1").is_err());
    }
}
