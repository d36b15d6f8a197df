//! Mini-program login (`wx.login` codes, `/sns/jscode2session`) and the
//! encrypted open data a mini program hands its backend.

use aes::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use serde_json::json;

use crate::clock::lock;
use crate::config::AppKind;
use crate::errors::WxError;
use crate::ids;
use crate::oauth::{authorization_code, check_app};
use crate::params::Params;
use crate::state::SandboxState;

impl SandboxState {
    /// What `wx.login()` gives the mini program: a code for jscode2session.
    pub fn issue_js_code(&self, appid: &str, user_key: &str) -> String {
        let now = self.clock.elapsed();
        lock(&self.mp).codes.issue(appid, user_key.to_owned(), now)
    }

    /// The user's current session_key in that mini program (base64), if they
    /// have logged in.
    pub fn session_key(&self, appid: &str, user_key: &str) -> Option<String> {
        lock(&self.mp)
            .session_keys
            .get(&(appid.to_owned(), user_key.to_owned()))
            .map(|k| STANDARD.encode(k))
    }

    /// Encrypts `data` the way WeChat encrypts `getPhoneNumber`/`getUserInfo`
    /// results: AES-128-CBC, PKCS#7, keyed by the current session_key, with a
    /// random iv and a `watermark` added to a JSON object. Returns
    /// `(encryptedData, iv)`, both base64. A user who never logged in is given
    /// a session_key first, as if `wx.login` had happened.
    pub fn encrypt_open_data(
        &self,
        appid: &str,
        user_key: &str,
        mut data: serde_json::Value,
    ) -> (String, String) {
        let key = *lock(&self.mp)
            .session_keys
            .entry((appid.to_owned(), user_key.to_owned()))
            .or_insert_with(random_key);
        if let Some(obj) = data.as_object_mut() {
            obj.insert(
                "watermark".into(),
                json!({ "appid": appid, "timestamp": self.now().timestamp() }),
            );
        }
        let iv = random_key();
        let plain = data.to_string();
        let cipher = cbc::Encryptor::<aes::Aes128>::new(&key.into(), &iv.into())
            .encrypt_padded_vec::<Pkcs7>(plain.as_bytes());
        (STANDARD.encode(cipher), STANDARD.encode(iv))
    }

    pub(crate) fn jscode2session(&self, q: &Params) -> Result<serde_json::Value, WxError> {
        let app = check_app(self, q, AppKind::Mp)?;
        let code = authorization_code(q, "js_code")?;
        let now = self.clock.elapsed();
        let mut store = lock(&self.mp);
        let user_key = store.codes.redeem(code, &app.appid, now)?.clone();
        // Every login rotates the session_key; older encrypted data stops decrypting.
        let key = random_key();
        store
            .session_keys
            .insert((app.appid.clone(), user_key.clone()), key);
        drop(store);
        Ok(json!({
            "openid": ids::openid(&app.appid, &user_key),
            "session_key": STANDARD.encode(key),
            "unionid": self.user(&user_key).map(|u| u.unionid.clone()),
        }))
    }
}

fn random_key() -> [u8; 16] {
    let mut k = [0u8; 16];
    rand::rng().fill_bytes(&mut k);
    k
}
