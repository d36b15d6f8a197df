//! pay-service's configuration, read once at start (API.md §2).

use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use shared::config::{CommonConfig, ConfigError, Env, Secret};
use shared::sign::SignType;
use shared::wechatpay_v3::{ApiV3Key, PrivateKey, PublicKey};

use crate::db::ApiVersion;

pub const SERVICE: &str = "pay-service";
pub const DEFAULT_PORT: u16 = 8083;

/// ¥10,000.00: well above a small shop's basket, well below anything that
/// would make a typo expensive. `MAX_ORDER_FEN` raises it.
pub const DEFAULT_MAX_ORDER_FEN: i64 = 1_000_000;

/// Attempts after which an undelivered event is listed as failed.
pub const DEFAULT_WEBHOOK_FAILED_AFTER: i64 = 5;

#[derive(Debug, Clone)]
pub struct PayConfig {
    pub common: CommonConfig,
    /// `MCH_ID`.
    pub mch_id: String,
    /// `MCH_KEY`, the APIv2 key.
    pub mch_key: Secret,
    /// `MP_APP_ID`: the mini program whose sessions may pay.
    pub mp_app_id: Option<String>,
    /// `WX_APP_ID`: the official account whose sessions may pay.
    pub wx_app_id: Option<String>,
    /// `PAY_SIGN_TYPE`: `MD5` (default) or `HMAC-SHA256`.
    pub sign_type: SignType,
    /// `ORDER_EXPIRE_MINUTES` (default 30): becomes unifiedorder's `time_expire`.
    pub order_expire: Duration,
    /// `MIN_ORDER_FEN` (default 1) and `MAX_ORDER_FEN` (default 1,000,000).
    pub min_order_fen: i64,
    pub max_order_fen: i64,
    /// `ORDER_DESCRIPTION`: unifiedorder's `body` when the client gives none.
    pub default_description: String,
    /// `RECONCILE_AFTER_SECONDS` (default 300): how long an order may stay NOTPAY
    /// before reconciliation asks WeChat about it (and how long between asks).
    pub reconcile_after: Duration,
    /// `RECONCILE_INTERVAL_SECONDS` (default 60): how often the worker runs;
    /// 0 turns the background worker off (tests call `reconcile_once`).
    pub reconcile_interval: Duration,
    /// `RECONCILE_BATCH` (default 50): orders one pass claims at most.
    pub reconcile_batch: i64,
    /// `BILL_HOUR` (Beijing time, 0-23, default 10): from this hour the
    /// previous day's WeChat bill is downloaded and reconciled.
    pub bill_hour: u32,
    /// `BILL_INTERVAL_SECONDS` (default 600): how often the daily bill job
    /// looks whether a day is due (and retries one WeChat had no bill for
    /// yet); 0 turns it off.
    pub bill_interval: Duration,
    /// `ADMIN_TOKENS=name:token,…` (one token per operator) and/or the older
    /// `ADMIN_TOKEN` (operator `admin`): bearer tokens of the admin routes;
    /// none set, they answer 404.
    pub admins: Vec<AdminOperator>,
    /// Rate limits and the refused-notification log's bounds.
    pub limits: PayLimits,
    /// Refunds; required (and checked at start) when an admin token is set.
    pub refunds: Option<RefundConfig>,
    /// `MERCHANT_WEBHOOK_URL` and friends; unset, events wait in the outbox.
    pub webhook: Option<WebhookConfig>,
    /// `PAY_API_VERSION`: the API new orders use (default v3 when
    /// `MCH_API_V3_KEY` is set, else v2). Existing orders keep theirs.
    pub api_version: ApiVersion,
    /// APIv3 credentials, present when `MCH_API_V3_KEY` is set (v3 orders
    /// made before a switch back to v2 still need them).
    pub v3: Option<V3Config>,
}

