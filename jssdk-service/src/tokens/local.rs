//! The copy of each value this process keeps, and when a request may be served
//! from it without asking the shared cache.
//!
//! A copy read from (or written to) the shared cache is *checked* at that
//! moment. It is trusted, so that a warm request touches nothing but this
//! process's memory, while all of these hold:
//! - it has not expired (on the service's clock);
//! - no change notice arrived since it was checked (the *generation* is the
//!   same): every replica publishes one after it writes or drops a value, and
//!   every replica listens ([`super::sync`]);
//! - it was checked less than [`TRUST_WHILE_LIVE`] ago while the subscription is
//!   live, or less than [`TRUST_WHILE_DOWN`] ago while it is not (dropped, or
//!   not yet established), so that without notices a change made by another
//!   replica is seen within a second.
//!
//! Otherwise the request reads the shared cache, which checks the copy again.
//!
//! A warm request writes nothing that another thread reads: each thread
//! serves from a mirror of its own of the copies, with a value of its own
//! (an `Arc` whose count no other thread touches), remade after a change.
//! A lock, or one `Arc` for all threads, would be written by every request,
//! and its cache line passed between the cores (issue #16).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use thread_local::ThreadLocal;

use super::entry::{Entry, Kind};

/// How long a checked copy is trusted while change notices arrive. Notices
/// cover every change a replica of this service makes; this bounds how long a
/// change made any other way (an operator, a replica of an older version that
/// does not publish) goes unseen.
pub const TRUST_WHILE_LIVE: Duration = Duration::from_secs(60);

/// How long a checked copy is trusted while no notices can arrive: the bound
/// on how late this replica sees another's change when the subscription is
/// down.
pub const TRUST_WHILE_DOWN: Duration = Duration::from_secs(1);

type Slots = [Option<Slot>; Kind::ALL.len()];

#[derive(Default)]
pub(super) struct ProcessCopies {
    /// By [`Kind::index`]: every warm request reads one, and an array needs
    /// no hashing.
    slots: Mutex<Slots>,
    /// Bumped, under the lock, by every write to `slots`.
    version: AtomicU64,
    /// Each thread's copy of `slots`, and the version it copied.
    mirrors: ThreadLocal<RefCell<Mirror>>,
    /// Bumped by every change notice and every (re)subscription.
    generation: AtomicU64,
    /// Whether change notices are arriving.
    live: AtomicBool,
}

#[derive(Default)]
struct Mirror {
    version: Option<u64>,
    slots: Slots,
}

struct Slot {
    entry: Entry,
    /// The generation it was checked in and when; None: never checked, or
    /// the shared cache no longer holds it.
    checked: Option<(u64, Instant)>,
}

