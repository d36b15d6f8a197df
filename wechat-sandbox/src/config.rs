//! Who the sandbox knows: apps, merchants and test users, and where it listens.

use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

use crate::ids;

pub const SANDBOX_OA_APPID: &str = "wx5a1d0b0c0a000001";
pub const SANDBOX_OA_SECRET: &str = "sandbox-oa-app-secret-000000001";
pub const SANDBOX_MP_APPID: &str = "wx5a1d0b0c0b000002";
pub const SANDBOX_MP_SECRET: &str = "sandbox-mp-app-secret-000000002";
pub const SANDBOX_MCH_ID: &str = "1900000109";
/// APIv2 keys are 32 characters, like WeChat's.
pub const SANDBOX_MCH_KEY: &str = "5a1dbox0mch0key0for0tests0000032";
/// The APIv3 key: 32 characters, the AES-256 key of notifications and
/// downloaded certificates.
pub const SANDBOX_MCH_API_V3_KEY: &str = "5a1dbox0v3key0for0tests000000032";

const DEFAULT_LISTEN: &str = "127.0.0.1:8090";

/// The configuration variables that point a wxpay service at a sandbox served
/// at `base` instead of WeChat: the three WeChat bases, and the sandbox's default
/// apps and merchant as the service's credentials.
pub fn service_env(base: &str) -> Vec<(&'static str, String)> {
    let bases = ["WECHAT_API_BASE", "WECHAT_OPEN_BASE", "WECHATPAY_API_BASE"].map(|v| (v, base));
    let credentials = [
        ("WX_APP_ID", SANDBOX_OA_APPID),
        ("WX_APP_SECRET", SANDBOX_OA_SECRET),
        ("MP_APP_ID", SANDBOX_MP_APPID),
        ("MP_APP_SECRET", SANDBOX_MP_SECRET),
        ("MCH_ID", SANDBOX_MCH_ID),
        ("MCH_KEY", SANDBOX_MCH_KEY),
    ];
    // The sandbox's own listener is plain http; services refuse that for
    // WeChat unless told this is a sandbox setup.
    let insecure = base
        .starts_with("http://")
        .then_some(("ALLOW_INSECURE_WECHAT_BASES", "on"));
    bases
        .into_iter()
        .chain(credentials)
        .chain(insecure)
        .map(|(k, v)| (k, v.to_owned()))
        .collect()
}

/// An official account (web OAuth, JS-SDK) or a mini program (`wx.login`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AppKind {
    Oa,
    Mp,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SandboxApp {
    pub appid: String,
    pub secret: String,
    pub kind: AppKind,
}

// Secrets may be real ones when the sandbox is fed from the environment.
impl fmt::Debug for SandboxApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxApp")
            .field("appid", &self.appid)
            .field("secret", &"<redacted>")
            .field("kind", &self.kind)
            .finish()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct SandboxMerchant {
    pub mch_id: String,
    pub key: String,
    /// `MCH_API_V3_KEY`: 32 characters.
    pub api_v3_key: String,
    /// Apps bound to this merchant; unifiedorder refuses any other appid.
    pub appids: Vec<String>,
}

impl fmt::Debug for SandboxMerchant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxMerchant")
            .field("mch_id", &self.mch_id)
            .field("key", &"<redacted>")
            .field("api_v3_key", &"<redacted>")
            .field("appids", &self.appids)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxUser {
    /// The handle tests and the consent page use, e.g. `u1`.
    pub key: String,
    pub nickname: String,
    /// 0 unknown, 1 male, 2 female, as WeChat reports it.
    pub sex: u8,
    pub province: String,
    pub city: String,
    pub country: String,
    pub unionid: String,
}

impl SandboxUser {
    /// A user whose unionid is derived from `key`, so it is stable across runs.
    pub fn new(
        key: &str,
        nickname: &str,
        sex: u8,
        province: &str,
        city: &str,
        country: &str,
    ) -> Self {
        SandboxUser {
            key: key.to_owned(),
            nickname: nickname.to_owned(),
            sex,
            province: province.to_owned(),
            city: city.to_owned(),
            country: country.to_owned(),
            unionid: ids::unionid(key),
        }
    }
}

/// Three users with different shapes of profile. The third one looks like what
/// WeChat has returned since late 2021 for users who did not share a profile:
/// the placeholder nickname and empty sex and region.
pub fn default_users() -> Vec<SandboxUser> {
    vec![
        SandboxUser::new("u1", "张三", 1, "广东", "深圳", "中国"),
        SandboxUser::new("u2", "李小龙", 1, "浙江", "杭州", "中国"),
        SandboxUser::new("u3", "微信用户😀", 0, "", "", ""),
    ]
}

