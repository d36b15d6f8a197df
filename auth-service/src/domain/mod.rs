//! The domain layer: the rules of logging in and out, free of HTTP (no actix)
//! and of SQL (no diesel). Handlers in `http` call it; it calls `db` (through
//! [`users::Users`]) and `wechat`.
//!
//! `oauth` + `oauth_state` (official-account web OAuth, the state and the
//! browser it is bound to) · `mp` (mini-program login, profiles, decrypt) ·
//! `sessions` (issuing, logout, logout everywhere) · `return_url`
//! (open-redirect checks) · `profile` (WeChat's profile shapes) · `rate_limit`
//! · `users` · `error`.

pub mod error;
pub mod mp;
pub mod oauth;
pub mod oauth_state;
pub mod profile;
pub mod rate_limit;
pub mod return_url;
pub mod sessions;
pub mod users;

pub use error::AuthError;
