//! The operator console's pages (`/admin/`): static files embedded in the
//! binary, so the image (read-only root filesystem) needs nothing beside it.
//! The page signs in and calls the admin JSON API (`admin.rs`); these routes
//! only hand out the files. With no admin token configured they answer 404
//! like the API, so the console's existence is not advertised.
//!
//! Every page goes out with a strict CSP (no inline script or style, nothing
//! from elsewhere, no framing), `nosniff` and `no-store`: a stale script
//! after an upgrade would talk to an API that changed under it.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use shared::error::ApiError;

use crate::domain::PayState;

/// The console's own path; `configure` mounts it with and without the slash.
pub(super) const PATH: &str = "/admin";

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; frame-ancestors 'none'";

/// Name, content type and bytes of each file; nothing else is served.
/// `money.js` and `icon.svg` are the demo page's own (`web/`), so the yuan →
/// fen conversion has one implementation (the Docker build context holds
/// `web/`).
const FILES: [(&str, &str, &str); 5] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../console/index.html"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../console/console.css"),
    ),
    (
        "money.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/money.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../../web/icon.svg"),
    ),
];

/// 404 unless an operator token is configured.
fn enabled(state: &PayState) -> Result<(), ApiError> {
    if state.config().admins.is_empty() {
        return Err(ApiError::NotFound("no such route".into()));
    }
    Ok(())
}

/// `GET /admin` → `/admin/`, where the page's relative links resolve.
pub(super) async fn redirect(state: web::Data<PayState>) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, format!("{PATH}/")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `GET /admin/`: the page.
pub(super) async fn index(state: web::Data<PayState>) -> Result<HttpResponse, ApiError> {
    serve(&state, "index.html")
}

/// `GET /admin/{file}`: one of [`FILES`], else 404.
pub(super) async fn file(
    state: web::Data<PayState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    serve(&state, &name)
}

fn serve(state: &PayState, name: &str) -> Result<HttpResponse, ApiError> {
    enabled(state)?;
    let (_, content_type, body) = FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| ApiError::NotFound("no such file".into()))?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(*body))
}