/// What APIv3 needs (API.md §2), read and checked at start.
#[derive(Clone)]
pub struct V3Config {
    /// `MCH_API_V3_KEY` (32 bytes): decrypts notifications and certificates.
    pub api_v3_key: Secret,
    /// `MCH_CERT_SERIAL_NO`: the merchant API certificate's serial, named in
    /// every request's `Authorization`.
    pub serial_no: String,
    /// `MCH_KEY_PEM`'s content: the merchant's PKCS#8 private key.
    pub private_key_pem: Secret,
    /// `WECHATPAY_PUBLIC_KEY_ID` and `WECHATPAY_PUBLIC_KEY_PEM`'s content;
    /// unset, platform certificates are downloaded from `/v3/certificates`.
    pub public_key: Option<(String, String)>,
}

impl std::fmt::Debug for V3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V3Config")
            .field("serial_no", &self.serial_no)
            .field("public_key_id", &self.public_key.as_ref().map(|(id, _)| id))
            .finish_non_exhaustive()
    }
}

impl V3Config {
    /// None without `MCH_API_V3_KEY`; otherwise every value it needs, each
    /// refused naming its variable.
    fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(key) = env.get("MCH_API_V3_KEY").filter(|k| !k.is_empty()) else {
            return Ok(None);
        };
        ApiV3Key::new(key).map_err(|_| {
            ConfigError::invalid("MCH_API_V3_KEY", "must be exactly 32 bytes (the APIv3 key)")
        })?;
        let serial_no = env
            .get("MCH_CERT_SERIAL_NO")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConfigError::Missing("MCH_CERT_SERIAL_NO (required with MCH_API_V3_KEY)".into())
            })?
            .to_owned();
        if !serial_no.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ConfigError::invalid(
                "MCH_CERT_SERIAL_NO",
                "must be the certificate's serial number in hex",
            ));
        }
        let key_pem = read_text_file("MCH_KEY_PEM", env)?.ok_or_else(|| {
            ConfigError::Missing("MCH_KEY_PEM (required with MCH_API_V3_KEY)".into())
        })?;
        PrivateKey::from_pem(&key_pem)
            .map_err(|e| ConfigError::invalid("MCH_KEY_PEM", e.to_string()))?;
        let id = env
            .get("WECHATPAY_PUBLIC_KEY_ID")
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let pem = read_text_file("WECHATPAY_PUBLIC_KEY_PEM", env)?;
        let public_key = match (id, pem) {
            (None, None) => None,
            (Some(id), Some(pem)) => {
                PublicKey::from_pem(&pem)
                    .map_err(|e| ConfigError::invalid("WECHATPAY_PUBLIC_KEY_PEM", e.to_string()))?;
                Some((id.to_owned(), pem))
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing(
                    "WECHATPAY_PUBLIC_KEY_ID (required with WECHATPAY_PUBLIC_KEY_PEM)".into(),
                ));
            }
            (Some(_), None) => {
                return Err(ConfigError::Missing(
                    "WECHATPAY_PUBLIC_KEY_PEM (required with WECHATPAY_PUBLIC_KEY_ID)".into(),
                ));
            }
        };
        Ok(Some(V3Config {
            api_v3_key: Secret::new(key),
            serial_no: serial_no.to_ascii_uppercase(),
            private_key_pem: Secret::new(key_pem),
            public_key,
        }))
    }
}

fn read_text_file(var: &str, env: &Env) -> Result<Option<String>, ConfigError> {
    match read_pem_file(var, env)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ConfigError::invalid(var, "is not a text (PEM) file")),
    }
}

/// `PAY_API_VERSION`: `v2` or `v3`; default v3 when APIv3 is configured.
fn api_version(env: &Env, v3: Option<&V3Config>) -> Result<ApiVersion, ConfigError> {
    match env.get("PAY_API_VERSION").filter(|v| !v.is_empty()) {
        None if v3.is_some() => Ok(ApiVersion::V3),
        None => Ok(ApiVersion::V2),
        Some(v) => match (ApiVersion::parse(&v.to_ascii_lowercase()), v3) {
            (Some(ApiVersion::V3), None) => Err(ConfigError::Missing(
                "MCH_API_V3_KEY (required with PAY_API_VERSION=v3)".into(),
            )),
            (Some(a), _) => Ok(a),
            (None, _) => Err(ConfigError::invalid(
                "PAY_API_VERSION",
                format!("{v:?}: use v2 or v3"),
            )),
        },
    }
}

