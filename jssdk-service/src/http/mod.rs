//! The HTTP layer, the only one that knows actix: the route table and the
//! handlers, which parse a request, ask the domain ([`crate::JssdkState`]) and
//! answer in the envelope.

mod handlers;

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
