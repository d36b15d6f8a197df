//! Configuration, read once at start into typed structs (API.md §2).
//!
//! Values come from the process environment; a file named by `WXPAY_CONFIG`
//! (`KEY=VALUE` lines, `#` comments) may add to it, and the environment wins.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::traces::{Sampling, TraceExport};

/// A secret value: Debug and Display print `***`, so it cannot leak through a
/// log line or an error message by accident. `expose()` is the one way in.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A database URL: Debug and Display hide its password
/// (`postgres://wxpay:***@db/wxpay`), so printing a configuration never leaks
/// it. Derefs to the full URL for the one place that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(value: impl Into<String>) -> Self {
        DatabaseUrl(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for DatabaseUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url_password(&self.0))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url_password(&self.0))
    }
}

/// The URL with its password (if any) replaced by `***`; a value that does not
/// parse as a URL is hidden whole, since where its password is cannot be told.
pub fn redact_url_password(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
                return "***".to_owned();
            }
            parsed.to_string()
        }
        Err(_) if url.starts_with("sqlite:") => url.to_owned(),
        Err(_) => "***".to_owned(),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(String),
    #[error("invalid environment variable {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
}

impl ConfigError {
    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The file of `KEY=VALUE` lines every binary reads from its working
/// directory when present, as docker compose does: `cp .env.example .env`
/// works for `cargo run` too. The environment wins over it.
pub const DOTENV: &str = ".env";

/// A snapshot of the configuration variables. Services read it once at start;
/// tests and `stack` build one from explicit pairs instead of mutating the
/// process environment.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets; only the names are safe to show.
        let mut names: Vec<_> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

impl Env {
    /// The process environment over the optional `WXPAY_CONFIG` file, over
    /// `.env` in the working directory when there is one.
    pub fn from_process() -> Result<Self, ConfigError> {
        Env::layered(
            std::path::Path::new(DOTENV),
            std::env::var("WXPAY_CONFIG").ok().as_deref(),
            std::env::vars(),
        )
    }

    /// `dotenv` when the file exists (dotenvy's syntax: quotes, `export`,
    /// comments), then the file `config_file` names, then `vars`: each
    /// later source wins. Nothing is written to the process environment.
    pub fn layered(
        dotenv: &std::path::Path,
        config_file: Option<&str>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut env = Env::default();
        if dotenv.is_file() {
            let file_error = |reason: String| ConfigError::File {
                path: dotenv.display().to_string(),
                reason,
            };
            let pairs = dotenvy::from_path_iter(dotenv).map_err(|e| file_error(e.to_string()))?;
            for pair in pairs {
                let (k, v) = pair.map_err(|e| file_error(e.to_string()))?;
                env.vars.insert(k, v);
            }
        }
        if let Some(path) = config_file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            env.merge_file_text(&text);
        }
        env.vars.extend(vars);
        Ok(env)
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    fn merge_file_text(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim().trim_matches('"');
                self.vars.insert(k.trim().to_owned(), v.to_owned());
            }
        }
    }

    /// Sets a value unless one is present: how `stack` supplies its defaults.
    pub fn set_default(&mut self, name: &str, value: impl Into<String>) {
        if self.get(name).is_none() {
            self.vars.insert(name.to_owned(), value.into());
        }
    }

    /// Sets a value, replacing any present.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.vars.insert(name.to_owned(), value.into());
    }

    /// Sets each pair, replacing values present: later pairs win.
    pub fn extend<I, K, V>(&mut self, pairs: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.vars
            .extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
    }

    /// The names whose value still holds [`PLACEHOLDER`] (any case), sorted:
    /// copied from an example file and never filled in.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .vars
            .iter()
            .filter(|(_, v)| v.to_ascii_lowercase().contains(PLACEHOLDER))
            .map(|(k, _)| k.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// A set, non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| ConfigError::Missing(name.to_owned()))
    }

    pub fn secret(&self, name: &str) -> Result<Secret, ConfigError> {
        self.required(name).map(Secret)
    }

    pub fn optional_secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(|v| Secret(v.to_owned()))
    }

    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e: T::Err| ConfigError::invalid(name, e.to_string())),
        }
    }

    pub fn millis_or(&self, name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.parse_or(name, default_ms).map(Duration::from_millis)
    }

    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "on" | "yes") => Ok(true),
            Some("0" | "false" | "off" | "no") => Ok(false),
            Some(other) => Err(ConfigError::invalid(
                name,
                format!("{other:?} is not on/off"),
            )),
        }
    }
}

