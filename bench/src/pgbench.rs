//! `pgbench -N` (the "simple update" script: one UPDATE, one SELECT, one
//! INSERT per transaction) on the PostgreSQL the services use, at the
//! notification load's concurrency and for its duration: the yardstick for
//! notifications applied per second, which are one transaction each too.
//! Its tables go in a schema of their own, dropped afterwards.

use std::process::Command;
use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PgbenchFigures {
    pub clients: usize,
    pub seconds: u64,
    /// Transactions per second, without the initial connection time.
    pub tps: f64,
}

/// Whether `pgbench` can be run here.
pub fn available() -> bool {
    Command::new("pgbench")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Initialises a scale-1 pgbench schema in `admin_url`'s database and runs
/// `pgbench -N` with `clients` connections for `duration` (whole seconds, at
/// least one). Blocking.
pub fn run(admin_url: &str, clients: usize, duration: Duration) -> anyhow::Result<PgbenchFigures> {
    let schema = format!("pgbench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = diesel::PgConnection::establish(admin_url)
        .map_err(|e| anyhow::anyhow!("pgbench database: {e}"))?;
    admin.batch_execute(&format!("CREATE SCHEMA {schema}"))?;
    let url = testkit::with_search_path(admin_url, &schema);
    let result = init_and_run(&url, clients, duration);
    let dropped = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    let figures = result?;
    dropped?;
    Ok(figures)
}

fn init_and_run(url: &str, clients: usize, duration: Duration) -> anyhow::Result<PgbenchFigures> {
    pgbench(&["-i", "-q", "-s", "1", url])?;
    let clients = clients.max(1);
    let seconds = duration.as_secs_f64().round().max(1.0) as u64;
    let (c, t) = (clients.to_string(), seconds.to_string());
    let threads = clients.min(2).to_string();
    let out = pgbench(&["-N", "-n", "-c", &c, "-j", &threads, "-T", &t, url])?;
    let tps =
        parse_tps(&out).ok_or_else(|| anyhow::anyhow!("no tps in pgbench's output:\n{out}"))?;
    Ok(PgbenchFigures {
        clients,
        seconds,
        tps,
    })
}

fn pgbench(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("pgbench")
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "pgbench {:?} failed: {}\n{text}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text)
}

/// `tps = 2423.512345 (without initial connection time)` (PostgreSQL 14+).
fn parse_tps(out: &str) -> Option<f64> {
    out.lines()
        .filter(|l| l.starts_with("tps = "))
        .find(|l| l.contains("without initial connection time") || !l.contains("including"))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tps_line() {
        let out = "transaction type: <builtin: simple update>\n\
                   number of transactions actually processed: 7270\n\
                   latency average = 6.598 ms\n\
                   initial connection time = 12.001 ms\n\
                   tps = 2423.512345 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(2423.512345));
        let old = "tps = 10.0 (including connections establishing)\n\
                   tps = 11.5 (excluding connections establishing)\n";
        assert_eq!(parse_tps(old), Some(11.5));
        assert_eq!(parse_tps("nothing"), None);
    }
}
