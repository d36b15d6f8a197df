//! The keys WeChat's v3 signatures are checked with: the WeChat Pay public
//! key (`WECHATPAY_PUBLIC_KEY_*`) and platform certificates downloaded from
//! `/v3/certificates`; both at once during WeChat's switch-over.
//!
//! Certificates: downloaded when there is no public key (before the first
//! check), every 12 hours, and when a signature names an unknown serial, at
//! most once a minute per replica and, through a cache lock, across
//! replicas. A download is trusted only once every certificate in it
//! decrypts with the APIv3 key (AES-256-GCM: only WeChat and we hold it) and
//! the answer's own signature verifies with one of them. What was downloaded
//! is shared through the cache, so the other replicas read it instead of
//! downloading: the answer as WeChat sent it (certificates still encrypted),
//! opened again by every reader, because whoever can write the cache must
//! not be able to plant a certificate of their own (and then sign
//! notifications that mark orders paid). Every certificate not yet expired
//! is kept.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use shared::cache::Cache;
use shared::wechatpay_v3::{
    ApiV3Key, CertificatesResponse, PlatformCertificate, PublicKey, SignedMessage, V3Error,
    Verifier,
};

use super::V3Api;
use crate::config::V3Config;

const PATH: &str = "/v3/certificates";
/// WeChat's advice: refresh platform certificates about twice a day.
pub const REFRESH_EVERY: Duration = Duration::from_secs(12 * 3600);
/// An unknown serial triggers at most one download per this.
pub const MIN_DOWNLOAD_GAP: Duration = Duration::from_secs(60);
/// The body of the last verified `/v3/certificates` answer (certificates
/// encrypted with the APIv3 key), for the other replicas. Not the key that
/// once held plain PEMs: those are never read again.
const CACHE_KEY: &str = "pay:v3:platform-certificates:answer";
/// Held for [`MIN_DOWNLOAD_GAP`] by the replica that downloads.
const LOCK_KEY: &str = "pay:v3:platform-certificates:download";

/// Clears a mutex's poison: what it guards (an `Instant`) stays valid.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Keys {
    public_key: Option<(String, PublicKey)>,
    api_v3_key: ApiV3Key,
    verifier: RwLock<Arc<Verifier>>,
    cache: Cache,
    /// When certificates were last loaded (downloaded or read from the cache).
    loaded_at: Mutex<Option<Instant>>,
    /// When this replica last tried a download.
    tried_at: Mutex<Option<Instant>>,
    /// The cached answer last opened (or refused): not opened again.
    cached_seen: Mutex<Option<String>>,
    /// One refresh at a time per replica; the others wait and see its result.
    refreshing: tokio::sync::Mutex<()>,
}

impl Keys {
    pub fn new(cfg: &V3Config, cache: Cache) -> Result<Self, String> {
        let api_v3_key =
            ApiV3Key::new(cfg.api_v3_key.expose()).map_err(|e| format!("MCH_API_V3_KEY: {e}"))?;
        let public_key = match &cfg.public_key {
            Some((id, pem)) => Some((
                id.clone(),
                PublicKey::from_pem(pem).map_err(|e| format!("WECHATPAY_PUBLIC_KEY_PEM: {e}"))?,
            )),
            None => None,
        };
        let keys = Keys {
            public_key,
            api_v3_key,
            verifier: RwLock::new(Arc::new(Verifier::new())),
            cache,
            loaded_at: Mutex::new(None),
            tried_at: Mutex::new(None),
            cached_seen: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        };
        keys.install(Vec::new());
        Ok(keys)
    }

    pub fn api_v3_key(&self) -> &ApiV3Key {
        &self.api_v3_key
    }

