//! The sandbox's APIv3 key material: WeChat's platform certificate and WeChat
//! Pay public key (what answers and notifications are signed with), and the
//! merchant's API key and certificate (what requests are checked against).

use std::sync::OnceLock;

use chrono::{Datelike, Duration, Utc};
use shared::wechatpay_v3::{PlatformCertificate, PrivateKey, PublicKey};

use crate::ids;

/// A merchant's API identity: `apiclient_key.pem` and `apiclient_cert.pem`.
#[derive(Clone)]
pub struct MerchantIdentity {
    pub key_pem: String,
    pub cert_pem: String,
}

impl std::fmt::Debug for MerchantIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantIdentity").finish_non_exhaustive()
    }
}

/// Everything the sandbox signs and checks v3 traffic with.
pub(crate) struct V3Keys {
    pub platform_key: PrivateKey,
    pub platform_cert: PlatformCertificate,
    pub public_key_id: String,
    /// The private half of the WeChat Pay public key.
    pub public_key_signer: PrivateKey,
    pub merchant: MerchantIdentity,
    pub merchant_cert: PlatformCertificate,
}

/// RSA key generation is slow in unoptimized builds (seconds per key), so a
/// process makes its three keys once, in parallel, and every sandbox in it
/// reuses them; certificates and IDs are made per sandbox.
fn rsa_keys() -> Result<&'static [PrivateKey; 3], String> {
    static KEYS: OnceLock<Result<[PrivateKey; 3], String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        std::thread::scope(|s| {
            let spawned = [(); 3].map(|_| s.spawn(PrivateKey::generate));
            let keys = spawned.map(|h| {
                h.join()
                    .map_err(|_| "RSA key generation panicked".to_owned())?
                    .map_err(|e| e.to_string())
            });
            let [a, b, c] = keys;
            Ok([a?, b?, c?])
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The RSA key the sandbox's generated merchant identity uses (also what
/// [`crate::TestPki`] gives the merchant), so v2 TLS and v3 signatures can
/// share one `apiclient_key.pem`.
pub(crate) fn merchant_key() -> Result<&'static PrivateKey, String> {
    rsa_keys().map(|k| &k[2])
}

impl V3Keys {
    /// New certificates and public key ID; `merchant` when given, else an
    /// identity issued by the sandbox (as WeChat issues `apiclient_cert.pem`).
    pub fn generate(mch_id: &str, merchant: Option<MerchantIdentity>) -> Result<Self, String> {
        let [platform_key, public_key_signer, merchant_key] = rsa_keys()?;
        let platform_pem = certificate(platform_key, "Tenpay.com sandbox platform")?;
        let merchant = match merchant {
            Some(m) => m,
            None => MerchantIdentity {
                key_pem: merchant_key.to_pem(),
                cert_pem: certificate(merchant_key, mch_id)?,
            },
        };
        let merchant_cert = PlatformCertificate::from_pem(&merchant.cert_pem)
            .map_err(|e| format!("merchant certificate: {e}"))?;
        Ok(V3Keys {
            platform_key: platform_key.clone(),
            platform_cert: PlatformCertificate::from_pem(&platform_pem)
                .map_err(|e| format!("platform certificate: {e}"))?,
            public_key_id: format!("PUB_KEY_ID_01{}", ids::digits(26)),
            public_key_signer: public_key_signer.clone(),
            merchant,
            merchant_cert,
        })
    }

    pub fn public_key(&self) -> PublicKey {
        self.public_key_signer.public_key()
    }
}

/// A certificate for `key`, valid from yesterday for five years, with a
/// 20-byte serial as WeChat's have (first byte below 0x80: no DER padding).
pub(crate) fn certificate(key: &PrivateKey, common_name: &str) -> Result<String, String> {
    use rcgen::{CertificateParams, DnType, KeyPair, PKCS_RSA_SHA256, SerialNumber};
    let err = |e: rcgen::Error| format!("certificate: {e}");
    let pair =
        KeyPair::from_pkcs8_pem_and_sign_algo(&key.to_pem(), &PKCS_RSA_SHA256).map_err(err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "wechat-sandbox");
    let mut serial = hex::decode(ids::lower_hex(40)).map_err(|e| format!("serial: {e}"))?;
    serial[0] = 0x10 | (serial[0] & 0x6f);
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let from = Utc::now() - Duration::days(1);
    let until = from + Duration::days(5 * 365);
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(until.year(), until.month() as u8, until.day() as u8);
    Ok(params.self_signed(&pair).map_err(err)?.pem())
}
