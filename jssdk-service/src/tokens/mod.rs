//! The access_token and jsapi_ticket: where they are kept, how they are fetched
//! once however many requests and replicas want them, and how they are renewed
//! before they expire.
//!
//! - `entry`: what is cached (value, expiry, when it was fetched) and the keys.
//! - `upstream`: the WeChat calls themselves.
//! - `manager`: the lookup path (process copy, shared cache), single-flight
//!   fetches inside a process and the cache lock between replicas.
//! - `local`: the process copy of each value and when it may be served
//!   without asking the shared cache.
//! - `sync`: change notices between replicas (publish/subscribe).
//! - `refresher`: the background task that renews values ahead of expiry.

mod entry;
mod local;
mod manager;
mod refresher;
mod sync;
mod upstream;

pub use entry::Entry;
pub use manager::TokenManager;
