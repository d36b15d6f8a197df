//! WeChat Pay APIv3 beside v2 (issue #13 point 8): order creation and
//! notifications over v3, each with its ratio to v2 measured right before it
//! in the same run, the CPU each costs per request (pay-service's process and
//! the bench's, which hosts the sandbox playing WeChat), and the cost of one
//! RSA signature and one verification.
//!
//! `PAY_API_VERSION` is per process, so v3 runs in a second pay-service of its
//! own (`PAY_API_VERSION=v3` and the sandbox's v3 key files, from
//! [`Sandbox::service_env`]); on PostgreSQL it shares the run's schema and
//! Redis with the first one, as a replica would; on SQLite it has a database
//! file of its own (two processes writing one SQLite file would measure
//! SQLite's lock instead). The pairs run back to back (v2 orders, v3 orders,
//! v2 notifications, v3 notifications) so that the machine's other load
//! falls on both sides alike as far as it can.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use shared::wechatpay_v3::{
    ApiV3Key, EncryptedResource, MerchantSigner, Notification, PublicKey, SignedMessage, Verifier,
    request_message,
};
use wechat_sandbox::{
    PayApi, PayOptions, SANDBOX_MCH_API_V3_KEY, SANDBOX_MCH_ID, Sandbox, SandboxState,
};

use crate::backends::Storage;
use crate::load::{LoadResult, drive};
use crate::report::Row;
use crate::scenarios::{self, Placed};
use crate::services::{Kind, Service};

pub const NOTIFY_V3_PATH: &str = "/api/pay/v3/notify";

/// A notification's body and its `Wechatpay-*` headers.
pub type SignedBody = (String, Vec<(&'static str, String)>);

/// One side of a pair: the closed-loop figures and the CPU the two
/// processes spent per request meanwhile.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    #[serde(flatten)]
    pub row: Row,
    /// pay-service's user + system CPU per request (ms); None in process.
    pub service_cpu_ms: Option<f64>,
    /// The bench's own (load generator and the sandbox answering as WeChat).
    pub bench_cpu_ms: Option<f64>,
}

/// v2 and v3 of one endpoint, back to back.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pair {
    pub what: String,
    pub v2: Side,
    pub v3: Side,
    /// v3 requests/s over v2's.
    pub ratio: f64,
    /// The goal of issue #13 for the ratio.
    pub goal: f64,
}

/// One RSA-2048 operation, timed in the bench with the sandbox's keys.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RsaCost {
    pub samples: usize,
    /// `MerchantSigner::sign` over a JSAPI request's message (SHA256withRSA,
    /// PKCS#1 v1.5), µs.
    pub sign_us: f64,
    /// `Verifier::verify` of a signed answer with the WeChat Pay public key,
    /// key lookup by `Wechatpay-Serial` included, µs.
    pub verify_us: f64,
    /// The same signature with `ring` (in the tree already, under rustls):
    /// what a switch of `shared::wechatpay_v3` to it would cost, µs.
    pub ring_sign_us: f64,
    /// A verification with `ring` (the merchant's public key), µs.
    pub ring_verify_us: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V3Figures {
    pub pairs: Vec<Pair>,
    pub rsa: RsaCost,
    /// v3 orders found PAID after the v3 notifications.
    pub v3_notifications_applied: usize,
    /// v3 orders the sandbox holds as APIv3 orders (should be all of them).
    pub v3_orders_at_wechat: usize,
}

