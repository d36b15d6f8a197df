//! Per-path call counting and injected faults, applied in front of every
//! WeChat endpoint so clients' error handling can be exercised.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use crate::clock::lock;
use crate::errors::errcode_response;
use crate::state::SandboxState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// `{"errcode":N,"errmsg":M}` on JSON endpoints; `return_code` FAIL with
    /// `return_msg` M on Pay endpoints.
    Errcode {
        errcode: i64,
        errmsg: String,
    },
    Http500,
    /// Waits (real time, so client timeouts can be tested), then answers normally.
    Delay(Duration),
    /// HTTP 200 whose body is neither JSON nor XML.
    Garbage,
    /// A Pay endpoint's signed `result_code` FAIL with `err_code` (e.g.
    /// `SYSTEMERROR`, `BIZERR_NEED_RETRY`); with `applied` the request is
    /// carried out first and only its answer replaced, as when WeChat did the
    /// work but could not say so. Unsigned `return_code` FAIL on requests that
    /// do not authenticate.
    PayError {
        err_code: String,
        err_code_des: String,
        applied: bool,
    },
}

pub(crate) const GARBAGE_BODY: &str = "<html><body>502 Bad Gateway</body>{\"errcode\":";

#[derive(Default)]
pub(crate) struct Faults {
    queued: Mutex<HashMap<String, VecDeque<(FaultKind, u32)>>>,
}

impl Faults {
    /// Faults on one path queue up: the first is served `count` times, then the next.
    pub fn inject(&self, path: &str, kind: FaultKind, count: u32) {
        if count == 0 {
            return;
        }
        lock(&self.queued)
            .entry(path.to_owned())
            .or_default()
            .push_back((kind, count));
    }

    pub fn take(&self, path: &str) -> Option<FaultKind> {
        let mut queued = lock(&self.queued);
        let queue = queued.get_mut(path)?;
        let (kind, left) = queue.front_mut()?;
        let kind = kind.clone();
        *left -= 1;
        if *left == 0 {
            queue.pop_front();
        }
        if queue.is_empty() {
            queued.remove(path);
        }
        Some(kind)
    }

    pub fn clear(&self) {
        lock(&self.queued).clear();
    }
}

#[derive(Default)]
pub(crate) struct CallCounts {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl CallCounts {
    pub fn record(&self, path: &str) {
        *lock(&self.counts).entry(path.to_owned()).or_default() += 1;
    }

    pub fn get(&self, path: &str) -> u64 {
        lock(&self.counts).get(path).copied().unwrap_or(0)
    }

    pub fn all(&self) -> BTreeMap<String, u64> {
        lock(&self.counts).clone()
    }

    pub fn clear(&self) {
        lock(&self.counts).clear();
    }
}

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
    let reply = match &state {
        Some(state) => crate::pay::business_failure(state, &body, err_code, err_code_des),
        None => HttpResponse::InternalServerError().finish(),
    };
    if applied {
        req.set_payload(actix_web::dev::Payload::from(body));
        let done = next.call(req).await?;
        return Ok(done.into_response(reply));
    }
    Ok(req.into_response(reply))
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
    fn faults_are_served_in_order_for_their_count() {
        let f = Faults::default();
        f.inject("/a", FaultKind::Http500, 2);
        f.inject("/a", FaultKind::Garbage, 1);
        f.inject("/b", FaultKind::Http500, 0);
        assert_eq!(f.take("/a"), Some(FaultKind::Http500));
        assert_eq!(f.take("/a"), Some(FaultKind::Http500));
        assert_eq!(f.take("/a"), Some(FaultKind::Garbage));
        assert_eq!(f.take("/a"), None);
        assert_eq!(f.take("/b"), None);
    }

    #[test]
    fn garbage_is_neither_json_nor_xml() {
        assert!(serde_json::from_str::<serde_json::Value>(GARBAGE_BODY).is_err());
        assert!(shared::xml::parse(GARBAGE_BODY.as_bytes(), 1 << 16).is_err());
    }

    #[test]
    fn control_paths() {
        assert!(is_control_path("/sandbox/calls"));
        assert!(!is_control_path("/sandboxes"));
        assert!(!is_control_path("/cgi-bin/token"));
    }
}