/// The merchant's client certificate and where `/secapi/pay/refund` is.
#[derive(Clone)]
pub struct RefundConfig {
    /// `WECHATPAY_REFUND_BASE` (default `WECHATPAY_API_BASE`); https only,
    /// since the certificate is presented in the TLS handshake.
    pub base: String,
    /// `MCH_CERT_PEM` and `MCH_KEY_PEM` (file paths), read at start:
    /// certificate chain then key, as `reqwest::Identity::from_pem` takes them.
    pub identity_pem: Vec<u8>,
    /// `WECHATPAY_CA_PEM` (file path): extra root CA(s) to trust for WeChat
    /// Pay, e.g. the sandbox's test CA. Public roots are trusted regardless.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RefundConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefundConfig")
            .field("base", &self.base)
            .field("identity_pem", &"<redacted>")
            .field("ca_pem", &self.ca_pem.as_ref().map(|c| c.len()))
            .finish()
    }
}

/// Where and how merchant events are delivered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `MERCHANT_WEBHOOK_URL`.
    pub url: url::Url,
    /// `MERCHANT_WEBHOOK_SECRET` (required with the URL, at least 16 characters).
    pub secret: Secret,
    /// `WEBHOOK_INTERVAL_MS` (default 1000): dispatcher period; 0 turns the
    /// background dispatcher off (tests call `dispatch_once`).
    pub interval: Duration,
    /// `WEBHOOK_RETRY_BASE_MS` (default 1000) doubling per failed attempt up to
    /// `WEBHOOK_RETRY_MAX_MS` (default 600000).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `WEBHOOK_FAILED_AFTER` (default 5): attempts after which an undelivered
    /// event is listed as `failed` (it is still retried).
    pub failed_after: i64,
    /// `WEBHOOK_TIMEOUT_MS` (default 10000): one POST's limit.
    pub timeout: Duration,
    /// `WEBHOOK_BATCH` (default 50): events claimed per round.
    pub batch: i64,
}

impl WebhookConfig {
    /// How long a claimed event is left to its claimer before another replica
    /// may send it: well past one POST's timeout.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}

fn read_pem_file(var: &str, env: &Env) -> Result<Option<Vec<u8>>, ConfigError> {
    let Some(path) = env.get(var).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    std::fs::read(Path::new(path))
        .map(Some)
        .map_err(|e| ConfigError::invalid(var, format!("cannot read {path}: {e}")))
}

fn certificates_in(var: &str, pem: &[u8]) -> Result<usize, ConfigError> {
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| ConfigError::invalid(var, format!("not a PEM certificate: {e}")))?;
        n += 1;
    }
    if n == 0 {
        return Err(ConfigError::invalid(var, "holds no PEM CERTIFICATE"));
    }
    Ok(n)
}

impl RefundConfig {
    fn from_env(env: &Env, pay_base: &str) -> Result<Self, ConfigError> {
        if env.get("MCH_P12").is_some_and(|p| !p.is_empty()) {
            return Err(ConfigError::invalid(
                "MCH_P12",
                "PKCS#12 is not supported (the TLS stack is rustls); convert it with \
                 `openssl pkcs12 -in apiclient_cert.p12 -nodes -passin pass:$MCH_ID` \
                 and set MCH_CERT_PEM and MCH_KEY_PEM, or use WeChat's apiclient_cert.pem \
                 and apiclient_key.pem",
            ));
        }
        let cert = read_pem_file("MCH_CERT_PEM", env)?.ok_or_else(|| {
            ConfigError::Missing("MCH_CERT_PEM (required with ADMIN_TOKEN, for refunds)".into())
        })?;
        let key = read_pem_file("MCH_KEY_PEM", env)?.ok_or_else(|| {
            ConfigError::Missing("MCH_KEY_PEM (required with ADMIN_TOKEN, for refunds)".into())
        })?;
        certificates_in("MCH_CERT_PEM", &cert)?;
        PrivateKeyDer::from_pem_slice(&key)
            .map_err(|e| ConfigError::invalid("MCH_KEY_PEM", format!("no PEM private key: {e}")))?;
        let mut identity_pem = cert;
        identity_pem.push(b'\n');
        identity_pem.extend_from_slice(&key);
        reqwest::Identity::from_pem(&identity_pem).map_err(|e| {
            ConfigError::invalid(
                "MCH_CERT_PEM",
                format!("certificate and key do not load: {e}"),
            )
        })?;
        let ca_pem = read_pem_file("WECHATPAY_CA_PEM", env)?;
        if let Some(ca) = &ca_pem {
            certificates_in("WECHATPAY_CA_PEM", ca)?;
            reqwest::Certificate::from_pem_bundle(ca)
                .map_err(|e| ConfigError::invalid("WECHATPAY_CA_PEM", e.to_string()))?;
        }
        let base = env
            .get("WECHATPAY_REFUND_BASE")
            .unwrap_or(pay_base)
            .trim_end_matches('/')
            .to_owned();
        match url::Url::parse(&base) {
            Ok(u) if u.scheme() == "https" && u.host().is_some() => {}
            _ => {
                return Err(ConfigError::invalid(
                    "WECHATPAY_REFUND_BASE",
                    format!(
                        "{base:?} must be an https URL (the client certificate goes in the TLS handshake); it defaults to WECHATPAY_API_BASE"
                    ),
                ));
            }
        }
        Ok(RefundConfig {
            base,
            identity_pem,
            ca_pem,
        })
    }
}

