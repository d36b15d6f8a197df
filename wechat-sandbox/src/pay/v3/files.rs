//! The v3 files a service is pointed at (`MCH_KEY_PEM`, `MCH_CERT_PEM`,
//! `WECHATPAY_PUBLIC_KEY_PEM`), written at start like the TLS listener's
//! `SANDBOX_TLS_DIR` files.

use std::path::{Path, PathBuf};

use crate::keys::V3KeysInfo;

/// Written files and the variables naming them.
pub(crate) struct V3Files {
    dir: PathBuf,
    /// A temp dir of our own, removed on drop.
    owned: bool,
    env: Vec<(&'static str, String)>,
}

impl V3Files {
    /// Writes `apiclient_key.pem`, `apiclient_cert.pem`,
    /// `wechatpay_public_key.pem` and `platform_cert.pem` into `dir` (a new
    /// temp dir when None).
    pub fn write(info: &V3KeysInfo, api_v3_key: &str, dir: Option<&Path>) -> Result<Self, String> {
        let (dir, owned) = match dir {
            Some(d) => (d.to_path_buf(), false),
            None => (
                std::env::temp_dir().join(format!("wechat-sandbox-v3-{}", crate::ids::alnum(12))),
                true,
            ),
        };
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // Owned before anything is written, so a failure cleans up.
        let mut files = V3Files {
            dir,
            owned,
            env: Vec::new(),
        };
        let dir = files.dir.clone();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let mut env = vec![
            ("MCH_API_V3_KEY", api_v3_key.to_owned()),
            ("MCH_CERT_SERIAL_NO", info.merchant_serial_no.clone()),
            ("WECHATPAY_PUBLIC_KEY_ID", info.public_key_id.clone()),
        ];
        for (var, file, pem) in [
            ("MCH_KEY_PEM", "apiclient_key.pem", &info.merchant.key_pem),
            (
                "MCH_CERT_PEM",
                "apiclient_cert.pem",
                &info.merchant.cert_pem,
            ),
            (
                "WECHATPAY_PUBLIC_KEY_PEM",
                "wechatpay_public_key.pem",
                &info.public_key_pem,
            ),
            ("", "platform_cert.pem", &info.platform_cert_pem),
        ] {
            std::fs::write(path(file), pem).map_err(|e| format!("{}: {e}", path(file)))?;
            if !var.is_empty() {
                env.push((var, path(file)));
            }
        }
        files.env = env;
        Ok(files)
    }

    pub fn env(&self) -> &[(&'static str, String)] {
        &self.env
    }
}

impl Drop for V3Files {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
