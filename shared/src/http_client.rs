//! The one way to make a reqwest client.
//!
//! The workspace has one TLS crypto provider, ring: rustls (the sandbox's
//! listener, the refund client's certificate), `rediss://`, rcgen and the
//! APIv3 RSA signatures all use it. reqwest 0.13 would bring aws-lc-rs as a
//! second one, so it is built without a provider of its own
//! (`rustls-no-provider`) and uses rustls' process default instead; building
//! a client before that default is installed panics. [`builder`] and
//! [`client`] install ring first, and clippy.toml forbids reqwest's own
//! constructors so that no client skips this.

/// Makes ring rustls' process-wide provider. Safe to call again: a provider
/// already installed (by an earlier call) is kept.
pub fn install_crypto_provider() {
    // Err only means a default is already in place; ring is the only
    // provider compiled in, so it is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `reqwest::Client::builder()`, with the crypto provider installed.
pub fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    #[allow(
        clippy::disallowed_methods,
        reason = "the one place that builds reqwest clients"
    )]
    reqwest::Client::builder()
}

/// `reqwest::Client::new()`, with the crypto provider installed.
pub fn client() -> reqwest::Client {
    install_crypto_provider();
    #[allow(
        clippy::disallowed_methods,
        reason = "the one place that builds reqwest clients"
    )]
    reqwest::Client::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_build_with_ring_installed() {
        let _ = client();
        builder().use_rustls_tls().build().unwrap();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