impl WebhookConfig {
    fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(raw) = env.get("MERCHANT_WEBHOOK_URL").filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let url = url::Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ConfigError::invalid("MERCHANT_WEBHOOK_URL", "must be an absolute http(s) URL")
            })?;
        let secret = env.secret("MERCHANT_WEBHOOK_SECRET")?;
        if secret.expose().len() < 16 {
            return Err(ConfigError::invalid(
                "MERCHANT_WEBHOOK_SECRET",
                "must be at least 16 characters",
            ));
        }
        let failed_after: i64 =
            env.parse_or("WEBHOOK_FAILED_AFTER", DEFAULT_WEBHOOK_FAILED_AFTER)?;
        let batch: i64 = env.parse_or("WEBHOOK_BATCH", 50)?;
        if failed_after < 1 {
            return Err(ConfigError::invalid(
                "WEBHOOK_FAILED_AFTER",
                "must be at least 1",
            ));
        }
        if batch < 1 {
            return Err(ConfigError::invalid("WEBHOOK_BATCH", "must be at least 1"));
        }
        let retry_base = env.millis_or("WEBHOOK_RETRY_BASE_MS", 1000)?;
        let retry_max = env.millis_or("WEBHOOK_RETRY_MAX_MS", 600_000)?;
        if retry_base.is_zero() || retry_max < retry_base {
            return Err(ConfigError::invalid(
                "WEBHOOK_RETRY_MAX_MS",
                "WEBHOOK_RETRY_BASE_MS must be positive and not above WEBHOOK_RETRY_MAX_MS",
            ));
        }
        let timeout = env.millis_or("WEBHOOK_TIMEOUT_MS", 10_000)?;
        if timeout.is_zero() {
            return Err(ConfigError::invalid(
                "WEBHOOK_TIMEOUT_MS",
                "must be positive",
            ));
        }
        Ok(Some(WebhookConfig {
            url,
            secret,
            interval: env.millis_or("WEBHOOK_INTERVAL_MS", 1000)?,
            retry_base,
            retry_max,
            failed_after,
            timeout,
            batch,
        }))
    }
}

/// `PAY_SIGN_TYPE`: `MD5` (default) or `HMAC-SHA256`.
fn sign_type(env: &Env) -> Result<SignType, ConfigError> {
    match env.get("PAY_SIGN_TYPE") {
        None => Ok(SignType::Md5),
        Some(s) => SignType::parse(s).ok_or_else(|| {
            ConfigError::invalid("PAY_SIGN_TYPE", format!("{s:?}: use MD5 or HMAC-SHA256"))
        }),
    }
}

