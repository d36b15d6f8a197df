//! jssdk-service over real HTTP against the real sandbox (and real Redis where
//! a test needs one).

mod common;
mod coordination;
mod failures;
mod internal;
mod redis_outage;
mod refresh;
mod signature;
