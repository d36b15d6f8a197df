//! The HTTP layer, the only one that knows actix: the route table and the
//! handlers, which parse a request, ask the domain ([`crate::JssdkState`]) and
//! answer in the envelope.

mod handlers;
pub mod openapi;

use actix_web::web;

use crate::JssdkState;

/// The route table: the service's routes and app data (not the health routes),
/// each by its full path so that `stack` can mount them beside the other
/// services'.
pub fn configure(state: JssdkState) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let data = web::Data::new(state);
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone())
            .route(
                "/api/wechat/jssdkConfig",
                web::get().to(handlers::jssdk_config),
            )
            .route(
                "/internal/access-token",
                web::get().to(handlers::internal_access_token),
            );
    }
}

/// What the standalone service serves besides the health routes: the route
/// table and its OpenAPI document at `/openapi.json` (`stack` mounts
/// [`configure`] and serves one merged document instead).
pub fn with_openapi(
    state: JssdkState,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let routes = configure(state);
    let document = shared::openapi::serve(openapi::openapi);
    move |cfg: &mut web::ServiceConfig| {
        routes(cfg);
        document(cfg);
    }
}