pub fn default_apps() -> Vec<SandboxApp> {
    vec![
        SandboxApp {
            appid: SANDBOX_OA_APPID.into(),
            secret: SANDBOX_OA_SECRET.into(),
            kind: AppKind::Oa,
        },
        SandboxApp {
            appid: SANDBOX_MP_APPID.into(),
            secret: SANDBOX_MP_SECRET.into(),
            kind: AppKind::Mp,
        },
    ]
}

pub fn default_merchants() -> Vec<SandboxMerchant> {
    vec![SandboxMerchant {
        mch_id: SANDBOX_MCH_ID.into(),
        key: SANDBOX_MCH_KEY.into(),
        api_v3_key: SANDBOX_MCH_API_V3_KEY.into(),
        appids: vec![SANDBOX_OA_APPID.into(), SANDBOX_MP_APPID.into()],
    }]
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Port 0 picks a free port; [`crate::Sandbox::addr`] tells which.
    pub listen: SocketAddr,
    /// Sandbox seconds per real second. Every expiry and the notification
    /// retry schedule run on the scaled clock.
    pub time_scale: f64,
    pub apps: Vec<SandboxApp>,
    pub merchants: Vec<SandboxMerchant>,
    pub users: Vec<SandboxUser>,
    /// What the sandbox calls itself in URLs it hands out (avatars, mweb_url);
    /// `http://<bound address>` when unset.
    pub public_base_url: Option<String>,
    /// A second, HTTPS listener requiring client certificates (`/secapi/`).
    pub tls: Option<crate::keys::SandboxTls>,
    /// The merchant's API key and certificate for v3 (requests are checked
    /// against the certificate); None: the sandbox issues one at start.
    pub v3_merchant: Option<crate::keys::MerchantIdentity>,
    /// What v3 answers and notifications are signed with at start.
    pub v3_sign_mode: crate::keys::SignMode,
    /// Where the v3 files named by [`crate::Sandbox::service_env`] are
    /// written; None: a temp dir removed with the sandbox.
    pub v3_dir: Option<std::path::PathBuf>,
}