/// `ORDER_EXPIRE_MINUTES` (default 30).
fn expire_minutes(env: &Env) -> Result<u64, ConfigError> {
    let expire_minutes: u64 = env.parse_or("ORDER_EXPIRE_MINUTES", 30)?;
    // WeChat refuses a time_expire under 5 minutes away.
    if !(5..=60 * 24 * 15).contains(&expire_minutes) {
        return Err(ConfigError::invalid(
            "ORDER_EXPIRE_MINUTES",
            "must be between 5 and 21600",
        ));
    }
    Ok(expire_minutes)
}

/// `MIN_ORDER_FEN` and `MAX_ORDER_FEN`.
fn order_bounds(env: &Env) -> Result<(i64, i64), ConfigError> {
    let min_order_fen: i64 = env.parse_or("MIN_ORDER_FEN", 1)?;
    let max_order_fen: i64 = env.parse_or("MAX_ORDER_FEN", DEFAULT_MAX_ORDER_FEN)?;
    if min_order_fen < 1 {
        return Err(ConfigError::invalid("MIN_ORDER_FEN", "must be at least 1"));
    }
    if max_order_fen < min_order_fen {
        return Err(ConfigError::invalid(
            "MAX_ORDER_FEN",
            "must not be below MIN_ORDER_FEN",
        ));
    }
    Ok((min_order_fen, max_order_fen))
}

/// One operator of the admin routes: the audit trail names `name`.
#[derive(Clone)]
pub struct AdminOperator {
    pub name: String,
    pub token: Secret,
}

impl std::fmt::Debug for AdminOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOperator")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The operator name `ADMIN_TOKEN` stands for.
pub const LEGACY_ADMIN_NAME: &str = "admin";

fn admin_secret(var: &str, token: &str) -> Result<Secret, ConfigError> {
    if token.len() < 16 {
        return Err(ConfigError::invalid(
            var,
            "tokens must be at least 16 characters",
        ));
    }
    if token
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return Err(ConfigError::invalid(
            var,
            "tokens must not hold spaces, commas or control characters",
        ));
    }
    Ok(Secret::new(token))
}

/// `ADMIN_TOKENS=name:token,…` plus `ADMIN_TOKEN` (operator `admin`); both
/// unset or empty turn the admin routes off. Names are `[A-Za-z0-9_.-]`,
/// 1 to 32 characters, each once; tokens at least 16 characters, each once
/// (a shared token could not tell its operators apart).
fn admin_operators(env: &Env) -> Result<Vec<AdminOperator>, ConfigError> {
    let mut ops: Vec<AdminOperator> = Vec::new();
    if let Some(list) = env.get("ADMIN_TOKENS").filter(|t| !t.trim().is_empty()) {
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, token) = entry.split_once(':').ok_or_else(|| {
                ConfigError::invalid(
                    "ADMIN_TOKENS",
                    "entries must be name:token, comma-separated",
                )
            })?;
            let name = name.trim();
            let valid = (1..=32).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !valid {
                return Err(ConfigError::invalid(
                    "ADMIN_TOKENS",
                    "operator names must be 1 to 32 of A-Z a-z 0-9 _ . -",
                ));
            }
            ops.push(AdminOperator {
                name: name.to_owned(),
                token: admin_secret("ADMIN_TOKENS", token.trim())?,
            });
        }
    }
    if let Some(t) = env.get("ADMIN_TOKEN").filter(|t| !t.is_empty()) {
        ops.push(AdminOperator {
            name: LEGACY_ADMIN_NAME.to_owned(),
            token: admin_secret("ADMIN_TOKEN", t)?,
        });
    }
    for (i, a) in ops.iter().enumerate() {
        for b in &ops[..i] {
            if a.name == b.name {
                return Err(ConfigError::invalid(
                    "ADMIN_TOKENS",
                    format!(
                        "operator {} is named twice (ADMIN_TOKEN is operator {LEGACY_ADMIN_NAME})",
                        a.name
                    ),
                ));
            }
            if a.token.expose() == b.token.expose() {
                return Err(ConfigError::invalid(
                    "ADMIN_TOKENS",
                    format!("operators {} and {} share a token", b.name, a.name),
                ));
            }
        }
    }
    Ok(ops)
}

