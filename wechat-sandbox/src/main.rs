//! `cargo run -p wechat-sandbox`: the sandbox on its own, configured from the
//! environment (see `SandboxConfig::from_env`).

use std::process::ExitCode;

use shared::config::{Env, LogFormat, exit_on_error};
use shared::telemetry::init_tracing;
use shared::traces::TraceExport;
use wechat_sandbox::{Sandbox, SandboxConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let env = exit_on_error(Env::from_process());
    let traces = exit_on_error(TraceExport::from_env(&env, "wechat-sandbox"));
    let _traces = init_tracing(LogFormat::Pretty, traces.as_ref());
    let cfg = match SandboxConfig::from_env() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("wechat-sandbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sandbox = match Sandbox::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wechat-sandbox: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let state = sandbox.state();
    println!("wechat-sandbox on {}", sandbox.base_url());
    if let Some(tls) = sandbox.tls_base_url() {
        println!("  /secapi/ (client certificate required) on {tls}");
    }
    for app in state.apps() {
        println!("  app {:?} {}", app.kind, app.appid);
    }
    for m in state.merchants() {
        println!("  merchant {} (apps {})", m.mch_id, m.appids.join(", "));
    }
    let v3 = state.v3_keys();
    println!(
        "  APIv3: merchant certificate {}, platform certificate {}, public key {}",
        v3.merchant_serial_no, v3.platform_serial_no, v3.public_key_id
    );
    for (var, value) in sandbox.service_env() {
        // The key files' paths; the APIv3 key itself stays out of the output.
        if var.ends_with("_PEM") {
            println!("  {var}={value}");
        }
    }
    println!("test users:");
    for u in state.users() {
        let openids: Vec<String> = state
            .apps()
            .iter()
            .map(|a| format!("{}={}", a.appid, state.openid(&a.appid, &u.key)))
            .collect();
        println!("  {} {} ({})", u.key, u.nickname, openids.join(", "));
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("wechat-sandbox: cannot wait for Ctrl-C: {e}");
    }
    tracing::info!("stopping");
    sandbox.stop().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