/// An app's id and secret (official account or mini program).
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub app_id: String,
    pub app_secret: Secret,
}

impl AppCredentials {
    /// Both variables or neither: half a credential is a mistake worth stopping for.
    pub fn optional(
        env: &Env,
        id_var: &str,
        secret_var: &str,
    ) -> Result<Option<Self>, ConfigError> {
        match (env.get(id_var), env.get(secret_var)) {
            (None, None) => Ok(None),
            (Some(id), Some(secret)) => Ok(Some(AppCredentials {
                app_id: id.to_owned(),
                app_secret: Secret::new(secret),
            })),
            (Some(_), None) => Err(ConfigError::Missing(secret_var.to_owned())),
            (None, Some(_)) => Err(ConfigError::Missing(id_var.to_owned())),
        }
    }
}

/// Where WeChat lives; the sandbox replaces all three.
#[derive(Debug, Clone)]
pub struct WechatBases {
    pub api: String,
    pub open: String,
    pub pay: String,
}

/// Defined beside the logging it configures; named here too, where it is read.
pub use crate::telemetry::LogFormat;

/// Timeouts and retries for calls to WeChat.
#[derive(Debug, Clone)]
pub struct HttpClientConfig {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Extra attempts after the first, on network errors and errcode -1.
    pub retries: u32,
    pub backoff: Duration,
}

/// What every service reads.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub service: &'static str,
    pub listen_addr: SocketAddr,
    pub public_base_url: Url,
    pub database_url: DatabaseUrl,
    /// `DATABASE_POOL_SIZE`: connections this process may hold (each replica
    /// holds this many: keep replicas × size under PostgreSQL's
    /// `max_connections`). None: 16 on PostgreSQL, 8 on SQLite.
    pub database_pool_size: Option<u32>,
    pub redis_url: Option<Secret>,
    /// `CACHE_MAX_ENTRIES`, `CACHE_MAX_BYTES`: bounds of the in-process cache.
    pub memory_cache: crate::cache::MemoryLimits,
    pub session_secret: Secret,
    /// `SESSION_SECRET_PREVIOUS`: during a key rotation, tokens signed with it
    /// still verify; nothing is signed with it.
    pub session_secret_previous: Option<Secret>,
    pub session_ttl: Duration,
    pub allowed_origins: Vec<String>,
    pub wechat: WechatBases,
    pub http: HttpClientConfig,
    pub log_format: LogFormat,
    /// OpenTelemetry span export (`OTEL_EXPORTER_OTLP_ENDPOINT` …); None: off.
    pub traces: Option<crate::traces::TraceExport>,
    pub max_json_bytes: usize,
    pub max_xml_bytes: usize,
    /// How long a client may take to send a request body once its head has
    /// arrived (`BODY_TIMEOUT_MS`); actix's own timeout covers the head only.
    pub body_timeout: Duration,
    /// The gateways whose `X-Real-IP` names the client (`TRUSTED_GATEWAYS`,
    /// CIDRs; loopback when unset).
    pub trusted_gateways: crate::http::TrustedGateways,
}

/// The placeholder of the example files (`.env.example`: `change-me`,
/// deploy/k8s's secret example: `CHANGE-ME`). A value holding it, in any
/// variable, stops the service at start: a secret nobody filled in must not
/// reach WeChat or sign anything.
pub const PLACEHOLDER: &str = "change-me";

/// Session keys shorter than this are refused: the token's HMAC is only as
/// strong as its key.
pub const MIN_SESSION_SECRET_LEN: usize = 32;

