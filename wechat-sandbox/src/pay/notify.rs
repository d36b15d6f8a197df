//! Paying an order and delivering WeChat's payment notification to its
//! `notify_url`, retried on WeChat's schedule until the merchant acknowledges.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shared::xml::{DEFAULT_MAX_XML_BYTES, map_to_xml};
use tokio::sync::watch;
use tracing::Instrument;

use crate::clock::lock;
use crate::ids;
use crate::pay::orders::sign_fields;
use crate::pay::v3::SignedHeaders;
use crate::state::SandboxState;
use crate::store::{DeliveryAttempt, Order, PayApi, TradeState};

/// Waits between attempts, as WeChat Pay documents them (15s/15s/30s/3m/10m/
/// 20m/30m/30m/30m/60m/3h/3h/3h/6h/6h): 16 attempts in all.
pub const RETRY_SCHEDULE: [Duration; 15] = [
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(30),
    Duration::from_secs(180),
    Duration::from_secs(600),
    Duration::from_secs(1200),
    Duration::from_secs(1800),
    Duration::from_secs(1800),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(6 * 3600),
];
pub const MAX_DELIVERY_ATTEMPTS: u32 = RETRY_SCHEDULE.len() as u32 + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayOptions {
    /// POST the notification to the order's notify_url.
    pub notify: bool,
    /// Simulates this many lost notifications: recorded, but the merchant is
    /// never contacted.
    pub fail_first_deliveries: u32,
}

impl Default for PayOptions {
    fn default() -> Self {
        PayOptions {
            notify: true,
            fail_first_deliveries: 0,
        }
    }
}

/// Why `pay_order` refused; the Display text is what it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayRefusal {
    NotFound,
    AlreadyPaid,
    Closed,
    Expired,
    UnknownUser,
}

impl PayRefusal {
    pub fn message(self) -> &'static str {
        match self {
            PayRefusal::NotFound => "order not found",
            PayRefusal::AlreadyPaid => "order already paid",
            PayRefusal::Closed => "order closed",
            PayRefusal::Expired => "order expired",
            PayRefusal::UnknownUser => "unknown sandbox user",
        }
    }
}

/// What a notification is about: where its attempts are recorded and how
/// they are logged.
pub(crate) enum Subject {
    Payment { out_trade_no: String },
    Refund { out_refund_no: String },
}

/// One notification to deliver on WeChat's schedule (payment or refund).
pub(crate) struct Delivery {
    pub subject: Subject,
    pub url: String,
    /// v2: signed XML. v3: JSON, signed afresh on every attempt.
    pub body: String,
    pub api: PayApi,
    /// Attempts simulated lost: recorded, but the merchant is never contacted.
    pub lost_first: u32,
}

impl SandboxState {
    /// Marks the order paid, as if the user had confirmed payment in WeChat,
    /// and (with `notify`) starts delivering the notification. Returns the
    /// transaction_id. Refuses unknown, closed, expired and already-paid orders.
    pub fn pay_order(&self, out_trade_no: &str, opts: PayOptions) -> Result<String, String> {
        self.pay_order_as(out_trade_no, opts, None)
            .map_err(|r| r.message().to_owned())
    }

    /// `payer` picks the test user for NATIVE/MWEB/APP orders (JSAPI orders
    /// are paid by their openid); the first user when None.
    pub(crate) fn pay_order_as(
        &self,
        out_trade_no: &str,
        opts: PayOptions,
        payer: Option<&str>,
    ) -> Result<String, PayRefusal> {
        let now = self.now();
        let mut store = lock(&self.orders);
        let order = store
            .orders
            .get_mut(out_trade_no)
            .ok_or(PayRefusal::NotFound)?;
        match order.state_at(now) {
            TradeState::NotPay | TradeState::PayError => {}
            TradeState::Success | TradeState::Refund => return Err(PayRefusal::AlreadyPaid),
            TradeState::Closed if order.is_expired(now) => return Err(PayRefusal::Expired),
            TradeState::Closed => return Err(PayRefusal::Closed),
        }
        let payer_openid = match (&order.openid, payer) {
            (Some(openid), _) => openid.clone(),
            (None, Some(key)) => {
                let user = self.user(key).ok_or(PayRefusal::UnknownUser)?;
                ids::openid(&order.appid, &user.key)
            }
            (None, None) => {
                let user = self.users.first().ok_or(PayRefusal::UnknownUser)?;
                ids::openid(&order.appid, &user.key)
            }
        };
        let transaction_id = ids::transaction_id(now);
        order.state = TradeState::Success;
        order.transaction_id = Some(transaction_id.clone());
        order.time_end = Some(ids::pay_time(now));
        order.payer_openid = Some(payer_openid);
        let delivery = opts.notify.then(|| Delivery {
            subject: Subject::Payment {
                out_trade_no: order.out_trade_no.clone(),
            },
            url: order.notify_url.clone(),
            body: match order.api {
                PayApi::V2 => self.notification_xml(order),
                PayApi::V3 => self.v3_payment_notification(order, now),
            },
            api: order.api,
            lost_first: opts.fail_first_deliveries,
        });
        drop(store);
        if let Some(delivery) = delivery {
            self.start_delivery(delivery);
        }
        tracing::info!(out_trade_no, %transaction_id, "sandbox order paid");
        Ok(transaction_id)
    }

