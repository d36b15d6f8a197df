//! `cargo run --release -p bench -- --backend sqlite|postgres [--requests N]
//! [--concurrency C] [--in-process] [--no-build] [--out DIR] [open-loop,
//! pgbench and step options, see USAGE]`
//!
//! Builds the three services' binaries in this binary's profile (unless
//! `--no-build`), runs them as child processes, prints the table and writes
//! `target/bench/<backend>.json`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use std::time::Duration;

use bench::{Backend, Extras, Kind, Launch, OpenLoopOptions, Options};

const USAGE: &str = "usage: bench [--backend sqlite|postgres] [--requests N] [--concurrency C] \
[--in-process] [--no-build] [--out DIR]
             [--rate-jssdk R] [--rate-pay R] [--rate-seconds S] [--search-seconds S]
             [--no-search] [--no-open-loop] [--no-pgbench] [--no-gateway] [--no-v3] [--steps N]
  --backend      sqlite (files + in-process cache, default) or postgres
                 (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test,
                 in a fresh schema; BENCH_REDIS_URL, default a redis-server of the run's own)
  --requests     requests per endpoint (default 5000)
  --concurrency  concurrent connections (default 16)
  --in-process   run the services inside the bench (no per-process memory or start figures)
  --no-build     do not run `cargo build` for the service binaries first
  --out          where the JSON goes (default target/bench)
  --rate-jssdk   open loop: jssdkConfig's fixed rate, requests/s (default 20000)
  --rate-pay     open loop: v2Pay's fixed rate (default 500)
  --rate-seconds how long each fixed-rate run lasts (default 3)
  --search-seconds  each step of the highest-rate search (p99 < 50 ms; default 2)
  --no-search    no highest-rate search
  --no-open-loop no fixed-rate runs at all
  --no-pgbench   do not run pgbench -N beside the notifications (PostgreSQL)
  --no-gateway   do not measure through the nginx gateway (deploy/nginx/gateway.conf)
  --no-v3        do not measure WeChat Pay APIv3 orders and notifications beside v2
  --steps        notifications sent one at a time for the per-step timings
                 (default 50; 0: none)";

struct Args {
    opts: Options,
    build: bool,
    out: PathBuf,
}

fn workspace_root() -> PathBuf {
    // bench sits one level below the workspace root.
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

fn parse_args() -> Result<Args, String> {
    let bin_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .ok_or("no folder for the bench binary")?
        .to_path_buf();
    let mut args = Args {
        opts: Options {
            backend: Backend::Sqlite,
            launch: Launch::Binaries(bin_dir),
            requests: 5000,
            concurrency: 16,
            database_url: None,
            redis_url: None,
            extras: Extras {
                open_loop: Some(OpenLoopOptions::default()),
                pgbench: true,
                notify_steps: 50,
                gateway: true,
                v3: true,
            },
        },
        build: true,
        out: workspace_root().join("target").join("bench"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--backend" => args.opts.backend = value("--backend")?.parse()?,
            "--requests" => {
                args.opts.requests = value("--requests")?
                    .parse()
                    .map_err(|e| format!("--requests: {e}"))?
            }
            "--concurrency" => {
                args.opts.concurrency = value("--concurrency")?
                    .parse()
                    .map_err(|e| format!("--concurrency: {e}"))?
            }
            "--in-process" => args.opts.launch = Launch::InProcess,
            "--rate-jssdk" => open_loop(&mut args)?.jssdk_rate = number(&value("--rate-jssdk")?)?,
            "--rate-pay" => open_loop(&mut args)?.pay_rate = number(&value("--rate-pay")?)?,
            "--rate-seconds" => {
                open_loop(&mut args)?.duration = seconds(&value("--rate-seconds")?)?
            }
            "--search-seconds" => {
                open_loop(&mut args)?.search_step = Some(seconds(&value("--search-seconds")?)?)
            }
            "--no-search" => open_loop(&mut args)?.search_step = None,
            "--no-open-loop" => args.opts.extras.open_loop = None,
            "--no-pgbench" => args.opts.extras.pgbench = false,
            "--no-gateway" => args.opts.extras.gateway = false,
            "--no-v3" => args.opts.extras.v3 = false,
            "--steps" => {
                args.opts.extras.notify_steps = value("--steps")?
                    .parse()
                    .map_err(|e| format!("--steps: {e}"))?
            }
            "--no-build" => args.build = false,
            "--out" => args.out = PathBuf::from(value("--out")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn open_loop(args: &mut Args) -> Result<&mut OpenLoopOptions, String> {
    args.opts
        .extras
        .open_loop
        .as_mut()
        .ok_or_else(|| "open-loop options after --no-open-loop".to_owned())
}

fn number(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .ok_or_else(|| format!("{s:?} is not a positive number"))
}

fn seconds(s: &str) -> Result<Duration, String> {
    number(s).map(Duration::from_secs_f64)
}

/// `cargo build` of the three binaries in the profile this bench was built in
/// (its binaries sit beside ours: `target/<profile>/`, `debug` for `dev`).
fn build_services(bin_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .arg("build")
        .args(bench::profile_args(bin_dir));
    for kind in Kind::ALL {
        cmd.args(["-p", kind.binary()]);
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("cargo build failed: {status}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let (true, Launch::Binaries(dir)) = (args.build, &args.opts.launch)
        && let Err(e) = build_services(dir)
    {
        eprintln!("bench: {e}");
        return ExitCode::FAILURE;
    }
    let report = match bench::run(&args.opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.table());
    let path = args.out.join(format!("{}.json", report.backend));
    let written = std::fs::create_dir_all(&args.out)
        .and_then(|_| serde_json::to_vec_pretty(&report).map_err(std::io::Error::other))
        .and_then(|json| std::fs::write(&path, json));
    match written {
        Ok(()) => println!("figures written to {}", path.display()),
        Err(e) => {
            eprintln!("bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