impl CommonConfig {
    pub fn from_env(
        env: &Env,
        service: &'static str,
        default_port: u16,
    ) -> Result<Self, ConfigError> {
        let placeholders = env.placeholders();
        if !placeholders.is_empty() {
            return Err(ConfigError::invalid(
                &placeholders.join(", "),
                format!("still the example's placeholder ({PLACEHOLDER}): set real values"),
            ));
        }
        let listen_addr = env.parse_or(
            "LISTEN_ADDR",
            SocketAddr::from(([127, 0, 0, 1], default_port)),
        )?;
        #[allow(
            clippy::expect_used,
            reason = "a literal URL, checked by the defaults test"
        )]
        let public_base_url: Url = env.parse_or(
            "PUBLIC_BASE_URL",
            Url::parse("http://127.0.0.1:8080").expect("literal URL"),
        )?;
        if !matches!(public_base_url.scheme(), "http" | "https") {
            return Err(ConfigError::invalid("PUBLIC_BASE_URL", "must be http(s)"));
        }
        let database_url = DatabaseUrl(env.get("DATABASE_URL").map(str::to_owned).unwrap_or_else(
            || format!("sqlite://data/{}.db", service.trim_end_matches("-service")),
        ));
        let database_pool_size: Option<u32> = env
            .get("DATABASE_POOL_SIZE")
            .map(|_| env.parse_or("DATABASE_POOL_SIZE", 0))
            .transpose()?;
        if database_pool_size.is_some_and(|n| !(1..=1000).contains(&n)) {
            return Err(ConfigError::invalid(
                "DATABASE_POOL_SIZE",
                "must be 1 to 1000",
            ));
        }
        let memory_cache = memory_limits(env)?;
        let insecure_bases = env.bool_or("ALLOW_INSECURE_WECHAT_BASES", false)?;
        let session_secret = session_key("SESSION_SECRET", env.secret("SESSION_SECRET")?)?;
        let session_secret_previous = env
            .optional_secret("SESSION_SECRET_PREVIOUS")
            .map(|s| session_key("SESSION_SECRET_PREVIOUS", s))
            .transpose()?;
        let allowed_origins = match env.get("ALLOWED_REDIRECT_ORIGINS") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    origin_of(s).ok_or_else(|| {
                        ConfigError::invalid(
                            "ALLOWED_REDIRECT_ORIGINS",
                            format!("{s:?} is not an http(s) origin"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![public_base_url.origin().ascii_serialization()],
        };
        let log_format = match env.get("LOG_FORMAT") {
            Some("json") => LogFormat::Json,
            Some("pretty" | "text") | None => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "LOG_FORMAT",
                    format!("{other:?}: use json or pretty"),
                ));
            }
        };
        Ok(CommonConfig {
            service,
            listen_addr,
            public_base_url,
            database_url,
            database_pool_size,
            redis_url: env.optional_secret("REDIS_URL"),
            memory_cache,
            session_secret,
            session_secret_previous,
            session_ttl: Duration::from_secs(env.parse_or("SESSION_TTL_SECONDS", 7 * 24 * 3600)?),
            allowed_origins,
            wechat: WechatBases {
                api: base(
                    env,
                    "WECHAT_API_BASE",
                    "https://api.weixin.qq.com",
                    insecure_bases,
                )?,
                open: base(
                    env,
                    "WECHAT_OPEN_BASE",
                    "https://open.weixin.qq.com",
                    insecure_bases,
                )?,
                pay: base(
                    env,
                    "WECHATPAY_API_BASE",
                    "https://api.mch.weixin.qq.com",
                    insecure_bases,
                )?,
            },
            http: HttpClientConfig {
                connect_timeout: env.millis_or("WECHAT_CONNECT_TIMEOUT_MS", 2_000)?,
                timeout: env.millis_or("WECHAT_TIMEOUT_MS", 5_000)?,
                retries: env.parse_or("WECHAT_RETRIES", 2)?,
                backoff: env.millis_or("WECHAT_RETRY_BACKOFF_MS", 100)?,
            },
            log_format,
            traces: crate::traces::TraceExport::from_env(env, service)?,
            max_json_bytes: env.parse_or("MAX_JSON_BYTES", 64 * 1024)?,
            max_xml_bytes: env.parse_or("MAX_XML_BYTES", crate::xml::DEFAULT_MAX_XML_BYTES)?,
            body_timeout: env.millis_or("BODY_TIMEOUT_MS", 10_000)?,
            trusted_gateways: match env.get("TRUSTED_GATEWAYS").map(str::trim) {
                Some(list) if !list.is_empty() => crate::http::TrustedGateways::parse(list)
                    .map_err(|e| ConfigError::invalid("TRUSTED_GATEWAYS", e))?,
                _ => crate::http::TrustedGateways::default(),
            },
        })
    }

    /// `PUBLIC_BASE_URL` joined with an absolute path.
    pub fn public_url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.public_base_url.as_str().trim_end_matches('/'),
            path
        )
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_base_url.scheme() == "https"
    }
}

