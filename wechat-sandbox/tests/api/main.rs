//! End-to-end tests: each starts a sandbox on port 0 and talks to it over HTTP.

mod common;

mod control;
mod faults;
mod jssdk;
mod mp;
mod notify;
mod oauth;
mod pay;
mod refund;
mod scan;
mod tokens;