/// Starts the v3 pay-service, runs the pairs, times RSA; the v3 process is
/// stopped when this returns.
pub async fn run(
    opts: &crate::Options,
    client: &reqwest::Client,
    storage: &Storage,
    sandbox: &Sandbox,
    pay_v2: &Service,
    tokens: &[String],
) -> anyhow::Result<V3Figures> {
    let (c, n) = (opts.concurrency, opts.requests);
    let vars = v3_vars(sandbox, storage);
    let pay_v3 = Service::start(Kind::Pay, &opts.launch, &vars, client).await?;
    let bench_pid = std::process::id();
    let cpu_of = |s: &Service| s.is_child().then_some(s.pid);
    let (v2_pid, v3_pid) = (cpu_of(pay_v2), cpu_of(&pay_v3));
    let bench_pid = pay_v3.is_child().then_some(bench_pid);

    let mut v2_orders = Vec::new();
    let v2 = timed(sandbox, v2_pid, bench_pid, async {
        let (load, placed) = scenarios::v2pay(client, &pay_v2.base, tokens, c, n).await;
        v2_orders = placed;
        Ok(load)
    })
    .await?;
    let mut v3_orders = Vec::new();
    let v3 = timed(sandbox, v3_pid, bench_pid, async {
        let (load, placed) = scenarios::v2pay(client, &pay_v3.base, tokens, c, n).await;
        v3_orders = placed;
        Ok(load)
    })
    .await?;
    let orders = pair("order creation (/api/mp/v2Pay, JSAPI)", 0.7, v2, v3);

    let state = sandbox.state();
    let v3_orders_at_wechat = v3_orders
        .iter()
        .filter(|p| {
            state
                .order(&p.out_trade_no)
                .is_some_and(|o| o.api == PayApi::V3)
        })
        .count();

    // Each side's bodies are made (and signed) before its clock starts; the
    // v2 ones inside `scenarios::notifications` (so the bench's CPU figure
    // of the v2 side includes paying them at the sandbox and their MD5 signs).
    let v3_bodies = {
        let (state, orders) = (sandbox.state(), v3_orders.clone());
        Arc::new(tokio::task::spawn_blocking(move || v3_notifications(&state, &orders)).await??)
    };
    let v2 = timed(sandbox, v2_pid, bench_pid, async {
        scenarios::notifications(client, &pay_v2.base, sandbox, &v2_orders, c).await
    })
    .await?;
    let v3 = timed(sandbox, v3_pid, bench_pid, async {
        Ok(post_v3_notifications(client, &pay_v3.base, v3_bodies, c).await)
    })
    .await?;
    let notify = pair("notification (signed, applied)", 0.8, v2, v3);
    let v3_notifications_applied = scenarios::count_paid(client, &pay_v3.base, &v3_orders).await;
    drop(pay_v3);

    let rsa = {
        let (state, samples) = (sandbox.state(), rsa_samples());
        tokio::task::spawn_blocking(move || rsa_cost(&state, samples)).await??
    };
    Ok(V3Figures {
        pairs: vec![orders, notify],
        rsa,
        v3_notifications_applied,
        v3_orders_at_wechat,
    })
}

/// pay-service's variables of the run, its own database file on SQLite, the
/// sandbox's v3 credentials and files, and v3 for new orders.
fn v3_vars(sandbox: &Sandbox, storage: &Storage) -> Vec<(String, String)> {
    let mut vars = crate::service_vars(Kind::Pay, &sandbox.base_url(), storage);
    let extra: Vec<(String, String)> = sandbox
        .service_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain([
            ("DATABASE_URL".to_owned(), storage.database_url("pay-v3")),
            ("PAY_API_VERSION".to_owned(), "v3".to_owned()),
        ])
        .collect();
    vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    vars.extend(extra);
    vars
}

/// Release builds time enough signatures for a steady mean; unoptimised
/// ones (the smoke test) take tens of milliseconds per signature.
fn rsa_samples() -> usize {
    if cfg!(debug_assertions) { 3 } else { 300 }
}

/// A measured load with the CPU `service` and `bench` (pids; None: not
/// measured) spent during it.
struct Timed {
    load: LoadResult,
    upstream: u64,
    service_cpu: Option<Duration>,
    bench_cpu: Option<Duration>,
}

async fn timed(
    sandbox: &Sandbox,
    service: Option<u32>,
    bench: Option<u32>,
    load: impl std::future::Future<Output = anyhow::Result<LoadResult>>,
) -> anyhow::Result<Timed> {
    let before = (service.and_then(cpu_time), bench.and_then(cpu_time));
    let calls = scenarios::upstream_total(sandbox);
    let load = load.await?;
    let upstream = scenarios::upstream_total(sandbox) - calls;
    let spent = |pid: Option<u32>, before: Option<Duration>| {
        Some(pid.and_then(cpu_time)?.saturating_sub(before?))
    };
    Ok(Timed {
        service_cpu: spent(service, before.0),
        bench_cpu: spent(bench, before.1),
        load,
        upstream,
    })
}

fn side(endpoint: &str, service: &str, t: &Timed) -> Side {
    let per =
        |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0 / t.load.requests.max(1) as f64);
    Side {
        row: Row::new(endpoint, service, &t.load, t.upstream),
        service_cpu_ms: per(t.service_cpu),
        bench_cpu_ms: per(t.bench_cpu),
    }
}

fn pair(what: &str, goal: f64, v2: Timed, v3: Timed) -> Pair {
    let (v2, v3) = (
        side(&format!("{what} v2"), "pay-service", &v2),
        side(&format!("{what} v3"), "pay-service (v3)", &v3),
    );
    Pair {
        what: what.to_owned(),
        ratio: v3.row.requests_per_second / v2.row.requests_per_second.max(1e-9),
        goal,
        v2,
        v3,
    }
}

