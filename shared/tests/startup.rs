//! `shared::startup::Application`: serves routes and health routes on the
//! bound port, and keeps its guard alive exactly as long as the server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use shared::startup::{Application, StartupError};
use shared::telemetry::Readiness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn settings() -> shared::http::ServerSettings {
    shared::http::ServerSettings {
        allowed_origins: Vec::new(),
        max_json_bytes: 1024,
        workers: Some(1),
        body_timeout: Duration::from_secs(5),
        trusted_gateways: Default::default(),
    }
}

/// The whole answer (status line, headers, body) to `GET path` on 127.0.0.1:port.
async fn get(port: u16, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("reads");
    reply
}

/// The status line of `GET path` on 127.0.0.1:port.
async fn status_line(port: u16, path: &str) -> String {
    get(port, path)
        .await
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn app_with_ping(listener: TcpListener) -> Application {
    Application::serve(listener, settings(), Readiness::default(), |cfg| {
        cfg.route(
            "/ping",
            web::get().to(|| async { HttpResponse::Ok().body("pong") }),
        );
    })
    .expect("serves")
}

#[tokio::test]
async fn serves_routes_and_health_on_the_bound_port() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let bound = listener.local_addr().expect("address").port();
    let app = app_with_ping(listener);
    assert_eq!(app.port(), bound);
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    assert_eq!(status_line(bound, "/ping").await, "HTTP/1.1 200 OK");
    assert_eq!(status_line(bound, "/healthz").await, "HTTP/1.1 200 OK");
    assert_eq!(status_line(bound, "/readyz").await, "HTTP/1.1 200 OK");
    assert_eq!(
        status_line(bound, "/nowhere").await,
        "HTTP/1.1 404 Not Found"
    );
    handle.stop(true).await;
    server.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn the_guard_lives_exactly_as_long_as_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let worker = Arc::new(());
    let watch = Arc::downgrade(&worker);
    let app = app_with_ping(listener).keep_alive(worker);
    let (port, handle) = (app.port(), app.handle());
    let server = tokio::spawn(app.run_until_stopped());

    assert_eq!(status_line(port, "/ping").await, "HTTP/1.1 200 OK");
    assert!(watch.upgrade().is_some(), "alive while the server runs");

    handle.stop(true).await;
    server.await.expect("joins").expect("stops cleanly");
    assert!(watch.upgrade().is_none(), "dropped once the server stopped");
}

#[test]
fn a_service_step_names_itself() {
    let err = StartupError::service("client certificate", "no such file");
    assert_eq!(err.to_string(), "client certificate: no such file");
}

/// The process metrics an operator's dashboards and alerts read
/// (deploy/observability) come from the prometheus crate's process collector.
#[tokio::test]
async fn metrics_carry_the_process_figures() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let app = app_with_ping(listener);
    let port = app.port();
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    let metrics = get(port, "/metrics").await;
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "/metrics lacks {name}"
        );
    }
    handle.stop(true).await;
    server.await.expect("joins").expect("stops cleanly");
}