impl Slot {
    /// The same, with a value of its own: for one thread's mirror.
    fn own_copy(&self) -> Slot {
        Slot {
            entry: Entry {
                value: Arc::from(&*self.entry.value),
                expires_at_ms: self.entry.expires_at_ms,
                fetched_at_ms: self.entry.fetched_at_ms,
            },
            checked: self.checked,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave the map half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProcessCopies {
    /// The generation a read of the shared cache starts in: pass it to
    /// [`ProcessCopies::checked`] with the instant the read started.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The copy, when it may be served without asking the shared cache.
    pub fn trusted(&self, kind: Kind, now_ms: i64, now: Instant) -> Option<Entry> {
        let mirror = self.mirror();
        let slot = mirror.slots[kind.index()].as_ref()?;
        let (generation, at) = slot.checked?;
        let window = if self.live.load(Ordering::SeqCst) {
            TRUST_WHILE_LIVE
        } else {
            TRUST_WHILE_DOWN
        };
        (slot.entry.is_valid(now_ms)
            && generation == self.generation()
            && now.saturating_duration_since(at) < window)
            .then(|| slot.entry.clone())
    }

    /// This thread's mirror of the copies, remade when they have changed.
    fn mirror(&self) -> std::cell::Ref<'_, Mirror> {
        let cell = self.mirrors.get_or_default();
        let version = self.version.load(Ordering::Acquire);
        if cell.borrow().version != Some(version) {
            let slots = lock(&self.slots);
            let mut mirror = cell.borrow_mut();
            // Read under the lock: the version of exactly these slots.
            mirror.version = Some(self.version.load(Ordering::Acquire));
            mirror.slots = slots.each_ref().map(|s| s.as_ref().map(Slot::own_copy));
        }
        cell.borrow()
    }

    /// Marks a write to `slots` (made under `_held`, their lock).
    fn changed(&self, _held: &MutexGuard<'_, Slots>) {
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The newest copy seen, trusted or not (for when the shared cache is down).
    pub fn any(&self, kind: Kind) -> Option<Entry> {
        lock(&self.slots)[kind.index()]
            .as_ref()
            .map(|s| s.entry.clone())
    }

    /// What a read of the shared cache that started in `generation` at `at`
    /// found there. An older value than the copy (one a failed write left
    /// behind) does not replace it, and leaves it unchecked.
    pub fn checked(&self, kind: Kind, found: Option<&Entry>, generation: u64, at: Instant) {
        let mut slots = lock(&self.slots);
        let slot = &mut slots[kind.index()];
        match (found, slot.as_mut()) {
            (None, Some(slot)) => slot.checked = None,
            (None, None) => {}
            (Some(e), Some(slot)) if slot.entry.fetched_at_ms > e.fetched_at_ms => {
                slot.checked = None;
            }
            (Some(e), _) => {
                *slot = Some(Slot {
                    entry: e.clone(),
                    checked: Some((generation, at)),
                });
            }
        }
        self.changed(&slots);
    }

    /// A value this process has just fetched and written to the shared cache
    /// (under the fetch lock, so nobody wrote another meanwhile).
    pub fn fetched(&self, kind: Kind, e: &Entry, now: Instant) {
        let generation = self.generation();
        let mut slots = lock(&self.slots);
        let slot = &mut slots[kind.index()];
        if slot
            .as_ref()
            .is_none_or(|old| old.entry.fetched_at_ms <= e.fetched_at_ms)
        {
            *slot = Some(Slot {
                entry: e.clone(),
                checked: Some((generation, now)),
            });
        }
        self.changed(&slots);
    }

    /// Forgets the copy when it still is `rejected` (WeChat refused it).
    pub fn forget(&self, kind: Kind, rejected: &str) {
        let mut slots = lock(&self.slots);
        let slot = &mut slots[kind.index()];
        if slot.as_ref().is_some_and(|s| &*s.entry.value == rejected) {
            *slot = None;
        }
        self.changed(&slots);
    }

    /// Another replica changed something: every copy is checked again.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The subscription is (re)established. Notices published while it was
    /// down are lost, so everything is checked again first; only then is the
    /// longer window granted, to copies checked after this point.
    pub fn live(&self) {
        self.invalidate();
        self.live.store(true, Ordering::SeqCst);
    }

    /// The subscription dropped: copies are trusted for [`TRUST_WHILE_DOWN`]
    /// after their check only.
    pub fn down(&self) {
        self.live.store(false, Ordering::SeqCst);
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &str, fetched_at_ms: i64) -> Entry {
        Entry::from_reply(value.into(), fetched_at_ms, 7200)
    }

    /// Each thread serves a value of its own (no reference count that two
    /// cores write), the same one each time, and sees a change made on
    /// another thread at once.
    #[test]
    fn each_thread_serves_its_own_copy_and_sees_a_change_at_once() {
        let copies = ProcessCopies::default();
        let t0 = Instant::now();
        let trusted = || copies.trusted(Kind::JsapiTicket, 1, t0);
        let e1 = entry("t1", 0);
        copies.checked(Kind::JsapiTicket, Some(&e1), copies.generation(), t0);
        let here = trusted().unwrap();
        assert!(Arc::ptr_eq(&here.value, &trusted().unwrap().value));
        std::thread::scope(|s| {
            s.spawn(|| {
                let there = trusted().unwrap();
                assert_eq!(there, e1);
                assert!(!Arc::ptr_eq(&there.value, &here.value));
                assert!(!Arc::ptr_eq(&there.value, &e1.value));
                // A newer value checked on this thread...
                let e2 = entry("t2", 5);
                copies.checked(Kind::JsapiTicket, Some(&e2), copies.generation(), t0);
                assert_eq!(trusted(), Some(e2));
            });
        });
        // ...is what the first thread serves next, and forgetting it there
        // leaves nothing to serve here.
        assert_eq!(trusted().map(|e| e.value), Some("t2".into()));
        std::thread::scope(|s| {
            s.spawn(|| copies.forget(Kind::JsapiTicket, "t2"));
        });
        assert_eq!(trusted(), None);
    }

    #[test]
    fn a_checked_copy_is_trusted_for_a_second_without_notices_and_longer_with() {
        let copies = ProcessCopies::default();
        let t0 = Instant::now();
        let e = entry("t1", 0);
        assert_eq!(
            copies.trusted(Kind::JsapiTicket, 1, t0),
            None,
            "nothing yet"
        );
        copies.checked(Kind::JsapiTicket, Some(&e), copies.generation(), t0);
        let soon = t0 + Duration::from_millis(999);
        let later = t0 + TRUST_WHILE_DOWN;
        assert_eq!(copies.trusted(Kind::JsapiTicket, 1, soon), Some(e.clone()));
        assert_eq!(copies.trusted(Kind::JsapiTicket, 1, later), None);
        assert_eq!(copies.trusted(Kind::AccessToken, 1, soon), None);

        // Live: checked again after the subscription came up, then trusted
        // for the longer window, and dropped to a second when it goes down.
        copies.live();
        assert_eq!(
            copies.trusted(Kind::JsapiTicket, 1, soon),
            None,
            "checked before the subscription: notices may have been missed"
        );
        copies.checked(Kind::JsapiTicket, Some(&e), copies.generation(), t0);
        let minute = t0 + TRUST_WHILE_LIVE - Duration::from_millis(1);
        assert_eq!(copies.trusted(Kind::JsapiTicket, 1, later), Some(e.clone()));
        assert_eq!(
            copies.trusted(Kind::JsapiTicket, 1, minute),
            Some(e.clone())
        );
        assert_eq!(
            copies.trusted(Kind::JsapiTicket, 1, t0 + TRUST_WHILE_LIVE),
            None
        );
        copies.down();
        assert_eq!(copies.trusted(Kind::JsapiTicket, 1, later), None);
        assert_eq!(copies.trusted(Kind::JsapiTicket, 1, soon), Some(e.clone()));
        // Whatever the window, never past its expiry.
        assert_eq!(
            copies.trusted(Kind::JsapiTicket, e.expires_at_ms, soon),
            None
        );
        assert_eq!(copies.any(Kind::JsapiTicket), Some(e));
    }

    #[test]
    fn a_notice_during_a_read_leaves_what_it_read_unchecked() {
        let copies = ProcessCopies::default();
        copies.live();
        let t0 = Instant::now();
        let started_in = copies.generation();
        // Another replica writes and publishes while our read is on the wire.
        copies.invalidate();
        copies.checked(Kind::JsapiTicket, Some(&entry("old", 0)), started_in, t0);
        assert_eq!(copies.trusted(Kind::JsapiTicket, 1, t0), None);
        // The next read sees the new value and is trusted.
        let new = entry("new", 10);
        copies.checked(Kind::JsapiTicket, Some(&new), copies.generation(), t0);
        assert_eq!(copies.trusted(Kind::JsapiTicket, 1, t0), Some(new));
    }

    #[test]
    fn an_older_or_missing_shared_value_is_not_trusted() {
        let copies = ProcessCopies::default();
        let t0 = Instant::now();
        let newer = entry("newer", 10);
        copies.fetched(Kind::AccessToken, &newer, t0);
        assert_eq!(
            copies.trusted(Kind::AccessToken, 11, t0),
            Some(newer.clone())
        );
        copies.checked(
            Kind::AccessToken,
            Some(&entry("older", 5)),
            copies.generation(),
            t0,
        );
        assert_eq!(copies.trusted(Kind::AccessToken, 11, t0), None);
        assert_eq!(copies.any(Kind::AccessToken), Some(newer.clone()), "kept");
        copies.fetched(Kind::AccessToken, &newer, t0);
        copies.checked(Kind::AccessToken, None, copies.generation(), t0);
        assert_eq!(copies.trusted(Kind::AccessToken, 11, t0), None);
        copies.forget(Kind::AccessToken, "other");
        assert!(copies.any(Kind::AccessToken).is_some());
        copies.forget(Kind::AccessToken, "newer");
        assert_eq!(copies.any(Kind::AccessToken), None);
    }
}