/// A process's user + system CPU time so far (`/proc/<pid>/stat` fields 14
/// and 15, in USER_HZ = 100 ticks, Linux's value on every architecture it
/// exports to user space); None without /proc.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_ticks(&stat).map(|t| Duration::from_millis(t * 10))
}

fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces; fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Pays each order at the sandbox (its own delivery off) and makes the
/// `TRANSACTION.SUCCESS` notification WeChat would send: the sandbox's
/// transaction object sealed with the APIv3 key, signed with the key the
/// sandbox signs with now. Returns (body, `Wechatpay-*` headers) per order.
pub fn v3_notifications(
    state: &SandboxState,
    placed: &[Placed],
) -> anyhow::Result<Vec<SignedBody>> {
    let key = ApiV3Key::new(SANDBOX_MCH_API_V3_KEY)?;
    let quiet = PayOptions {
        notify: false,
        fail_first_deliveries: 0,
    };
    let mut out = Vec::with_capacity(placed.len());
    for (i, p) in placed.iter().enumerate() {
        state
            .pay_order(&p.out_trade_no, quiet)
            .map_err(|e| anyhow::anyhow!("sandbox cannot pay {}: {e}", p.out_trade_no))?;
        let resource = state
            .v3_transaction_resource(&p.out_trade_no)
            .ok_or_else(|| anyhow::anyhow!("sandbox lost {}", p.out_trade_no))?;
        let sealed = EncryptedResource::seal(
            &key,
            &shared::random::alphanumeric(12),
            "transaction",
            Some("transaction"),
            resource.to_string().as_bytes(),
        )?;
        let body = serde_json::to_string(&Notification {
            id: format!("EV-bench-{i}-{}", p.out_trade_no),
            create_time: chrono::Utc::now().to_rfc3339(),
            event_type: "TRANSACTION.SUCCESS".into(),
            resource_type: "encrypt-resource".into(),
            resource: sealed,
            summary: "支付成功".into(),
        })?;
        let headers = state.v3_sign(body.as_bytes());
        out.push((body, headers));
    }
    Ok(out)
}

/// POSTs each signed notification to `/api/pay/v3/notify`; success is
/// WeChat's acknowledgement, 204.
pub async fn post_v3_notifications(
    client: &reqwest::Client,
    base: &str,
    bodies: Arc<Vec<SignedBody>>,
    c: usize,
) -> LoadResult {
    let (client, url) = (client.clone(), format!("{base}{NOTIFY_V3_PATH}"));
    drive(c, bodies.len(), move |i| {
        let (body, headers) = &bodies[i];
        let req = headers.iter().fold(
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone()),
            |r, (k, v)| r.header(*k, v),
        );
        async move { req.send().await.is_ok_and(|r| r.status() == 204) }
    })
    .await
}

