//! The HTTP layer (the crate's only actix code besides start-up): the route
//! table, request parsing, cookies and reply shapes. Handlers are thin: parse,
//! call the domain, map the result (API.md §4, auth-service).

mod account;
mod cookies;
mod error;
mod mp;
mod oauth;
pub mod openapi;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use shared::http::client_ip;

use crate::domain::AuthError;
use crate::state::AuthState;
use cookies::CookiePolicy;

/// The domain routes and their app data, without health routes: what `stack`
/// mounts next to the other services. Routes go by their full paths (`stack`
/// shares `/api/wechat` and `/api/mp` with the other services).
pub fn configure(state: AuthState) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg| mount(cfg, state.clone())
}

fn mount(cfg: &mut web::ServiceConfig, state: AuthState) {
    // The session extractor (`shared::session::Session`) verifies with these.
    cfg.app_data(web::Data::new(state.sessions.keys().clone()))
        .app_data(web::Data::new(CookiePolicy::for_config(
            &state.config.common,
        )))
        .app_data(web::Data::new(state))
        .route("/api/wechat/redirect", web::get().to(oauth::redirect))
        .route("/api/wechat/getOpenId", web::get().to(oauth::get_open_id))
        .route(
            "/api/wechat/getUserInfo",
            web::get().to(account::get_user_info),
        )
        .route("/api/mp/getSession", web::get().to(mp::get_session))
        .service(
            web::resource("/api/mp/login")
                .route(web::get().to(mp::login))
                .route(web::post().to(mp::login)),
        )
        .route("/api/mp/decrypt", web::post().to(mp::decrypt))
        .route("/api/auth/me", web::get().to(account::me))
        .route("/api/auth/logout", web::post().to(account::logout));
}

/// What the standalone service serves besides the health routes: the route
/// table and its OpenAPI document at `/openapi.json` (`stack` mounts
/// [`configure`] and serves one merged document instead).
pub fn with_openapi(state: AuthState) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let routes = configure(state);
    let document = shared::openapi::serve(openapi::openapi);
    move |cfg| {
        routes(cfg);
        document(cfg);
    }
}

type Reply = Result<HttpResponse, shared::error::ApiError>;

/// Counts a login attempt against the client's per-IP budget.
async fn login_attempt(state: &AuthState, req: &HttpRequest) -> Result<(), AuthError> {
    state.limiter.check(client_ip(req)).await
}

/// A 302 that no cache keeps.
fn found(location: &str) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::Found();
    res.insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    res
}
