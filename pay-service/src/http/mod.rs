//! The HTTP layer: the route table and the handlers, which parse a request,
//! call the domain and map its answer (API.md §4). The only place, with the
//! startup module, that knows actix.

mod admin;
mod bills;
mod charts;
mod console;
mod console_pages;
mod notify;
mod notify_v3;
pub mod openapi;
mod openapi_charts;
mod openapi_console;
mod orders;

use actix_web::{HttpRequest, web};

use crate::domain::{Cause, PayState};
use crate::error::PayError;

/// Mounts pay-service's routes and app data (not the health routes). Every
/// route is registered by its full path so that `stack` can mount the three
/// services on one App.
pub fn configure(state: PayState) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut web::ServiceConfig| {
        let max_xml = state.config.common.max_xml_bytes;
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(state.sessions.clone()))
            .route("/api/mp/v2Pay", web::get().to(orders::v2_pay))
            .route("/api/pay/orders", web::post().to(orders::create_order))
            .route(
                "/api/pay/orders/{out_trade_no}",
                web::get().to(orders::get_order),
            )
            .route(
                "/api/pay/orders/{out_trade_no}/close",
                web::post().to(orders::close_order),
            )
            .route(
                "/api/pay/orders/{out_trade_no}/qrcode.svg",
                web::get().to(orders::qrcode_svg),
            )
            .route(
                "/api/pay/admin/orders/{out_trade_no}/refunds",
                web::post().to(admin::create_refund),
            )
            .route(
                "/api/pay/admin/orders/{out_trade_no}/refunds",
                web::get().to(admin::list_refunds),
            )
            .route("/api/pay/admin/events", web::get().to(admin::list_events))
            .route("/api/pay/admin/reconciliations", web::post().to(bills::run))
            .route("/api/pay/admin/reconciliations", web::get().to(bills::get))
            // The operator console's JSON (sign-in, orders, event retry).
            .route("/api/pay/admin/session", web::post().to(console::sign_in))
            .route("/api/pay/admin/session", web::get().to(console::current))
            .route(
                "/api/pay/admin/session",
                web::delete().to(console::sign_out),
            )
            .route("/api/pay/admin/orders", web::get().to(console::orders))
            .route(
                "/api/pay/admin/orders/{out_trade_no}",
                web::get().to(console::order),
            )
            .route(
                "/api/pay/admin/events/{id}/retry",
                web::post().to(console::retry_event),
            )
            // The operator console's pages (not JSON: outside the OpenAPI
            // document, see tests/openapi.rs).
            .route(console_pages::PATH, web::get().to(console_pages::redirect))
            .route("/admin/", web::get().to(console_pages::index))
            .route("/admin/{file}", web::get().to(console_pages::file))
            .route(
                "/api/pay/admin/charts/{name}.svg",
                web::get().to(charts::svg),
            )
            .route(
                "/api/pay/admin/charts/{name}.json",
                web::get().to(charts::json),
            )
            .service(
                web::resource("/api/pay/refund-notify")
                    .app_data(web::PayloadConfig::new(max_xml))
                    .route(web::post().to(notify::receive_refund)),
            );
        // APIv3 notifications: JSON, signed; the same body limit.
        cfg.service(
            web::resource("/api/pay/v3/notify")
                .app_data(web::PayloadConfig::new(max_xml))
                .route(web::post().to(notify_v3::receive)),
        )
        .service(
            web::resource("/api/pay/v3/refund-notify")
                .app_data(web::PayloadConfig::new(max_xml))
                .route(web::post().to(notify_v3::receive_refund)),
        );
        for path in ["/api/pay/notify", "/api/mp/payCallback"] {
            cfg.service(
                web::resource(path)
                    // The raw body is read under this limit; beyond it the
                    // handler answers FAIL without reading further.
                    .app_data(web::PayloadConfig::new(max_xml))
                    .route(web::post().to(notify::receive)),
            );
        }
    }
}

/// What the standalone service serves besides the health routes: the route
/// table and its OpenAPI document at `/openapi.json` (`stack` mounts
/// [`configure`] and serves one merged document instead).
pub fn with_openapi(state: PayState) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let routes = configure(state);
    let document = shared::openapi::serve(openapi::openapi);
    move |cfg: &mut web::ServiceConfig| {
        routes(cfg);
        document(cfg);
    }
}

/// The request's `x-request-id`, or `-`.
fn request_id(req: &HttpRequest) -> String {
    shared::http::request_id(req).unwrap_or_else(|| "-".to_owned())
}

/// A change made while serving `req`.
fn cause(source: &'static str, req: &HttpRequest) -> Cause {
    Cause::request(source, &request_id(req))
}

/// The `Idempotency-Key` header as sent (trimmed); the domain validates it
/// (`domain::idempotency`).
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, PayError> {
    match req.headers().get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|_| PayError::invalid("Idempotency-Key must be printable ASCII")),
    }
}