    /// The keys in use now.
    pub fn current(&self) -> Arc<Verifier> {
        self.verifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The public key (if any), the certificates held and `more`, without
    /// the expired ones, become the keys in use.
    fn install(&self, more: Vec<PlatformCertificate>) {
        let now = chrono::Utc::now();
        let mut v = Verifier::new();
        if let Some((id, key)) = &self.public_key {
            v = v.with_public_key(id.clone(), key.clone());
        }
        let held: Vec<PlatformCertificate> = self.current().certificates().cloned().collect();
        for cert in held.into_iter().chain(more) {
            if cert.not_after() > now {
                v.add_certificate(cert);
            }
        }
        *self.verifier.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(v);
    }

    /// Certificates are due without a public key before the first check, and
    /// every [`REFRESH_EVERY`] once some were loaded.
    fn refresh_due(&self) -> bool {
        match *lock(&self.loaded_at) {
            None => self.public_key.is_none(),
            Some(at) => at.elapsed() >= REFRESH_EVERY,
        }
    }

    /// Checks a signature (answer or notification); an unknown serial first
    /// refreshes the certificates (rate-limited). The timestamp's freshness
    /// is the caller's check.
    pub async fn verify(&self, api: &V3Api, msg: &SignedMessage<'_>) -> Result<(), V3Error> {
        if self.refresh_due() {
            self.refresh(api, None).await;
        }
        match self.current().verify(msg) {
            Err(V3Error::UnknownSerial(serial)) => {
                if self.refresh(api, Some(&serial)).await {
                    self.current().verify(msg)
                } else {
                    Err(V3Error::UnknownSerial(serial))
                }
            }
            other => other,
        }
    }

    /// Loads certificates from the cache, else downloads them (at most once
    /// a minute). True when the keys now know `wanted` (or, without one,
    /// when certificates were loaded).
    async fn refresh(&self, api: &V3Api, wanted: Option<&str>) -> bool {
        let _one = self.refreshing.lock().await;
        let satisfied = |keys: &Self| match wanted {
            Some(serial) => keys.current().knows(serial),
            None => !keys.refresh_due(),
        };
        // Another task may have refreshed while this one waited.
        if satisfied(self) {
            return true;
        }
        // Another replica may have downloaded (also while this one lost the
        // download lock to it just now): read before the gap, but open
        // only a value not seen yet, so that serials anyone can make up
        // cost a cache read each, not certificate decryption and parsing.
        if self.load_cached().await && satisfied(self) {
            return true;
        }
        if lock(&self.tried_at).is_some_and(|t| t.elapsed() < MIN_DOWNLOAD_GAP) {
            return false;
        }
        *lock(&self.tried_at) = Some(Instant::now());
        // Another replica downloads (or just did; its result is in the cache).
        match self.cache.set_nx(LOCK_KEY, "1", MIN_DOWNLOAD_GAP).await {
            Ok(false) => return false,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(error = %e, "certificate download lock unavailable; downloading anyway")
            }
        }
        match self.download(api).await {
            Ok((certs, body)) => {
                let serials: Vec<&str> = certs.iter().map(|c| c.serial_no()).collect();
                tracing::info!(?serials, "WeChat Pay platform certificates downloaded");
                if let Err(e) = self.cache.set(CACHE_KEY, &body, REFRESH_EVERY).await {
                    tracing::warn!(error = %e, "platform certificates not shared through the cache");
                }
                *lock(&self.cached_seen) = Some(body);
                self.install(certs);
                *lock(&self.loaded_at) = Some(Instant::now());
                satisfied(self)
            }
            Err(e) => {
                tracing::warn!(error = %e, "WeChat Pay platform certificates not downloaded");
                false
            }
        }
    }

    /// Installs what another replica downloaded (within `REFRESH_EVERY`),
    /// once it opens as a download does: every certificate decrypts with
    /// the APIv3 key and has the serial it is listed under. Anything else
    /// in the cache is ignored (and logged): it is not what WeChat sent.
    async fn load_cached(&self) -> bool {
        let Ok(Some(text)) = self.cache.get(CACHE_KEY).await else {
            return false;
        };
        {
            let mut seen = lock(&self.cached_seen);
            if seen.as_deref() == Some(text.as_str()) {
                return false;
            }
            *seen = Some(text.clone());
        }
        let certs = match self.open_certificates(text.as_bytes()) {
            Ok(certs) => certs,
            Err(e) => {
                tracing::warn!(error = %e, key = CACHE_KEY, "cached platform certificates ignored: they do not open with our APIv3 key");
                return false;
            }
        };
        if certs.is_empty() {
            return false;
        }
        self.install(certs);
        *lock(&self.loaded_at) = Some(Instant::now());
        true
    }

    /// `GET /v3/certificates`: every certificate decrypted with the APIv3
    /// key and matching its serial, and the answer signed by one of them
    /// (or by the public key).
    /// Also the answer's body, to share through the cache.
    async fn download(&self, api: &V3Api) -> Result<(Vec<PlatformCertificate>, String), String> {
        let answer = api
            .send_once(&Method::GET, PATH, None)
            .await
            .map_err(|e| e.to_string())?;
        if answer.status != 200 {
            return Err(format!("{PATH} answered HTTP {}", answer.status));
        }
        let certs = self.open_certificates(&answer.body)?;
        let mut v = (*self.current()).clone();
        for c in &certs {
            v.add_certificate(c.clone());
        }
        v.verify(&answer.message())
            .map_err(|e| format!("{PATH} answer: {e}"))?;
        let body =
            String::from_utf8(answer.body).map_err(|_| format!("{PATH} answer: not UTF-8"))?;
        Ok((certs, body))
    }

