//! The operator console's JSON routes: sign-in for a session cookie
//! (`/api/pay/admin/session`), the order list and an order's page, and a
//! merchant event retried. The cookie is `wxpay_admin`: HttpOnly (the page's
//! scripts never see it), SameSite=Strict (no other site's page makes the
//! browser send it), Secure when `PUBLIC_BASE_URL` is https, for as long as
//! the session lives. The session itself is `domain::admin_sessions`.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use shared::error::{ApiError, ok};

use super::admin::{Admin, Caller, admin_state, give_back, take_attempt};
use super::cause;
use crate::domain::admin_sessions::{self, LIFETIME, SessionView};
use crate::domain::{PayState, audit, console};
use crate::error::PayError;

pub(super) const COOKIE: &str = "wxpay_admin";
const CSRF_HEADER: &str = "x-csrf-token";

/// The session id the request's cookie carries, if any.
pub(super) fn session_id(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// Why a cookie request that changes something is refused: its
/// `X-CSRF-Token` is not the session's, or its `Origin` is another site.
pub(super) fn csrf_check(req: &HttpRequest, session: &SessionView) -> Result<(), &'static str> {
    origin_check(req)?;
    let given = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !admin_sessions::csrf_matches(session, given.trim()) {
        return Err("csrf_token");
    }
    Ok(())
}

/// An `Origin` that is sent must be the console's own, on reads too: the
/// app-wide CORS rules let `ALLOWED_REDIRECT_ORIGINS` read with credentials,
/// and a shop page on the same site (SameSite does not stop it) must not read
/// orders or the session's CSRF token with the operator's cookie.
pub(super) fn origin_check(req: &HttpRequest) -> Result<(), &'static str> {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !same_site_origin(req, origin) {
            return Err("origin");
        }
    }
    Ok(())
}

pub(super) fn csrf_message(why: &str) -> &'static str {
    match why {
        "origin" => "Origin is another site: the console's requests come from its own pages",
        _ => "X-CSRF-Token missing or wrong: send the session's csrfToken",
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was
/// sent to: its `Host`, or the `X-Forwarded-Host` the gateway sets (whose
/// `Host` drops the port). A browser cannot set either on another site's
/// behalf.
fn same_site_origin(req: &HttpRequest, origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let mut forms = vec![host.to_ascii_lowercase()];
    if let Some(port) = url.port_or_known_default() {
        forms.push(format!("{}:{port}", host.to_ascii_lowercase()));
    }
    let explicit = url
        .port()
        .map(|p| format!("{}:{p}", host.to_ascii_lowercase()));
    let sent = [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .filter_map(|h| req.headers().get(h))
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase());
    for s in sent {
        // An Origin with an explicit port must match it; one without
        // matches the bare host or the scheme's default port.
        let ok = match &explicit {
            Some(e) => &s == e,
            None => forms.contains(&s),
        };
        if ok {
            return true;
        }
    }
    false
}

fn session_cookie(state: &PayState, id: String, max_age: time::Duration) -> Cookie<'static> {
    Cookie::build(COOKIE, id)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config().common.secure_cookies())
        .max_age(max_age)
        .finish()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// `POST /api/pay/admin/session` `{"token"}`: the operator's token, checked
