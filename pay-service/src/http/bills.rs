//! `POST /api/pay/admin/reconciliations?date=YYYY-MM-DD` (download the day's
//! bill and compare it now) and `GET …?date=` (the stored result), admin
//! token only (API.md §4 "bills and reconciliation"); `GET` without `date`
//! lists the reconciled days.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use shared::error::{ApiError, ok};

use super::admin::Admin;
use super::cause;
use crate::domain::{PayState, bills, console};
use crate::error::PayError;

#[derive(Debug, Deserialize)]
pub(super) struct DateQuery {
    date: Option<String>,
    /// The day list's range (`GET` without `date`), `YYYY-MM-DD`.
    from: Option<String>,
    to: Option<String>,
}

fn date(q: &DateQuery) -> Result<chrono::NaiveDate, PayError> {
    let raw = q
        .date
        .as_deref()
        .ok_or_else(|| PayError::invalid("date is required (YYYY-MM-DD)"))?;
    bills::parse_date(raw)
}

/// Runs the day's reconciliation now; replaces a stored result. 409/1005
/// while another one (the daily job's) is running.
pub(super) async fn run(
    _: Admin,
    state: web::Data<PayState>,
    query: web::Query<DateQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let date = date(&query)?;
    let view = bills::reconcile_now(&state, date, &cause("bill", &req)).await?;
    Ok(ok(view))
}

/// The day's stored result; 409/1005 when there is none yet. Without
/// `date`: the reconciled days in `[from, to]`, newest first (the console's
/// list, `domain::console::days`).
pub(super) async fn get(
    _: Admin,
    state: web::Data<PayState>,
    query: web::Query<DateQuery>,
) -> Result<HttpResponse, ApiError> {
    if query.date.is_none() {
        let (from, to) = (query.from.as_deref(), query.to.as_deref());
        return Ok(ok(console::days(&state, from, to).await?));
    }
    let date = date(&query)?;
    Ok(ok(bills::stored(&state, date).await?))
}