/// Per-minute budgets (0 turns one off) and the refused-notification log's
/// bounds. Budgets are counted in the shared cache, so every replica spends
/// the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayLimits {
    /// `ORDER_RATE_LIMIT` (default 20): orders one user may create per minute
    /// (`/api/mp/v2Pay`, `POST /api/pay/orders`).
    pub orders_per_minute: u32,
    /// `ORDER_SYNC_RATE_LIMIT` (default 60): `?sync=true` reads (each asks
    /// WeChat) per user per minute.
    pub syncs_per_minute: u32,
    /// `ADMIN_FAILED_LOGINS_PER_MINUTE` (default 5): failed admin logins per
    /// client address per minute, after which that address gets 429.
    pub admin_failures_per_minute: u32,
    /// `REFUSED_NOTIFY_PER_MINUTE` (default 30): notifications refused before
    /// verification that are written to the log per minute, all replicas
    /// together; the rest are only counted and logged.
    pub refused_records_per_minute: u32,
    /// `REFUSED_NOTIFY_KEEP_ROWS` (default 1000): refused rows kept at most.
    pub refused_keep_rows: i64,
    /// `REFUSED_NOTIFY_KEEP_DAYS` (default 7): refused rows kept at most this long.
    pub refused_keep_days: i64,
}

impl PayLimits {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let keep_rows: i64 = env.parse_or("REFUSED_NOTIFY_KEEP_ROWS", 1000)?;
        if !(1..=1_000_000).contains(&keep_rows) {
            return Err(ConfigError::invalid(
                "REFUSED_NOTIFY_KEEP_ROWS",
                "must be between 1 and 1000000",
            ));
        }
        let keep_days: i64 = env.parse_or("REFUSED_NOTIFY_KEEP_DAYS", 7)?;
        if !(1..=365).contains(&keep_days) {
            return Err(ConfigError::invalid(
                "REFUSED_NOTIFY_KEEP_DAYS",
                "must be between 1 and 365",
            ));
        }
        Ok(PayLimits {
            orders_per_minute: env.parse_or("ORDER_RATE_LIMIT", 20)?,
            syncs_per_minute: env.parse_or("ORDER_SYNC_RATE_LIMIT", 60)?,
            admin_failures_per_minute: env.parse_or("ADMIN_FAILED_LOGINS_PER_MINUTE", 5)?,
            refused_records_per_minute: env.parse_or("REFUSED_NOTIFY_PER_MINUTE", 30)?,
            refused_keep_rows: keep_rows,
            refused_keep_days: keep_days,
        })
    }
}

/// `BILL_HOUR`: an hour of the Beijing day.
fn bill_hour(env: &Env) -> Result<u32, ConfigError> {
    let hour: u32 = env.parse_or("BILL_HOUR", 10)?;
    if hour > 23 {
        return Err(ConfigError::invalid(
            "BILL_HOUR",
            "must be an hour of the day, 0 to 23",
        ));
    }
    Ok(hour)
}