/// A session key, refused when too short to make a strong HMAC key.
fn session_key(name: &str, secret: Secret) -> Result<Secret, ConfigError> {
    if secret.expose().len() < MIN_SESSION_SECRET_LEN {
        return Err(ConfigError::invalid(
            name,
            format!("must be at least {MIN_SESSION_SECRET_LEN} characters"),
        ));
    }
    Ok(secret)
}

/// A WeChat base URL. Plain http would send app secrets, codes and signed
/// payment requests in the clear, so it is refused unless
/// `ALLOW_INSECURE_WECHAT_BASES=on` says this is a sandbox setup.
fn base(env: &Env, name: &str, default: &str, allow_http: bool) -> Result<String, ConfigError> {
    let value = env.get(name).unwrap_or(default);
    let url = Url::parse(value).map_err(|e| ConfigError::invalid(name, e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(ConfigError::invalid(
                name,
                "must be https (set ALLOW_INSECURE_WECHAT_BASES=on for a local sandbox)",
            ));
        }
        _ => return Err(ConfigError::invalid(name, "must be https")),
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn memory_limits(env: &Env) -> Result<crate::cache::MemoryLimits, ConfigError> {
    let default = crate::cache::MemoryLimits::default();
    let limits = crate::cache::MemoryLimits {
        max_entries: env.parse_or("CACHE_MAX_ENTRIES", default.max_entries)?,
        max_bytes: env.parse_or("CACHE_MAX_BYTES", default.max_bytes)?,
    };
    if limits.max_entries == 0 {
        return Err(ConfigError::invalid(
            "CACHE_MAX_ENTRIES",
            "must be at least 1",
        ));
    }
    if limits.max_bytes < 64 * 1024 {
        return Err(ConfigError::invalid(
            "CACHE_MAX_BYTES",
            "must be at least 65536",
        ));
    }
    Ok(limits)
}

/// `scheme://host[:port]` of an absolute http(s) URL, or None.
pub fn origin_of(s: &str) -> Option<String> {
    let url = Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

/// Stops the process with one line naming the problem (API.md §2).
pub fn exit_on_error<T>(result: Result<T, ConfigError>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// A file in a fresh temporary folder.
    fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wxpay-config-{}-{}",
            std::process::id(),
            crate::random::alphanumeric(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn dotenv_is_read_and_the_config_file_and_the_environment_win() {
        let dotenv = temp_file(
            ".env",
            "# a comment\nexport ONLY_DOTENV=\"quoted value\"\nIN_ALL=dotenv\nIN_DOTENV_AND_FILE=dotenv\n",
        );
        let file = temp_file("wxpay.conf", "IN_ALL=file\nIN_DOTENV_AND_FILE=file\n");
        let env = Env::layered(
            &dotenv,
            Some(file.to_str().unwrap()),
            [("IN_ALL".to_owned(), "process".to_owned())],
        )
        .unwrap();
        assert_eq!(env.get("ONLY_DOTENV"), Some("quoted value"));
        assert_eq!(env.get("IN_DOTENV_AND_FILE"), Some("file"));
        assert_eq!(env.get("IN_ALL"), Some("process"));
    }

    #[test]
    fn no_dotenv_is_fine_and_a_broken_one_is_named() {
        let missing = std::env::temp_dir().join("wxpay-no-such-dir/.env");
        let env = Env::layered(&missing, None, [("A".to_owned(), "1".to_owned())]).unwrap();
        assert_eq!(env.get("A"), Some("1"));
        let broken = temp_file(".env", "GOOD=1\nBAD LINE WITHOUT EQUALS\n");
        let err = Env::layered(&broken, None, []).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot read config file {}", broken.display())),
            "{err}"
        );
    }

    #[test]
    fn every_placeholder_is_refused_and_named() {
        let env = Env::from_pairs([
            ("SESSION_SECRET", SECRET),
            ("WX_APP_SECRET", "change-me"),
            (
                "DATABASE_URL",
                "postgres://wxpay:CHANGE-ME@db.invalid/wxpay",
            ),
            ("MCH_KEY", "change-me-to-the-32-char-apiv2-k"),
        ]);
        let err = CommonConfig::from_env(&env, "pay-service", 8083)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DATABASE_URL, MCH_KEY, WX_APP_SECRET") && err.contains("placeholder"),
            "{err}"
        );
        assert!(!err.contains("CHANGE-ME@"), "values are not printed: {err}");
        let filled = Env::from_pairs([("SESSION_SECRET", SECRET), ("WX_APP_SECRET", "s3cret")]);
        assert!(CommonConfig::from_env(&filled, "pay-service", 8083).is_ok());
    }

    #[test]
    fn database_passwords_never_print() {
        let env = Env::from_pairs([
            ("SESSION_SECRET", SECRET),
            ("DATABASE_URL", "postgres://wxpay:pg-pass-42@db:5432/wxpay"),
            ("REDIS_URL", "redis://:redis-pass-42@redis:6379"),
        ]);
        let cfg = CommonConfig::from_env(&env, "pay-service", 8083).unwrap();
        let printed = format!("{cfg:?} {}", cfg.database_url);
        assert!(!printed.contains("pg-pass-42"), "{printed}");
        assert!(!printed.contains("redis-pass-42"), "{printed}");
        assert!(
            printed.contains("postgres://wxpay:***@db:5432/wxpay"),
            "{printed}"
        );
        assert_eq!(
            cfg.database_url.expose(),
            "postgres://wxpay:pg-pass-42@db:5432/wxpay"
        );
        assert_eq!(
            redact_url_password("sqlite://data/pay.db"),
            "sqlite://data/pay.db"
        );
        assert_eq!(redact_url_password("not a url :pw@"), "***");
    }

    #[test]
    fn plain_http_wechat_bases_need_the_sandbox_switch() {
        for name in ["WECHAT_API_BASE", "WECHAT_OPEN_BASE", "WECHATPAY_API_BASE"] {
            let env =
                Env::from_pairs([("SESSION_SECRET", SECRET), (name, "http://127.0.0.1:8090")]);
            let err = CommonConfig::from_env(&env, "a", 1)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(name) && err.contains("ALLOW_INSECURE_WECHAT_BASES"),
                "{err}"
            );
            let env = Env::from_pairs([
                ("SESSION_SECRET", SECRET),
                (name, "http://127.0.0.1:8090"),
                ("ALLOW_INSECURE_WECHAT_BASES", "on"),
            ]);
            assert!(CommonConfig::from_env(&env, "a", 1).is_ok(), "{name}");
        }
        let env = Env::from_pairs([("SESSION_SECRET", SECRET), ("WECHAT_API_BASE", "ftp://x")]);
        assert!(CommonConfig::from_env(&env, "a", 1).is_err());
    }

    #[test]
    fn pool_size_and_cache_bounds_are_checked() {
        let with = |k: &str, v: &str| {
            CommonConfig::from_env(
                &Env::from_pairs([("SESSION_SECRET", SECRET), (k, v)]),
                "a",
                1,
            )
        };
        assert_eq!(
            with("DATABASE_POOL_SIZE", "4").unwrap().database_pool_size,
            Some(4)
        );
        for bad in ["0", "1001", "many"] {
            let err = with("DATABASE_POOL_SIZE", bad).unwrap_err().to_string();
            assert!(err.contains("DATABASE_POOL_SIZE"), "{err}");
        }
        assert_eq!(
            with("CACHE_MAX_ENTRIES", "500")
                .unwrap()
                .memory_cache
                .max_entries,
            500
        );
        assert!(with("CACHE_MAX_ENTRIES", "0").is_err());
        assert!(with("CACHE_MAX_BYTES", "10").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        let env = Env::from_pairs([("SESSION_SECRET", SECRET)]);
        let cfg = CommonConfig::from_env(&env, "auth-service", 8081).unwrap();
        assert!(!format!("{cfg:?}").contains(SECRET));
        assert!(!format!("{env:?}").contains(SECRET));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let env = Env::from_pairs([("SESSION_SECRET", SECRET)]);
        let cfg = CommonConfig::from_env(&env, "pay-service", 8083).unwrap();
        assert_eq!(cfg.listen_addr.to_string(), "127.0.0.1:8083");
        assert_eq!(cfg.database_url.expose(), "sqlite://data/pay.db");
        assert_eq!(
            cfg.allowed_origins,
            vec!["http://127.0.0.1:8080".to_string()]
        );
        assert_eq!(cfg.wechat.api, "https://api.weixin.qq.com");
        assert_eq!(cfg.wechat.pay, "https://api.mch.weixin.qq.com");
        assert!(cfg.redis_url.is_none());
        assert_eq!(cfg.body_timeout, Duration::from_secs(10));
        assert_eq!(
            cfg.public_url("/api/pay/notify"),
            "http://127.0.0.1:8080/api/pay/notify"
        );
    }

    #[test]
    fn missing_and_invalid_values_name_the_variable() {
        let err = CommonConfig::from_env(&Env::default(), "auth-service", 8081).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required environment variable SESSION_SECRET"
        );
        let env = Env::from_pairs([("SESSION_SECRET", "short")]);
        assert!(
            CommonConfig::from_env(&env, "a", 1)
                .unwrap_err()
                .to_string()
                .contains("SESSION_SECRET")
        );
        let env = Env::from_pairs([
            ("SESSION_SECRET", SECRET),
            ("SESSION_SECRET_PREVIOUS", "short"),
        ]);
        assert!(
            CommonConfig::from_env(&env, "a", 1)
                .unwrap_err()
                .to_string()
                .contains("SESSION_SECRET_PREVIOUS")
        );
        let env = Env::from_pairs([("SESSION_SECRET", SECRET), ("LISTEN_ADDR", "nope")]);
        assert!(
            CommonConfig::from_env(&env, "a", 1)
                .unwrap_err()
                .to_string()
                .contains("LISTEN_ADDR")
        );
        let env = Env::from_pairs([
            ("SESSION_SECRET", SECRET),
            ("ALLOWED_REDIRECT_ORIGINS", "ftp://x"),
        ]);
        assert!(
            CommonConfig::from_env(&env, "a", 1)
                .unwrap_err()
                .to_string()
                .contains("ALLOWED_REDIRECT_ORIGINS")
        );
    }

    #[test]
    fn half_a_credential_is_refused() {
        let env = Env::from_pairs([("WX_APP_ID", "wx1")]);
        assert_eq!(
            AppCredentials::optional(&env, "WX_APP_ID", "WX_APP_SECRET").unwrap_err(),
            ConfigError::Missing("WX_APP_SECRET".into())
        );
        assert!(
            AppCredentials::optional(&Env::default(), "WX_APP_ID", "WX_APP_SECRET")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn config_file_adds_and_env_wins() {
        let mut env = Env::default();
        env.merge_file_text("# comment\nMCH_ID=1\nPUBLIC_BASE_URL=\"https://shop.example\"\n");
        env.vars.insert("MCH_ID".into(), "2".into());
        assert_eq!(env.get("MCH_ID"), Some("2"));
        assert_eq!(env.get("PUBLIC_BASE_URL"), Some("https://shop.example"));
    }

    #[test]
    fn extend_and_set_let_later_values_win() {
        let mut env = Env::from_pairs([("A", "1"), ("B", "1")]);
        env.extend([("B", "2"), ("C", "2")]);
        env.set("C", "3");
        env.set_default("A", "ignored");
        assert_eq!(
            (env.get("A"), env.get("B"), env.get("C")),
            (Some("1"), Some("2"), Some("3"))
        );
    }

    #[test]
    fn origins_are_normalised() {
        let env = Env::from_pairs([
            ("SESSION_SECRET", SECRET),
            (
                "ALLOWED_REDIRECT_ORIGINS",
                "https://Shop.Example:443/, http://127.0.0.1:3000",
            ),
        ]);
        let cfg = CommonConfig::from_env(&env, "a", 1).unwrap();
        assert_eq!(
            cfg.allowed_origins,
            vec!["https://shop.example", "http://127.0.0.1:3000"]
        );
    }
}

// ---- OpenTelemetry trace export. shared::traces holds the types and the
// exporter; the variables are read here, with the rest of the configuration,
// so that traces depends on nothing in config. ----

impl Sampling {
    fn from_env(env: &Env) -> Result<Sampling, ConfigError> {
        const VAR: &str = "OTEL_TRACES_SAMPLER";
        let name = env.get(VAR).unwrap_or("parentbased_always_on");
        let name = name.strip_prefix("parentbased_").unwrap_or(name);
        match name {
            "always_on" => Ok(Sampling::AlwaysOn),
            "always_off" => Ok(Sampling::AlwaysOff),
            "traceidratio" => {
                let arg = env.get("OTEL_TRACES_SAMPLER_ARG").unwrap_or("1.0");
                per_million(arg).map(Sampling::PerMillion).ok_or_else(|| {
                    ConfigError::invalid(
                        "OTEL_TRACES_SAMPLER_ARG",
                        format!("{arg:?}: a ratio from 0 to 1, e.g. 0.1"),
                    )
                })
            }
            other => Err(ConfigError::invalid(
                VAR,
                format!("{other:?}: use (parentbased_)always_on, always_off or traceidratio"),
            )),
        }
    }
}

/// "0.25" → 250000, without floating point: at most six decimals.
fn per_million(ratio: &str) -> Option<u32> {
    let (whole, fraction) = ratio.split_once('.').unwrap_or((ratio, ""));
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}").parse().ok()?
    };
    let ppm = whole.checked_mul(1_000_000)?.checked_add(fraction)?;
    (ppm <= 1_000_000).then_some(ppm)
}

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

impl TraceExport {
    /// None when no endpoint is set, `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`. A value this process cannot honour
    /// (another protocol, a bad URL) stops the start naming its variable
    /// rather than silently exporting nothing.
    pub fn from_env(env: &Env, service: &str) -> Result<Option<TraceExport>, ConfigError> {
        if env
            .get("OTEL_SDK_DISABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Ok(None);
        }
        match env.get("OTEL_TRACES_EXPORTER") {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(ConfigError::invalid(
                    "OTEL_TRACES_EXPORTER",
                    format!("{other:?}: only otlp (or none) is built in"),
                ));
            }
        }
        let endpoint = match (env.get(TRACES_ENDPOINT), env.get(ENDPOINT)) {
            (Some(url), _) if !url.is_empty() => parse_endpoint(TRACES_ENDPOINT, url)?,
            (_, Some(base)) if !base.is_empty() => {
                // The generic variable names the collector; the signal's path
                // is appended (OTLP exporter specification).
                let url = format!("{}/v1/traces", base.trim_end_matches('/'));
                parse_endpoint(ENDPOINT, &url)?
            }
            _ => return Ok(None),
        };
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            match env.get(var) {
                None | Some("http/protobuf") => {}
                Some(other) => {
                    return Err(ConfigError::invalid(
                        var,
                        format!(
                            "{other:?}: only http/protobuf is built in (the collector's port 4318)"
                        ),
                    ));
                }
            }
        }
        let timeout = match env.get("OTEL_EXPORTER_OTLP_TIMEOUT") {
            None => Duration::from_secs(10),
            Some(ms) => ms
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "OTEL_EXPORTER_OTLP_TIMEOUT",
                        format!("{ms:?}: milliseconds, more than 0"),
                    )
                })?,
        };
        Ok(Some(TraceExport {
            endpoint,
            service_name: env
                .get("OTEL_SERVICE_NAME")
                .filter(|n| !n.is_empty())
                .unwrap_or(service)
                .to_owned(),
            headers: parse_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or(""))?,
            timeout,
            sampling: Sampling::from_env(env)?,
        }))
    }
}

