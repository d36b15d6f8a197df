//! Mini-program codes and session keys.

use std::collections::HashMap;

use super::oauth::Codes;

#[derive(Default)]
pub(crate) struct MpStore {
    /// A code gives the user key.
    pub(crate) codes: Codes<String>,
    /// (appid, user key) → the session_key of the user's latest login.
    pub(crate) session_keys: HashMap<(String, String), [u8; 16]>,
}
