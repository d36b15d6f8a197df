//! `rediss://`: the cache reaches a Redis that speaks TLS only, and verifies
//! its certificate (issuer and host name) as managed Redis needs. The server
//! is a real `redis-server` with a TLS listener, its certificates made by
//! openssl (testkit::RedisServer::start_tls).
//!
//! One test in its own binary: it sets SSL_CERT_FILE, which the Redis client
//! reads (rustls-native-certs) each time it connects, and no other test may
//! run beside that.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::time::Duration;

use shared::cache::Cache;
use testkit::RedisServer;

#[test]
fn rediss_urls_connect_over_tls_and_verify_the_server() {
    if !RedisServer::available() {
        return;
    }
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        return testkit::skip_or_fail("openssl is not installed (it makes the test certificates)");
    }
    // Before any runtime thread exists (see the module comment): the image's
    // roots, as in production, which do not know the test CA.
    let dir = std::env::temp_dir().join(format!(
        "wxpay-redis-tls-{}",
        shared::random::alphanumeric(8)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(RedisServer::start_tls(&dir))
        .expect("redis-server with TLS starts (Debian's redis-server is built with TLS)");
    let url = server.tls_url().unwrap();
    let port = server.tls_port().unwrap();

    // A server whose CA is not trusted is refused: the certificate is checked.
    let untrusted = rt.block_on(Cache::connect(Some(&url), "tls:"));
    let err = untrusted.expect_err("connected to a server of an unknown CA");
    assert!(
        format!("{err}").to_lowercase().contains("certificate")
            || format!("{err:?}").contains("UnknownIssuer"),
        "refused for its certificate: {err} / {err:?}"
    );

    // SAFETY: this binary's only test, on its own thread, and the runtime
    // above is single-threaded: nothing reads the environment concurrently.
    unsafe { std::env::set_var("SSL_CERT_FILE", server.tls_ca_file().unwrap()) };

    // Trusted, but the certificate names `localhost`, not 127.0.0.1.
    let wrong_name = format!("rediss://127.0.0.1:{port}/0");
    let err = rt
        .block_on(Cache::connect(Some(&wrong_name), "tls:"))
        .expect_err("connected to a certificate for another name");
    assert!(
        format!("{err:?}").contains("NotValidForName")
            || format!("{err}").to_lowercase().contains("certificate"),
        "refused for its name: {err} / {err:?}"
    );

    // Trusted and named: the cache works over TLS. The server has no plain
    // TCP port (only TLS and its unix socket), so this can only be TLS.
    rt.block_on(async {
        let cache = Cache::connect(Some(&url), "tls:")
            .await
            .expect("rediss:// connects");
        assert!(cache.is_shared());
        cache.ping().await.unwrap();
        cache
            .set("k", "over tls", Duration::from_secs(60))
            .await
            .unwrap();
        // Read back through the plain unix socket: the same server stored it.
        let local = Cache::connect(Some(&server.url()), "tls:").await.unwrap();
        assert_eq!(local.get("k").await.unwrap().as_deref(), Some("over tls"));
        // A plain client on the TLS port gets no answer it can use.
        let plain = format!("redis://localhost:{port}/0");
        assert!(
            Cache::connect(Some(&plain), "tls:").await.is_err(),
            "the TLS port answered a plain client"
        );
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
