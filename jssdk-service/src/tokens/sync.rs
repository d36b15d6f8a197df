//! Change notices between replicas: after a replica writes a value to the
//! shared cache, or drops one WeChat rejected, it publishes
//! `<kind> <replica id>` on `jssdk:<appid>:changed`; every replica listens, and
//! on a notice from another one checks its process copies against the shared
//! cache again on their next use ([`super::local`]).
//!
//! How late a replica sees another's change:
//! - subscription live: once the notice arrives (a Redis round trip);
//! - subscription down (Redis restarting, the connection lost): at most
//!   [`TRUST_WHILE_DOWN`](super::local::TRUST_WHILE_DOWN) (1 s) after the drop
//!   is noticed. A connection that breaks without a reset is noticed by the
//!   subscription's probe, within
//!   [`SUBSCRIPTION_PROBE`](shared::cache::SUBSCRIPTION_PROBE) plus the Redis
//!   timeout (1 s + 1.5 s), so at worst about 3.5 s.

use std::sync::{Arc, Weak};

use shared::cache::{Cache, Notice};
use tokio::sync::oneshot;

use super::entry::Kind;
use super::manager::Inner;

/// The notice for a change of `kind` made by `replica`.
pub(super) fn notice(kind: Kind, replica: &str) -> String {
    format!("{} {replica}", kind.as_str())
}

fn from_replica(notice: &str) -> Option<&str> {
    notice.split_once(' ').map(|(_, replica)| replica)
}

/// Subscribes and applies notices to `inner`'s copies until `stop` fires or
/// its sender is dropped (with the manager).
pub(super) fn spawn_listener(
    cache: &Cache,
    channel: &str,
    inner: Weak<Inner>,
    replica: Arc<str>,
    stop: oneshot::Receiver<()>,
) {
    let mut subscription = cache.subscribe(channel);
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            let notice = tokio::select! {
                n = subscription.next() => n,
                _ = &mut stop => None,
            };
            let (Some(notice), Some(inner)) = (notice, inner.upgrade()) else {
                break;
            };
            match notice {
                Notice::Live => {
                    tracing::debug!("change notices live");
                    inner.copies.live();
                }
                Notice::Lost => {
                    tracing::warn!(
                        "change notices lost: process copies are checked once a second until they are back"
                    );
                    inner.copies.down();
                }
                Notice::Message(m) => {
                    if from_replica(&m) != Some(&*replica) {
                        inner.copies.invalidate();
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_names_the_kind_and_the_replica() {
        let n = notice(Kind::JsapiTicket, "r1");
        assert_eq!(n, "jsapi_ticket r1");
        assert_eq!(from_replica(&n), Some("r1"));
        assert_eq!(from_replica("garbage"), None);
    }
}
