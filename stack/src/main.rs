//! `cargo run --release -p stack`: the whole system on one port.

use shared::config::{Env, LogFormat, exit_on_error};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let env = exit_on_error(Env::from_process());
    let format = if env.get("LOG_FORMAT") == Some("json") {
        LogFormat::Json
    } else {
        LogFormat::Pretty
    };
    let traces = exit_on_error(shared::traces::TraceExport::from_env(&env, "wxpay-stack"));
    let _traces = shared::telemetry::init_tracing(format, traces.as_ref());

    // pay-service serves the operator console when an admin token is set.
    let console = ["ADMIN_TOKEN", "ADMIN_TOKENS"]
        .into_iter()
        .any(|var| env.get(var).is_some_and(|t| !t.is_empty()));
    let stack = match stack::Stack::start(env).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stack: {e:#}");
            std::process::exit(2);
        }
    };
    println!();
    println!("  wxpay is running: open {}", stack.public_url());
    println!(
        "  API reference:    {}{}",
        stack.public_url().trim_end_matches('/'),
        stack::docs::DOCS_PATH
    );
    if console {
        println!(
            "  Operator console: {}/admin/  (sign in with the admin token)",
            stack.public_url().trim_end_matches('/')
        );
    }
    if let Some(sandbox) = stack.sandbox() {
        println!(
            "  WeChat sandbox:   {}  (test users below; Ctrl-C stops both)",
            sandbox.base_url()
        );
        for user in sandbox.state().users() {
            let place = format!("{} {}", user.province, user.city);
            match place.trim() {
                "" => println!("    {:<4} {}", user.key, user.nickname),
                place => println!("    {:<4} {}  ({place})", user.key, user.nickname),
            }
        }
    } else {
        println!("  WXPAY_SANDBOX=off: talking to the configured WeChat bases");
    }
    println!();
    stack.run_until_stopped().await?;
    Ok(())
}
