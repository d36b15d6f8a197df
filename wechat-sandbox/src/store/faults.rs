//! Queued faults and per-path call counts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::lock;

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
}