    /// The certificates of a `/v3/certificates` answer, decrypted.
    pub fn open_certificates(&self, body: &[u8]) -> Result<Vec<PlatformCertificate>, String> {
        let list: CertificatesResponse =
            serde_json::from_slice(body).map_err(|e| format!("{PATH}: not its JSON: {e}"))?;
        let mut certs = Vec::with_capacity(list.data.len());
        for entry in list.data {
            let pem = entry
                .encrypt_certificate
                .decrypt(&self.api_v3_key)
                .map_err(|e| format!("{PATH}: certificate {}: {e}", entry.serial_no))?;
            let cert = PlatformCertificate::from_pem(&pem)
                .map_err(|e| format!("{PATH}: certificate {}: {e}", entry.serial_no))?;
            if !cert.serial_no().eq_ignore_ascii_case(&entry.serial_no) {
                return Err(format!(
                    "{PATH}: certificate listed as {} has serial {}",
                    entry.serial_no,
                    cert.serial_no()
                ));
            }
            certs.push(cert);
        }
        Ok(certs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::Secret;

    fn keys() -> Keys {
        let cfg = V3Config {
            api_v3_key: Secret::new("0123456789abcdef0123456789abcdef"),
            serial_no: "ABC".into(),
            private_key_pem: Secret::new(""),
            public_key: None,
        };
        Keys::new(&cfg, Cache::memory()).unwrap()
    }

    #[test]
    fn certificates_are_due_before_the_first_check_and_every_12_hours() {
        let k = keys();
        assert!(k.refresh_due(), "no public key, nothing loaded yet");
        *lock(&k.loaded_at) = Some(Instant::now());
        assert!(!k.refresh_due());
        if let Some(long_ago) = Instant::now().checked_sub(REFRESH_EVERY) {
            *lock(&k.loaded_at) = Some(long_ago);
            assert!(k.refresh_due());
        }
    }

    #[test]
    fn a_download_must_decrypt_with_our_key() {
        let k = keys();
        let other = ApiV3Key::new("fedcba9876543210fedcba9876543210").unwrap();
        let sealed = shared::wechatpay_v3::EncryptedResource::seal(
            &other,
            "0123456789ab",
            "certificate",
            None,
            b"-----BEGIN CERTIFICATE-----",
        )
        .unwrap();
        let body = serde_json::json!({"data": [{
            "serial_no": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            "effective_time": "2018-06-08T10:34:56+08:00",
            "expire_time": "2023-06-08T10:34:56+08:00",
            "encrypt_certificate": sealed,
        }]});
        let e = k
            .open_certificates(body.to_string().as_bytes())
            .unwrap_err();
        assert!(e.contains("does not decrypt"), "{e}");
        assert!(k.open_certificates(b"{}").is_err());
    }

    /// The cache is shared with whoever can write it: only an answer whose
    /// certificates decrypt with our APIv3 key is installed, and a value
    /// already opened is not opened again (an unknown serial costs a cache
    /// read, not certificate parsing).
    #[tokio::test]
    async fn only_a_cached_answer_that_opens_is_installed_and_only_once() {
        let k = keys();
        let pki = wechat_sandbox::TestPki::generate("1900000109").unwrap();
        let pem = pki.client_cert_pem.as_str();
        let serial = PlatformCertificate::from_pem(pem)
            .unwrap()
            .serial_no()
            .to_owned();
        let ttl = Duration::from_secs(60);
        // Planted: the certificate itself, as earlier versions cached it.
        let planted = serde_json::to_string(&[pem]).unwrap();
        k.cache.set(CACHE_KEY, &planted, ttl).await.unwrap();
        assert!(!k.load_cached().await);
        assert!(!k.current().knows(&serial));
        let answer = |key: &ApiV3Key| {
            let sealed = shared::wechatpay_v3::EncryptedResource::seal(
                key,
                "0123456789ab",
                "certificate",
                None,
                pem.as_bytes(),
            )
            .unwrap();
            serde_json::json!({"data": [{
                "serial_no": serial,
                "effective_time": "2020-01-01T00:00:00+08:00",
                "expire_time": "2040-01-01T00:00:00+08:00",
                "encrypt_certificate": sealed,
            }]})
            .to_string()
        };
        // Planted: WeChat's shape, sealed with another key.
        let other = ApiV3Key::new("fedcba9876543210fedcba9876543210").unwrap();
        k.cache.set(CACHE_KEY, &answer(&other), ttl).await.unwrap();
        assert!(!k.load_cached().await);
        assert!(!k.current().knows(&serial));
        // Sealed with our key (as WeChat's answer is): installed, once.
        let genuine = answer(k.api_v3_key());
        k.cache.set(CACHE_KEY, &genuine, ttl).await.unwrap();
        assert!(k.load_cached().await);
        assert!(k.current().knows(&serial));
        assert!(!k.load_cached().await, "the same value is not opened again");
    }
}