    /// WeChat's notification for a paid order, signed like the order request.
    fn notification_xml(&self, order: &Order) -> String {
        let mut f = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            f.insert(k.to_owned(), v.to_owned());
        };
        put("return_code", "SUCCESS");
        put("result_code", "SUCCESS");
        put("appid", &order.appid);
        put("mch_id", &order.mch_id);
        put("nonce_str", &ids::alnum(32));
        put("openid", order.payer_openid.as_deref().unwrap_or_default());
        put("is_subscribe", "N");
        put("trade_type", &order.trade_type);
        put("bank_type", "OTHERS");
        put("total_fee", &order.total_fee.to_string());
        put("fee_type", "CNY");
        put("cash_fee", &order.total_fee.to_string());
        put(
            "transaction_id",
            order.transaction_id.as_deref().unwrap_or_default(),
        );
        put("out_trade_no", &order.out_trade_no);
        put("time_end", order.time_end.as_deref().unwrap_or_default());
        if let Some(attach) = &order.attach {
            put("attach", attach);
        }
        if let Some(device_info) = &order.device_info {
            put("device_info", device_info);
        }
        let key = self
            .merchant(&order.mch_id)
            .map(|m| m.key.as_str())
            .unwrap_or_default();
        sign_fields(&mut f, key, order.sign_type);
        map_to_xml(&f)
    }

    /// The v3 `TRANSACTION.SUCCESS` notification for a paid order.
    fn v3_payment_notification(&self, order: &Order, now: chrono::DateTime<chrono::Utc>) -> String {
        self.v3_notification(
            &order.mch_id,
            crate::pay::v3::V3Event {
                event_type: "TRANSACTION.SUCCESS",
                original_type: "transaction",
                summary: "支付成功",
                resource: crate::pay::v3::transaction_json(order, now),
            },
        )
    }

    /// One POST of a v3 notification with the given headers (SIGNTEST
    /// probes); the HTTP status, if anything answered.
    pub(crate) async fn post_v3_once(
        &self,
        url: &str,
        body: String,
        headers: &SignedHeaders,
    ) -> Option<u16> {
        let mut req = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers.pairs() {
            req = req.header(name, value);
        }
        req.body(body)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// Every notification attempt so far, oldest first.
    pub fn deliveries(&self, out_trade_no: &str) -> Vec<DeliveryAttempt> {
        lock(&self.orders)
            .orders
            .get(out_trade_no)
            .map(|o| o.deliveries.clone())
            .unwrap_or_default()
    }

    /// Delivers the notification in the background (until acknowledged, the
    /// schedule ends or the sandbox stops).
    pub(crate) fn start_delivery(&self, delivery: Delivery) {
        if let Some(sandbox) = self.arc() {
            // Each attempt continues the trace of the request that paid,
            // without holding that request's span open for hours.
            let link = shared::traces::TraceLink::current();
            self.runtime.spawn(deliver(sandbox, delivery, link));
        }
    }

    fn record_attempt(&self, subject: &Subject, attempt: DeliveryAttempt, finished: bool) {
        match subject {
            Subject::Payment { out_trade_no } => {
                if let Some(order) = lock(&self.orders).orders.get_mut(out_trade_no) {
                    order.deliveries.push(attempt);
                    order.delivery_finished |= finished;
                }
            }
            Subject::Refund { out_refund_no } => {
                self.record_refund_delivery(out_refund_no, attempt, finished)
            }
        }
        self.delivery_events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// True once the merchant has acknowledged the order's notification;
    /// false if that has not happened within `timeout` (real time).
    pub async fn wait_acknowledged(&self, out_trade_no: &str, timeout: Duration) -> bool {
        self.wait_for_order(out_trade_no, timeout, |o| {
            o.deliveries.iter().any(|d| d.acknowledged)
        })
        .await
    }

    /// True once at least `attempts` notification attempts have been recorded;
    /// false if not within `timeout` (real time).
    pub async fn wait_deliveries(
        &self,
        out_trade_no: &str,
        attempts: usize,
        timeout: Duration,
    ) -> bool {
        self.wait_for_order(out_trade_no, timeout, |o| o.deliveries.len() >= attempts)
            .await
    }

    /// True once the notification schedule has ended, acknowledged or after
    /// the last attempt; false if not within `timeout` (real time).
    pub async fn wait_deliveries_finished(&self, out_trade_no: &str, timeout: Duration) -> bool {
        self.wait_for_order(out_trade_no, timeout, |o| o.delivery_finished)
            .await
    }

    async fn wait_for_order(
        &self,
        out_trade_no: &str,
        timeout: Duration,
        done: impl Fn(&Order) -> bool,
    ) -> bool {
        self.wait_for_delivery(timeout, || {
            lock(&self.orders)
                .orders
                .get(out_trade_no)
                .is_some_and(&done)
        })
        .await
    }

    /// True once `done` holds, looked at again after every delivery attempt;
    /// false if not within `timeout` (real time).
    pub(crate) async fn wait_for_delivery(
        &self,
        timeout: Duration,
        done: impl Fn() -> bool,
    ) -> bool {
        // Subscribe before the first look so an event in between is not missed.
        let mut events = self.delivery_events.subscribe();
        let wait = async {
            loop {
                if done() {
                    return true;
                }
                if events.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }
}

/// Posts the notification until the merchant acknowledges it, on WeChat's
/// schedule, recording every attempt; ends early when the sandbox stops.
async fn deliver(sandbox: Arc<SandboxState>, job: Delivery, link: shared::traces::TraceLink) {
    let mut shutdown = sandbox.shutdown.subscribe();
    for attempt in 1..=MAX_DELIVERY_ATTEMPTS {
        let (http_status, acknowledged) = if attempt <= job.lost_first {
            (None, false)
        } else {
            tokio::select! {
                r = traced_post(&sandbox, &job, &link) => r,
                _ = stopped(&mut shutdown) => return,
            }
        };
        let last = acknowledged || attempt == MAX_DELIVERY_ATTEMPTS;
        match &job.subject {
            Subject::Payment { out_trade_no } => tracing::info!(
                %out_trade_no,
                attempt,
                ?http_status,
                acknowledged,
                "payment notification attempt"
            ),
            Subject::Refund { out_refund_no } => tracing::info!(
                %out_refund_no,
                attempt,
                ?http_status,
                acknowledged,
                "refund notification attempt"
            ),
        }
        sandbox.record_attempt(
            &job.subject,
            DeliveryAttempt {
                attempt,
                http_status,
                acknowledged,
            },
            last,
        );
        if last {
            return;
        }
        let wait = RETRY_SCHEDULE[attempt as usize - 1];
        let deadline = sandbox.clock.elapsed() + wait;
        tokio::select! {
            _ = sandbox.clock.sleep_until(deadline) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// [`post`] as a client span of the paying request's trace, carrying its
/// W3C trace context to the merchant (shared::traces).
async fn traced_post(
    sandbox: &SandboxState,
    job: &Delivery,
    link: &shared::traces::TraceLink,
) -> (Option<u16>, bool) {
    let span = tracing::debug_span!("notify", otel.kind = "client");
    link.adopt(&span);
    post(sandbox, job).instrument(span).await
}

/// One POST. v2: acknowledged only by HTTP 200 whose XML says `return_code`
/// SUCCESS. v3: by any 2xx (WeChat documents 200 or 204).
async fn post(sandbox: &SandboxState, job: &Delivery) -> (Option<u16>, bool) {
    let req = match job.api {
        PayApi::V2 => sandbox
            .http
            .post(&job.url)
            .header(reqwest::header::CONTENT_TYPE, "text/xml"),
        PayApi::V3 => {
            let headers = sandbox.v3_signed_headers(job.body.as_bytes());
            let mut req = sandbox
                .http
                .post(&job.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            for (name, value) in headers.pairs() {
                req = req.header(name, value);
            }
            req
        }
    };
    let req = shared::traces::propagate(req);
    let res = match req.body(job.body.clone()).send().await {
        Ok(res) => res,
        Err(e) => {
            match &job.subject {
                Subject::Payment { out_trade_no } => {
                    tracing::info!(%out_trade_no, error = %e, "notification not delivered")
                }
                Subject::Refund { out_refund_no } => {
                    tracing::info!(%out_refund_no, error = %e, "refund notification not delivered")
                }
            }
            return (None, false);
        }
    };
    let status = res.status().as_u16();
    let body = res.bytes().await.unwrap_or_default();
    let acknowledged = match job.api {
        PayApi::V2 => {
            status == 200
                && shared::xml::parse(&body, DEFAULT_MAX_XML_BYTES)
                    .is_ok_and(|m| m.get("return_code").is_some_and(|c| c == "SUCCESS"))
        }
        PayApi::V3 => (200..300).contains(&status),
    };
    (Some(status), acknowledged)
}