impl PayConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, SERVICE, DEFAULT_PORT)?;
        let mch_id = env.required("MCH_ID")?;
        let mch_key = env.secret("MCH_KEY")?;
        let mp_app_id = env.get("MP_APP_ID").map(str::to_owned);
        let wx_app_id = env.get("WX_APP_ID").map(str::to_owned);
        if mp_app_id.is_none() && wx_app_id.is_none() {
            return Err(ConfigError::Missing("MP_APP_ID or WX_APP_ID".to_owned()));
        }
        let sign_type = sign_type(env)?;
        let expire_minutes = expire_minutes(env)?;
        let (min_order_fen, max_order_fen) = order_bounds(env)?;
        let reconcile_batch: i64 = env.parse_or("RECONCILE_BATCH", 50)?;
        if reconcile_batch < 1 {
            return Err(ConfigError::invalid(
                "RECONCILE_BATCH",
                "must be at least 1",
            ));
        }
        let admins = admin_operators(env)?;
        let refunds = match admins.is_empty() {
            false => Some(RefundConfig::from_env(env, &common.wechat.pay)?),
            true => None,
        };
        let limits = PayLimits::from_env(env)?;
        let webhook = WebhookConfig::from_env(env)?;
        let v3 = V3Config::from_env(env)?;
        let api_version = api_version(env, v3.as_ref())?;
        Ok(PayConfig {
            api_version,
            v3,
            admins,
            limits,
            refunds,
            webhook,
            common,
            mch_id,
            mch_key,
            mp_app_id,
            wx_app_id,
            sign_type,
            order_expire: Duration::from_secs(expire_minutes * 60),
            min_order_fen,
            max_order_fen,
            default_description: env
                .get("ORDER_DESCRIPTION")
                .unwrap_or("wxpay order")
                .to_owned(),
            reconcile_after: Duration::from_secs(env.parse_or("RECONCILE_AFTER_SECONDS", 300)?),
            reconcile_interval: Duration::from_secs(
                env.parse_or("RECONCILE_INTERVAL_SECONDS", 60)?,
            ),
            reconcile_batch,
            bill_hour: bill_hour(env)?,
            bill_interval: Duration::from_secs(env.parse_or("BILL_INTERVAL_SECONDS", 600)?),
        })
    }

    /// Where WeChat sends payment notifications.
    pub fn notify_url(&self) -> String {
        self.common.public_url("/api/pay/notify")
    }

    /// Where WeChat sends refund notifications.
    pub fn refund_notify_url(&self) -> String {
        self.common.public_url("/api/pay/refund-notify")
    }

    /// Where WeChat sends v3 payment notifications.
    pub fn v3_notify_url(&self) -> String {
        self.common.public_url("/api/pay/v3/notify")
    }

    /// Where WeChat sends v3 refund notifications.
    pub fn v3_refund_notify_url(&self) -> String {
        self.common.public_url("/api/pay/v3/refund-notify")
    }

    /// Whether sessions of `appid` may pay here.
    pub fn is_configured_app(&self, appid: &str) -> bool {
        self.mp_app_id.as_deref() == Some(appid) || self.wx_app_id.as_deref() == Some(appid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("SESSION_SECRET", "0123456789abcdef0123456789abcdef"),
            ("MCH_ID", "1900000109"),
            ("MCH_KEY", "merchant-key-that-must-not-print"),
            ("MP_APP_ID", "wxmp"),
        ]
    }

    #[test]
    fn defaults() {
        let cfg = PayConfig::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(cfg.common.listen_addr.to_string(), "127.0.0.1:8083");
        assert_eq!(cfg.sign_type, SignType::Md5);
        assert_eq!(cfg.order_expire, Duration::from_secs(1800));
        assert_eq!((cfg.min_order_fen, cfg.max_order_fen), (1, 1_000_000));
        assert_eq!(cfg.notify_url(), "http://127.0.0.1:8080/api/pay/notify");
        assert!(cfg.is_configured_app("wxmp"));
        assert!(!cfg.is_configured_app("wxother"));
        assert!(!format!("{cfg:?}").contains("merchant-key-that-must-not-print"));
    }

    #[test]
    fn required_and_invalid_values_are_named() {
        let without = |name: &str| {
            let pairs: Vec<_> = base().into_iter().filter(|(k, _)| *k != name).collect();
            PayConfig::from_env(&Env::from_pairs(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(without("MCH_ID").contains("MCH_ID"));
        assert!(without("MCH_KEY").contains("MCH_KEY"));
        assert!(without("MP_APP_ID").contains("MP_APP_ID or WX_APP_ID"));
        let with = |k: &'static str, v: &'static str| {
            let mut pairs = base();
            pairs.push((k, v));
            PayConfig::from_env(&Env::from_pairs(pairs))
        };
        assert!(
            with("PAY_SIGN_TYPE", "SHA1")
                .unwrap_err()
                .to_string()
                .contains("PAY_SIGN_TYPE")
        );
        assert_eq!(
            with("PAY_SIGN_TYPE", "HMAC-SHA256").unwrap().sign_type,
            SignType::HmacSha256
        );
        assert!(with("ORDER_EXPIRE_MINUTES", "1").is_err());
        assert!(
            with("MAX_ORDER_FEN", "0")
                .unwrap_err()
                .to_string()
                .contains("MAX_ORDER_FEN")
        );
        assert!(with("MIN_ORDER_FEN", "0").is_err());
    }
}
