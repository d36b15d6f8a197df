//! Per-path call counting and injected faults, applied in front of every
//! WeChat endpoint so clients' error handling can be exercised. The queues
//! and counts themselves are [`crate::store`]'s `Faults` and `CallCounts`.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use crate::errors::errcode_response;
use crate::state::SandboxState;
use crate::store::{FaultKind, GARBAGE_BODY};

/// The sandbox's own routes are neither counted nor faulted, so counts stay
/// about WeChat traffic and tests cannot lock themselves out of the controls.
pub(crate) fn is_control_path(path: &str) -> bool {
    path == "/sandbox" || path.starts_with("/sandbox/")
}

fn is_pay_path(path: &str) -> bool {
    path.starts_with("/pay/")
}

/// Serves a [`FaultKind::PayError`]: the body is read (and handed on when the
/// request is to be applied), then answered as a signed business failure.
async fn pay_error(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    err_code: &str,
    err_code_des: &str,
    applied: bool,
) -> Result<ServiceResponse, actix_web::Error> {
    let body = req.extract::<web::Bytes>().await?;
    let state = req.app_data::<web::Data<SandboxState>>().cloned();
    let v3 = req.path().starts_with("/v3/");
    let reply = match &state {
        Some(state) if v3 => v3_business_failure(state, err_code, err_code_des),
        Some(state) => crate::pay::orders::business_failure(state, &body, err_code, err_code_des),
        None => HttpResponse::InternalServerError().finish(),
    };
    if applied {
        req.set_payload(actix_web::dev::Payload::from(body));
        let done = next.call(req).await?;
        return Ok(done.into_response(reply));
    }
    Ok(req.into_response(reply))
}

/// v3's form of a business failure: WeChat's `{code, message}` body, signed
/// like every v3 answer, with the HTTP status WeChat's error-code tables give
/// the code (SYSTEM_ERROR 500, FREQUENCY_LIMITED 429, SIGN_ERROR 401,
/// NO_AUTH / NOT_ENOUGH / … 403, …_NOT_EXIST(S) 404, the rest 400).
fn v3_business_failure(state: &SandboxState, code: &str, message: &str) -> HttpResponse {
    let status = match code {
        "SYSTEM_ERROR" | "SYSTEMERROR" | "BIZERR_NEED_RETRY" => 500,
        "FREQUENCY_LIMITED" => 429,
        "SIGN_ERROR" => 401,
        "NO_AUTH"
        | "NOT_ENOUGH"
        | "OUT_TRADE_NO_USED"
        | "RULE_LIMIT"
        | "TRADE_ERROR"
        | "USER_ACCOUNT_ABNORMAL"
        | "ACCOUNT_ERROR" => 403,
        c if c.ends_with("_NOT_EXIST") || c.ends_with("_NOT_EXISTS") || c == "ORDERNOTEXIST" => 404,
        _ => 400,
    };
    let body = serde_json::json!({ "code": code, "message": message });
    state.v3_answer(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        Some(&body),
    )
}

fn fault_response(path: &str, kind: &FaultKind) -> HttpResponse {
    match kind {
        FaultKind::Errcode { errmsg, .. } if is_pay_path(path) => HttpResponse::Ok()
            .content_type("text/xml; charset=utf-8")
            .body(shared::xml::to_xml([
                ("return_code", "FAIL"),
                ("return_msg", errmsg.as_str()),
            ])),
        FaultKind::Errcode { errcode, errmsg } => errcode_response(*errcode, errmsg),
        FaultKind::Http500 => HttpResponse::InternalServerError()
            .content_type("text/html; charset=utf-8")
            .body("<html><body><h1>500 Internal Server Error</h1></body></html>"),
        FaultKind::Garbage => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(GARBAGE_BODY),
        // Handled before a response is built.
        FaultKind::Delay(_) | FaultKind::PayError { .. } => {
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Counts the request, then serves a queued fault or lets it through.
pub(crate) async fn count_and_inject(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let path = req.path().to_owned();
    let method = req.method().clone();
    let state = req.app_data::<web::Data<SandboxState>>().cloned();
    let fault = match &state {
        Some(state) if !is_control_path(&path) => {
            state.counts.record(&path);
            state.faults.take(&path)
        }
        _ => None,
    };
    let res = match fault {
        None => next.call(req).await?.map_into_left_body(),
        Some(FaultKind::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.call(req).await?.map_into_left_body()
        }
        Some(FaultKind::PayError {
            err_code,
            err_code_des,
            applied,
        }) => {
            tracing::info!(%path, %err_code, applied, "serving injected Pay error");
            pay_error(req, next, &err_code, &err_code_des, applied)
                .await?
                .map_into_right_body()
        }
        Some(kind) => {
            tracing::info!(%path, ?kind, "serving injected fault");
            req.into_response(fault_response(&path, &kind))
                .map_into_right_body()
        }
    };
    // Only the path: queries carry secrets, codes and tokens.
    tracing::info!(%method, %path, status = res.status().as_u16(), "sandbox request");
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_paths() {
        assert!(is_control_path("/sandbox/calls"));
        assert!(!is_control_path("/sandboxes"));
        assert!(!is_control_path("/cgi-bin/token"));
    }
}
