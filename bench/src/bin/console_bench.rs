//! `cargo run --release -p bench --bin console_bench -- [--orders N]
//! [--repeats N] [--chart-repeats N] [--depth N] [--in-process] [--no-build]
//! [--out DIR]`: the operator console's order list and charts over
//! 1,000,000 orders (default) on PostgreSQL (`BENCH_DATABASE_URL`, a fresh
//! schema removed afterwards). See `bench::console`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use bench::Launch;
use bench::console::{self, ConsoleOptions};

const USAGE: &str = "usage: console_bench [--orders N] [--repeats N] [--chart-repeats N] \
[--depth N] [--in-process] [--no-build] [--out DIR]
  --orders         orders loaded (default 1000000)
  --repeats        timed requests per order-list query (default 100)
  --chart-repeats  timed requests per chart (default 10)
  --depth          pages followed before the deep page is timed (default 20)
  --in-process     run pay-service inside the bench instead of as a child process
  --no-build       do not run `cargo build -p pay-service` first
  --out            where console.json goes (default target/bench)";

struct Args {
    opts: ConsoleOptions,
    build: bool,
    out: PathBuf,
}

fn workspace_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

fn number<T: std::str::FromStr>(name: &str, v: Option<String>) -> Result<T, String> {
    v.ok_or(format!("{name} needs a value"))?
        .parse()
        .map_err(|_| format!("{name}: not a number"))
}

fn parse_args() -> Result<Args, String> {
    let bin_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .ok_or("no folder for the bench binary")?
        .to_path_buf();
    let mut args = Args {
        opts: ConsoleOptions {
            orders: 1_000_000,
            repeats: 100,
            chart_repeats: 10,
            depth: 20,
            launch: Launch::Binaries(bin_dir),
            database_url: None,
            redis_url: None,
        },
        build: true,
        out: workspace_root().join("target").join("bench"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--orders" => args.opts.orders = number("--orders", it.next())?,
            "--repeats" => args.opts.repeats = number("--repeats", it.next())?,
            "--chart-repeats" => args.opts.chart_repeats = number("--chart-repeats", it.next())?,
            "--depth" => args.opts.depth = number("--depth", it.next())?,
            "--in-process" => args.opts.launch = Launch::InProcess,
            "--no-build" => args.build = false,
            "--out" => args.out = PathBuf::from(it.next().ok_or("--out needs a value")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// `cargo build -p pay-service` in this binary's profile.
fn build_pay_service(bin_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "pay-service"])
        .args(bench::profile_args(bin_dir));
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
            eprintln!("console_bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let (true, Launch::Binaries(dir)) = (args.build, &args.opts.launch)
        && let Err(e) = build_pay_service(dir)
    {
        eprintln!("console_bench: {e}");
        return ExitCode::FAILURE;
    }
    let report = match console::run(&args.opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("console_bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.table());
    let path = args.out.join("console.json");
    let written = std::fs::create_dir_all(&args.out)
        .and_then(|_| serde_json::to_vec_pretty(&report).map_err(std::io::Error::other))
        .and_then(|json| std::fs::write(&path, json));
    match written {
        Ok(()) => println!("figures written to {}", path.display()),
        Err(e) => {
            eprintln!("console_bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
