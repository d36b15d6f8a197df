//! The console's charts (admin only): `GET /api/pay/admin/charts/{name}.svg`
//! draws one on the server, `….json` answers the same series as figures.
//! `name` is `paid-hourly`, `paid-daily`, `success-ratio` or `notify-delay`;
//! `from`/`to` are Unix seconds (`domain::charts::range` for the limits).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use shared::error::{ApiError, ok};

use super::admin::Admin;
use crate::domain::PayState;
use crate::domain::charts::{self, Chart, Series};

#[derive(Debug, Deserialize)]
pub(super) struct RangeQuery {
    // Strings, so that a malformed bound is this service's 400 envelope
    // rather than actix's plain-text query error.
    from: Option<String>,
    to: Option<String>,
}

async fn series(state: &PayState, name: &str, query: &RangeQuery) -> Result<Series, ApiError> {
    let chart =
        Chart::parse(name).ok_or_else(|| ApiError::NotFound(format!("no chart named {name:?}")))?;
    let range = charts::range(
        chart,
        query.from.as_deref(),
        query.to.as_deref(),
        shared::db::now_unix(),
    )?;
    Ok(charts::series(state, chart, range).await?)
}

/// `GET /api/pay/admin/charts/{name}.svg?from=&to=`: the chart as SVG.
pub(super) async fn svg(
    _: Admin,
    state: web::Data<PayState>,
    name: web::Path<String>,
    query: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let series = series(&state, &name, &query).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        // Figures of the business: never kept by a browser or a proxy.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Opened on its own rather than as an <img>, the document may load
        // and run nothing (it has no script; this holds if that changes).
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .body(charts::svg(&series)))
}

/// `GET /api/pay/admin/charts/{name}.json?from=&to=`: the same figures.
pub(super) async fn json(
    _: Admin,
    state: web::Data<PayState>,
    name: web::Path<String>,
    query: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let series = series(&state, &name, &query).await?;
    let mut res = ok(series);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}