/// An http(s) URL without credentials: they would not be sent (the OTLP
/// exporter does not turn them into a header) and would end up in logs.
fn parse_endpoint(var: &'static str, url: &str) -> Result<url::Url, ConfigError> {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| ConfigError::invalid(var, "an http(s) URL such as http://collector:4318"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::invalid(
            var,
            "no credentials in the URL: put them in OTEL_EXPORTER_OTLP_HEADERS",
        ));
    }
    Ok(parsed)
}

fn parse_headers(list: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut headers = HashMap::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "key=value pairs separated by commas".to_owned(),
                )
            })?;
        let value = percent_decode(value.trim());
        headers.insert(key.trim().to_owned(), value);
    }
    Ok(headers)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod trace_export_tests {
    use super::*;
    use crate::traces::{Sampling, TraceExport};

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        assert_eq!(
            TraceExport::from_env(&env(&[]), "pay-service").unwrap(),
            None
        );
        let disabled = env(&[(ENDPOINT, "http://c:4318"), ("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(TraceExport::from_env(&disabled, "x").unwrap(), None);
        let none = env(&[
            (ENDPOINT, "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]);
        assert_eq!(TraceExport::from_env(&none, "x").unwrap(), None);
    }

    #[test]
    fn the_generic_endpoint_gets_the_signal_path_and_the_traces_one_is_kept() {
        let generic = env(&[(ENDPOINT, "http://collector:4318/")]);
        let e = TraceExport::from_env(&generic, "pay-service")
            .unwrap()
            .unwrap();
        assert_eq!(e.endpoint.as_str(), "http://collector:4318/v1/traces");
        assert_eq!(e.service_name, "pay-service");
        assert_eq!(e.timeout, Duration::from_secs(10));
        let own = env(&[
            (ENDPOINT, "http://collector:4318"),
            (TRACES_ENDPOINT, "https://t.example/otlp/spans"),
            ("OTEL_SERVICE_NAME", "pay-eu"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%3Db, x = y "),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]);
        let e = TraceExport::from_env(&own, "pay-service").unwrap().unwrap();
        assert_eq!(e.endpoint.as_str(), "https://t.example/otlp/spans");
        assert_eq!(e.service_name, "pay-eu");
        assert_eq!(e.headers["api-key"], "a=b");
        assert_eq!(e.headers["x"], "y");
        assert_eq!(e.timeout, Duration::from_millis(2500));
        let shown = format!("{e:?}");
        assert!(
            shown.contains("api-key") && !shown.contains("a=b"),
            "{shown}"
        );
    }

    #[test]
    fn what_cannot_be_honoured_names_its_variable() {
        for (pairs, var) in [
            (vec![(ENDPOINT, "collector:4318")], ENDPOINT),
            (
                vec![(TRACES_ENDPOINT, "ftp://c/v1/traces")],
                TRACES_ENDPOINT,
            ),
            (
                vec![
                    (ENDPOINT, "http://c:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                vec![(ENDPOINT, "http://c"), ("OTEL_TRACES_EXPORTER", "zipkin")],
                "OTEL_TRACES_EXPORTER",
            ),
            (
                vec![
                    (ENDPOINT, "http://c"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
                ],
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            (
                vec![(ENDPOINT, "http://c"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "0")],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ),
        ] {
            let err = TraceExport::from_env(&env(&pairs), "x").unwrap_err();
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn sampling_is_read_without_floating_point_and_never_from_the_caller() {
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![(ENDPOINT, "http://c:4318")];
            all.extend_from_slice(pairs);
            TraceExport::from_env(&env(&all), "x").map(|e| e.unwrap().sampling)
        };
        assert_eq!(with(&[]).unwrap(), Sampling::AlwaysOn);
        assert_eq!(
            with(&[("OTEL_TRACES_SAMPLER", "parentbased_always_off")]).unwrap(),
            Sampling::AlwaysOff
        );
        for (arg, ppm) in [
            ("0.1", 100_000),
            ("0.000001", 1),
            ("1", 1_000_000),
            ("0", 0),
        ] {
            let got = with(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", arg),
            ]);
            assert_eq!(got.unwrap(), Sampling::PerMillion(ppm), "{arg}");
        }
        for arg in ["1.5", "-0.1", "0.1234567", "x", "1e-3"] {
            let err = with(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", arg),
            ])
            .unwrap_err();
            assert!(
                err.to_string().contains("OTEL_TRACES_SAMPLER_ARG"),
                "{arg}: {err}"
            );
        }
        let err = with(&[("OTEL_TRACES_SAMPLER", "jaeger_remote")]).unwrap_err();
        assert!(err.to_string().contains("OTEL_TRACES_SAMPLER"), "{err}");
    }

    #[test]
    fn credentials_in_the_endpoint_are_refused_without_being_repeated() {
        for url in ["http://key@c:4318", "http://u:secret@c:4318"] {
            let err = TraceExport::from_env(&env(&[(ENDPOINT, url)]), "x").unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.contains(ENDPOINT) && shown.contains("OTEL_EXPORTER_OTLP_HEADERS"),
                "{shown}"
            );
            assert!(
                !shown.contains("secret") && !shown.contains("key@"),
                "{shown}"
            );
        }
    }
}