/// Means of `samples` signatures with the merchant's key (what pay-service
/// does per request) and verifications with the WeChat Pay public key (what
/// it does per answer and notification).
fn rsa_cost(state: &SandboxState, samples: usize) -> anyhow::Result<RsaCost> {
    let keys = state.v3_keys();
    let signer = MerchantSigner::from_pem(
        SANDBOX_MCH_ID,
        &keys.merchant_serial_no,
        &keys.merchant.key_pem,
    )?;
    // A JSAPI request's size: the message is hashed, then one RSA operation.
    let body = format!(
        "{{\"appid\":\"wx5a1d0b0c0b000002\",\"mchid\":\"{SANDBOX_MCH_ID}\",\"description\":\"bench\",{}}}",
        "\"x\":\"0123456789abcdef\","
            .repeat(16)
            .trim_end_matches(',')
    );
    let message = request_message(
        "POST",
        "/v3/pay/transactions/jsapi",
        1_700_000_000,
        "NONCE",
        &body,
    );
    let samples = samples.max(1);
    let started = Instant::now();
    for _ in 0..samples {
        std::hint::black_box(signer.sign(std::hint::black_box(message.as_bytes())));
    }
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / samples as f64;

    let verifier = Verifier::new().with_public_key(
        keys.public_key_id.clone(),
        PublicKey::from_pem(&keys.public_key_pem)?,
    );
    let headers = state.v3_sign(body.as_bytes());
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let msg = SignedMessage {
        serial: header("Wechatpay-Serial"),
        timestamp: header("Wechatpay-Timestamp"),
        nonce: header("Wechatpay-Nonce"),
        signature: header("Wechatpay-Signature"),
        body: body.as_bytes(),
    };
    verifier.verify(&msg)?;
    // Verification is ~50× cheaper than signing: more samples for the same time.
    let verify_samples = samples * 20;
    let started = Instant::now();
    for _ in 0..verify_samples {
        std::hint::black_box(verifier.verify(std::hint::black_box(&msg)))?;
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / verify_samples as f64;
    let (ring_sign_us, ring_verify_us) =
        ring_cost(&keys.merchant.key_pem, &signer, message.as_bytes(), samples)?;
    Ok(RsaCost {
        samples,
        sign_us,
        verify_us,
        ring_sign_us,
        ring_verify_us,
    })
}

/// [`rsa_cost`]'s figures with `ring`, after checking that both produce the
/// same signature (PKCS#1 v1.5 is deterministic): one implementation
/// checked against another, beside the timing.
fn ring_cost(
    key_pem: &str,
    signer: &MerchantSigner,
    message: &[u8],
    samples: usize,
) -> anyhow::Result<(f64, f64)> {
    use base64::Engine;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair};
    let b64: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64.trim())?;
    let pair = RsaKeyPair::from_pkcs8(&der)
        .map_err(|e| anyhow::anyhow!("ring refuses the merchant key: {e}"))?;
    let rng = ring::rand::SystemRandom::new();
    let mut signature = vec![0; pair.public().modulus_len()];
    let sign = |out: &mut [u8]| {
        pair.sign(&RSA_PKCS1_SHA256, &rng, message, out)
            .map_err(|_| anyhow::anyhow!("ring cannot sign"))
    };
    sign(&mut signature)?;
    let ours = base64::engine::general_purpose::STANDARD.decode(signer.sign(message))?;
    anyhow::ensure!(
        ours == signature,
        "ring and the rsa crate sign the same message differently"
    );
    let started = Instant::now();
    for _ in 0..samples {
        sign(std::hint::black_box(&mut signature))?;
    }
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / samples as f64;
    let public = ring::signature::UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        pair.public().as_ref().to_vec(),
    );
    let verify_samples = samples * 20;
    let started = Instant::now();
    for _ in 0..verify_samples {
        public
            .verify(message, std::hint::black_box(&signature))
            .map_err(|_| anyhow::anyhow!("ring does not verify its own signature"))?;
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / verify_samples as f64;
    Ok((sign_us, verify_us))
}

/// The section of the printed report.
pub fn table(f: &V3Figures) -> String {
    let mut out = format!(
        "\nAPIv3 beside v2 (back to back; v3 in a pay-service of its own with PAY_API_VERSION=v3)\n{:<44} {:>9} {:>8} {:>8} {:>6} {:>8} {:>10} {:>10}\n",
        "endpoint", "req/s", "p50 ms", "p99 ms", "errors", "upstream", "svc CPU ms", "bench CPU"
    );
    let cpu = |c: Option<f64>| c.map_or("-".to_owned(), |c| format!("{c:.3}"));
    for p in &f.pairs {
        for s in [&p.v2, &p.v3] {
            let r = &s.row;
            out += &format!(
                "{:<44} {:>9.0} {:>8.2} {:>8.2} {:>6} {:>8} {:>10} {:>10}\n",
                r.endpoint,
                r.requests_per_second,
                r.p50_ms,
                r.p99_ms,
                r.errors,
                r.upstream_calls,
                cpu(s.service_cpu_ms),
                cpu(s.bench_cpu_ms)
            );
        }
        out += &format!(
            "  v3 / v2 = {:.2} (goal ≥ {:.1}: {})\n",
            p.ratio,
            p.goal,
            if p.ratio >= p.goal { "met" } else { "missed" }
        );
    }
    out += &format!(
        "one RSA-2048 SHA256 signature (merchant key): {:.0} µs; one verification (public key): {:.1} µs ({} samples)\n",
        f.rsa.sign_us, f.rsa.verify_us, f.rsa.samples
    );
    out += &format!(
        "  the same with ring (identical signature bytes): sign {:.0} µs, verify {:.1} µs\n",
        f.rsa.ring_sign_us, f.rsa.ring_verify_us
    );
    out += &format!(
        "v3 orders APIv3 at the sandbox: {}; v3 notifications applied (PAID afterwards): {}\n",
        f.v3_orders_at_wechat, f.v3_notifications_applied
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_after_the_command_name() {
        // Fields 14 and 15 (utime 7, stime 3); the name holds a space and a ')'.
        let stat = "1234 (pay (v3) x) S 1 2 3 4 5 6 7 8 9 10 7 3 0 0 20 0 4 0 100";
        assert_eq!(cpu_ticks(stat), Some(10));
        assert_eq!(cpu_ticks("1234 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_spent_cpu() {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0);
        }
        assert!(cpu_time(std::process::id()).is_some_and(|t| t > Duration::ZERO));
    }
}
