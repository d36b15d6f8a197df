//! Platform certificates: the X.509 certificates whose keys sign WeChat's
//! answers when the merchant is not (or not only) in public key mode.

use chrono::{DateTime, Utc};
use x509_cert::Certificate;
use x509_cert::der::{DecodePem, Encode};

use super::{PublicKey, V3Error};

/// A parsed platform certificate.
#[derive(Debug, Clone)]
pub struct PlatformCertificate {
    serial_no: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    public_key: PublicKey,
    pem: String,
}

impl PlatformCertificate {
    /// The first certificate in `pem`; its key must be RSA.
    pub fn from_pem(pem: &str) -> Result<Self, V3Error> {
        let bad = |e: &dyn std::fmt::Display| V3Error::Certificate(e.to_string());
        let cert = Certificate::from_pem(pem.trim()).map_err(|e| bad(&e))?;
        let tbs = cert.tbs_certificate();
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| bad(&e))?;
        let time = |t: &x509_cert::time::Time| {
            let secs = t.to_unix_duration().as_secs();
            i64::try_from(secs)
                .ok()
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .ok_or_else(|| V3Error::Certificate("validity out of range".into()))
        };
        Ok(PlatformCertificate {
            serial_no: serial_hex(tbs.serial_number().as_bytes()),
            not_before: time(&tbs.validity().not_before)?,
            not_after: time(&tbs.validity().not_after)?,
            public_key: PublicKey::from_spki_der(&spki)?,
            pem: pem.to_owned(),
        })
    }

    /// Uppercase hex, as WeChat writes it in `Wechatpay-Serial` and
    /// `serial_no` (and as `openssl x509 -serial` prints it).
    pub fn serial_no(&self) -> &str {
        &self.serial_no
    }

    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    pub fn is_valid_at(&self, at: DateTime<Utc>) -> bool {
        self.not_before <= at && at <= self.not_after
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }
}

/// The serial's value in uppercase hex: DER's sign-padding zero bytes are
/// not part of the number.
fn serial_hex(der_bytes: &[u8]) -> String {
    let start = der_bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(der_bytes.len().saturating_sub(1));
    hex::encode_upper(&der_bytes[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_drop_sign_padding() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8F01");
        assert_eq!(serial_hex(&[0x7f, 0x00]), "7F00");
        assert_eq!(serial_hex(&[0x00]), "00");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            PlatformCertificate::from_pem("not a certificate"),
            Err(V3Error::Certificate(_))
        ));
    }
}
