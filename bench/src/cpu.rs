//! CPU a process has run, to the nanosecond: the sum over its threads of
//! `/proc/<pid>/task/<tid>/schedstat`'s first field (time on a CPU, in ns).
//! `/proc/<pid>/stat`'s user and system ticks ([`crate::v3::cpu_time`]) are
//! 10 ms apart, a quarter of a whole light-client round (issue #16), so the
//! light pair's CPU per request is read here. A thread that ends between two
//! readings takes its time with it; the services' and the bench's threads
//! live as long as the run.

use std::time::Duration;

/// The CPU time `pid`'s threads have run so far; None without /proc (or
/// with a kernel that keeps no schedstat).
pub fn threads_cpu(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0;
    for task in tasks.flatten() {
        // Gone since the directory was read: its time is gone too.
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        ns += on_cpu_ns(&stat)?;
    }
    Some(Duration::from_nanos(ns))
}

/// schedstat's first field: `on-CPU-ns waiting-ns timeslices`.
fn on_cpu_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_field_of_schedstat() {
        assert_eq!(on_cpu_ns("376878 85270 2\n"), Some(376_878));
        assert_eq!(on_cpu_ns(""), None);
        assert_eq!(on_cpu_ns("x 1 2"), None);
    }

    /// This process's threads have run, and running more shows: the count
    /// grows by 5 ms while this thread works (10 s of wall time allowed, on
    /// however busy a machine).
    #[test]
    fn this_process_counts_what_it_runs() {
        let pid = std::process::id();
        let before = threads_cpu(pid).unwrap();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let mut now = before;
        while now < before + Duration::from_millis(5) && started.elapsed() < Duration::from_secs(10)
        {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            now = threads_cpu(pid).unwrap();
        }
        assert!(
            now >= before + Duration::from_millis(5),
            "{before:?} -> {now:?}"
        );
    }
}
