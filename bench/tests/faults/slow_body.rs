//! A client that sends its body a byte at a time is cut off: 408 and the
//! connection closed once BODY_TIMEOUT_MS has passed, instead of holding the
//! connection for as long as it likes.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Sends the head of a POST with a 200-byte Content-Length, then a byte every
/// 250 ms (50 s for the whole body); returns what the server sent before it
/// closed the connection, and how long that took.
async fn trickle(base: &str, path: &str, extra_headers: &str) -> (String, Duration) {
    let addr = base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut rd, mut wr) = stream.into_split();
    let started = Instant::now();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{extra_headers}Content-Length: 200\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..200 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut answer)).await;
    let elapsed = started.elapsed();
    writer.abort();
    // A reset after the answer is a close too.
    assert!(read.is_ok(), "the connection was still open after 30 s");
    (String::from_utf8_lossy(&answer).into_owned(), elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_a_byte_at_a_time_is_cut_off() {
    let app = start_stack(&[("BODY_TIMEOUT_MS", "1000")]).await;
    let client = client();
    let (s, body) = get_json(get_session(&client, &app)).await;
    assert_eq!(s, 200, "{body}");
    let token = body["data"]["token"].as_str().unwrap().to_owned();

    let cases = [
        ("/api/pay/notify", "Content-Type: text/xml\r\n".to_owned()),
        (
            "/api/pay/orders",
            format!("Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"),
        ),
    ];
    for (path, headers) in cases {
        let (answer, elapsed) = trickle(&app.base, path, &headers).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{path}: {answer}"
        );
        assert!(answer.contains("\"code\":1001"), "{path}: {answer}");
        // 1 s allowed; the bound leaves room for a slow machine, and is far
        // below the 50 s the body would take.
        assert!(
            elapsed < Duration::from_secs(10),
            "{path}: cut off after {elapsed:?}"
        );
    }
    // The server is fine, and nothing was placed or applied.
    assert_eq!(
        status_of(&client, &format!("{}/healthz", app.base)).await,
        200
    );
    assert_eq!(app.sandbox.calls("/pay/unifiedorder"), 0);
}