/// as the Bearer guard checks it (same comparison, failed-login audit and
/// budget), traded for the session cookie; answers the session.
pub(super) async fn sign_in(body: web::Bytes, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let state = admin_state(&req)?;
    let caller = Caller::of(&req);
    origin_check(&req).map_err(|why| ApiError::Forbidden(csrf_message(why).into()))?;
    let token = serde_json::from_slice::<SignIn>(&body)
        .map_err(|_| PayError::invalid("the body must be {\"token\": \"<admin token>\"}"))?
        .token;
    take_attempt(&state, &caller).await?;
    let Some(name) = admin_sessions::operator_of(&state, token.trim()) else {
        caller.failed(if token.trim().is_empty() {
            "missing"
        } else {
            "wrong_token"
        });
        return Err(ApiError::Unauthorized(
            "admin token missing or wrong".into(),
        ));
    };
    give_back(&state, &caller).await?;
    // A new sign-in replaces the browser's session: the old one is not left
    // alive in the cache until it expires.
    if let Some(old) = session_id(&req) {
        admin_sessions::close(&state, &old).await?;
    }
    let (id, view) = admin_sessions::open(&state, &name).await?;
    audit::admin_session(&name, "signed in", &caller.client, &caller.request_id);
    let max_age = time::Duration::seconds(LIFETIME.as_secs() as i64);
    let mut res = ok(view);
    res.add_cookie(&session_cookie(&state, id, max_age))
        .map_err(ApiError::internal)?;
    Ok(res)
}

/// `GET /api/pay/admin/session`: the signed-in session (its CSRF token
/// included, for a page loaded anew); 401 when there is none. Without any
/// cookie this is the console asking whether it is signed in, not a login
/// attempt, so it costs no failed login.
pub(super) async fn current(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let state = admin_state(&req)?;
    // The reply carries the CSRF token: never to another site's page.
    origin_check(&req).map_err(|why| ApiError::Forbidden(csrf_message(why).into()))?;
    let Some(id) = session_id(&req) else {
        return Err(ApiError::Unauthorized("not signed in".into()));
    };
    let caller = Caller::of(&req);
    take_attempt(&state, &caller).await?;
    let Some(view) = admin_sessions::find(&state, &id).await? else {
        caller.failed("unknown_session");
        return Err(ApiError::Unauthorized(
            "admin session expired or signed out: sign in again".into(),
        ));
    };
    give_back(&state, &caller).await?;
    Ok(ok(view))
}

/// `DELETE /api/pay/admin/session` (CSRF token required like any change):
/// ends the session and clears the cookie.
pub(super) async fn sign_out(
    admin: Admin,
    state: web::Data<PayState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if let Some(id) = session_id(&req) {
        admin_sessions::close(&state, &id).await?;
    }
    let caller = Caller::of(&req);
    audit::admin_session(
        &admin.name,
        "signed out",
        &caller.client,
        &caller.request_id,
    );
    let mut res = ok(serde_json::json!({ "operator": admin.name }));
    res.add_cookie(&session_cookie(&state, String::new(), time::Duration::ZERO))
        .map_err(ApiError::internal)?;
    Ok(res)
}

/// The order list's query, every value as text (`domain::console` checks
/// each and names the bad one).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OrdersQuery {
    status: Option<String>,
    trade_type: Option<String>,
    api: Option<String>,
    from: Option<String>,
    to: Option<String>,
    min_fen: Option<String>,
    max_fen: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET /api/pay/admin/orders?status=&tradeType=&api=&from=&to=&minFen=&maxFen=&q=&cursor=&limit=`
pub(super) async fn orders(
    _: Admin,
    state: web::Data<PayState>,
    query: web::Query<OrdersQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let ask = console::OrderAsk {
        status: q.status,
        trade_type: q.trade_type,
        api: q.api,
        from: q.from,
        to: q.to,
        min_fen: q.min_fen,
        max_fen: q.max_fen,
        q: q.q,
        cursor: q.cursor,
        limit: q.limit,
    };
    Ok(ok(console::orders(&state, &ask).await?))
}

/// `GET /api/pay/admin/orders/{outTradeNo}`: the order and its story.
pub(super) async fn order(
    _: Admin,
    state: web::Data<PayState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(console::order(&state, &path).await?))
}

/// `POST /api/pay/admin/events/{id}/retry`: a pending or failed event due
/// now; 409 once delivered.
pub(super) async fn retry_event(
    admin: Admin,
    state: web::Data<PayState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| PayError::invalid("the event id must be a positive whole number"))?;
    let cause = cause("console", &req);
    Ok(ok(
        console::retry_event(&state, id, &admin.name, &cause).await?
    ))
}
