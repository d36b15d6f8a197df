//! Resident memory of a process (Linux `/proc/<pid>/status`, `VmRSS`), once or
//! sampled for its peak while load runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// VmRSS in KiB, or None where /proc is not there.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    field_kib(status, "VmRSS:")
}

fn field_kib(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The anonymous part of the resident memory (heap, stacks: what the process
/// allocated itself) and its proportional share (PSS: shared pages, the
/// binary's and the libraries' code, divided among the processes that map
/// them), in KiB, from `/proc/<pid>/smaps_rollup`. RSS counts every mapped
/// page whole, and a page of code is faulted in with its neighbours (64 KiB
/// at a time), so most of an idle service's RSS is code and libraries.
pub fn anon_and_pss_kib(pid: u32) -> Option<(u64, u64)> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some((
        field_kib(&rollup, "Anonymous:")?,
        field_kib(&rollup, "Pss:")?,
    ))
}

/// Samples a process's VmRSS every few milliseconds until stopped; keeps the peak.
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakSampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let (s, p) = (stop.clone(), peak.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        PeakSampler { stop, peak, task }
    }

    /// The peak seen, in KiB.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_kib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(status), Some(4321));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        let rollup = "Rss:  19800 kB\nPss:  12000 kB\nPss_Anon: 3000 kB\nAnonymous:  3304 kB\n";
        assert_eq!(field_kib(rollup, "Anonymous:"), Some(3304));
        assert_eq!(field_kib(rollup, "Pss:"), Some(12000));
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
