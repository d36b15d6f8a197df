//! Process-wide metrics (registered once, even when `stack` hosts every service).

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec};
use shared::metrics::{HotCounter, counter, counter_vec};

/// Calls to WeChat for a token or ticket, by kind and outcome (ok, errcode,
/// timeout, unreachable, bad_response).
pub static UPSTREAM_FETCHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "jssdk_upstream_fetches_total",
        "access_token and jsapi_ticket fetches from WeChat by kind and outcome",
        &["kind", "outcome"],
    )
});

/// Lookups by kind and result: process (the trusted process copy, no shared
/// cache read), hit (shared cache), local (process copy while the shared cache
/// is down), miss, unavailable.
pub static CACHE_LOOKUPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "jssdk_cache_lookups_total",
        "access_token and jsapi_ticket lookups by kind and result",
        &["kind", "result"],
    )
});

/// Tokens WeChat rejected (40001, 40014, 42001) and that were replaced.
pub static TOKEN_REJECTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "jssdk_token_rejections_total",
        "access_tokens WeChat rejected and that were fetched again",
    )
});

pub static SIGNATURES: LazyLock<HotCounter> = LazyLock::new(|| {
    HotCounter::new(counter(
        "jssdk_signatures_total",
        "wx.config signatures served",
    ))
});