impl SandboxConfig {
    pub fn for_tests() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            time_scale: 1.0,
            apps: default_apps(),
            merchants: default_merchants(),
            users: default_users(),
            public_base_url: None,
            tls: None,
            v3_merchant: None,
            v3_sign_mode: crate::keys::SignMode::default(),
            v3_dir: None,
        }
    }

    /// `LISTEN_ADDR` (default 127.0.0.1:8090), `SANDBOX_TIME_SCALE`,
    /// `SANDBOX_PUBLIC_BASE_URL`, and `WX_APP_ID`/`WX_APP_SECRET`,
    /// `MP_APP_ID`/`MP_APP_SECRET`, `MCH_ID`/`MCH_KEY` replacing the defaults, so
    /// the services can run against the sandbox with their own configuration.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    pub(crate) fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let listen_raw = var("LISTEN_ADDR").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_raw
            .parse::<SocketAddr>()
            .map_err(|e| format!("LISTEN_ADDR: {e}: {listen_raw}"))?;
        let time_scale = match var("SANDBOX_TIME_SCALE") {
            None => 1.0,
            Some(raw) => raw
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| format!("SANDBOX_TIME_SCALE: not a positive number: {raw}"))?,
        };
        let public_base_url = var("SANDBOX_PUBLIC_BASE_URL");

        let mut cfg = SandboxConfig {
            listen,
            time_scale,
            public_base_url,
            ..SandboxConfig::for_tests()
        };
        cfg.apply_credentials(&var)?;
        let mch_id = cfg
            .merchants
            .first()
            .map(|m| m.mch_id.clone())
            .unwrap_or_default();
        if let Some((tls, merchant)) = crate::keys::from_lookup(&var, &mch_id)? {
            cfg.tls = Some(tls);
            cfg.v3_merchant = merchant;
        }
        cfg.v3_dir = var("SANDBOX_V3_DIR").map(Into::into);
        if let Some(mode) = var("SANDBOX_V3_SIGN_MODE") {
            cfg.v3_sign_mode = serde_json::from_value(serde_json::Value::String(mode.clone()))
                .map_err(|_| {
                    format!("SANDBOX_V3_SIGN_MODE: platform, public_key or switch, not {mode}")
                })?;
        }
        Ok(cfg)
    }

    /// The apps' and the first merchant's credentials from the environment;
    /// a replaced appid stays bound to the merchant.
    fn apply_credentials(&mut self, var: &impl Fn(&str) -> Option<String>) -> Result<(), String> {
        for (kind, id_var, secret_var) in [
            (AppKind::Oa, "WX_APP_ID", "WX_APP_SECRET"),
            (AppKind::Mp, "MP_APP_ID", "MP_APP_SECRET"),
        ] {
            let Some(app) = self.apps.iter_mut().find(|a| a.kind == kind) else {
                continue;
            };
            if let Some(appid) = var(id_var) {
                for m in &mut self.merchants {
                    for bound in &mut m.appids {
                        if *bound == app.appid {
                            bound.clone_from(&appid);
                        }
                    }
                }
                app.appid = appid;
            }
            if let Some(secret) = var(secret_var) {
                app.secret = secret;
            }
        }
        if self.apps[0].appid == self.apps[1].appid {
            return Err("WX_APP_ID and MP_APP_ID must differ".into());
        }
        if let Some(m) = self.merchants.first_mut() {
            for (name, field) in [
                ("MCH_ID", &mut m.mch_id),
                ("MCH_KEY", &mut m.key),
                ("MCH_API_V3_KEY", &mut m.api_v3_key),
            ] {
                if let Some(value) = var(name) {
                    *field = value;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(format!(
                "time_scale must be positive, not {}",
                self.time_scale
            ));
        }
        if self.users.is_empty() {
            return Err("the sandbox needs at least one user".into());
        }
        if let Some(m) = self.merchants.iter().find(|m| m.api_v3_key.len() != 32) {
            return Err(format!(
                "merchant {}: the APIv3 key must be 32 bytes (MCH_API_V3_KEY)",
                m.mch_id
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<SandboxConfig, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SandboxConfig::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_without_environment() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8090".parse().unwrap());
        assert_eq!(c.time_scale, 1.0);
        assert_eq!(c.apps, default_apps());
        assert_eq!(c.merchants, default_merchants());
        assert_eq!(c.public_base_url, None);
    }

    #[test]
    fn environment_replaces_credentials_and_merchant_bindings() {
        let c = cfg(&[
            ("LISTEN_ADDR", "0.0.0.0:0"),
            ("SANDBOX_TIME_SCALE", "60"),
            ("WX_APP_ID", "wxoa"),
            ("WX_APP_SECRET", "oasecret"),
            ("MP_APP_ID", "wxmp"),
            ("MCH_ID", "42"),
            ("MCH_KEY", "k"),
        ])
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:0".parse().unwrap());
        assert_eq!(c.time_scale, 60.0);
        assert_eq!(c.apps[0].appid, "wxoa");
        assert_eq!(c.apps[0].secret, "oasecret");
        assert_eq!(c.apps[1].appid, "wxmp");
        assert_eq!(c.apps[1].secret, SANDBOX_MP_SECRET);
        assert_eq!(c.merchants[0].mch_id, "42");
        assert_eq!(c.merchants[0].key, "k");
        assert_eq!(
            c.merchants[0].appids,
            vec!["wxoa".to_string(), "wxmp".to_string()]
        );
    }

    #[test]
    fn bad_values_are_named() {
        assert!(
            cfg(&[("LISTEN_ADDR", "nope")])
                .unwrap_err()
                .starts_with("LISTEN_ADDR")
        );
        assert!(
            cfg(&[("SANDBOX_TIME_SCALE", "0")])
                .unwrap_err()
                .starts_with("SANDBOX_TIME_SCALE")
        );
        assert!(cfg(&[("SANDBOX_TIME_SCALE", "-1")]).is_err());
    }

    #[test]
    fn v3_settings_come_from_the_environment_and_are_checked() {
        let c = cfg(&[
            ("MCH_API_V3_KEY", "0123456789abcdef0123456789abcdef"),
            ("SANDBOX_V3_SIGN_MODE", "switch"),
            ("SANDBOX_V3_DIR", "/tmp/v3"),
        ])
        .unwrap();
        assert_eq!(
            c.merchants[0].api_v3_key,
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(c.v3_sign_mode, crate::keys::SignMode::Switch);
        assert_eq!(c.v3_dir, Some("/tmp/v3".into()));
        assert!(c.validate().is_ok());
        let e = cfg(&[("SANDBOX_V3_SIGN_MODE", "rsa")]).unwrap_err();
        assert!(e.starts_with("SANDBOX_V3_SIGN_MODE"), "{e}");
        let short = cfg(&[("MCH_API_V3_KEY", "short")]).unwrap();
        assert!(short.validate().unwrap_err().contains("MCH_API_V3_KEY"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = SandboxConfig::for_tests();
        let shown = format!("{c:?}");
        assert!(!shown.contains(SANDBOX_OA_SECRET));
        assert!(!shown.contains(SANDBOX_MCH_KEY));
        assert!(!shown.contains(SANDBOX_MCH_API_V3_KEY));
        assert!(shown.contains(SANDBOX_OA_APPID));
    }
}
