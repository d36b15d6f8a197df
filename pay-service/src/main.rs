use pay_service::PayConfig;
use shared::config::{Env, exit_on_error};
use shared::telemetry::init_tracing;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = exit_on_error(Env::from_process());
    let config = exit_on_error(PayConfig::from_env(&env));
    let traces = init_tracing(config.common.log_format, config.common.traces.as_ref());
    if args.first().map(String::as_str) == Some("reconcile") {
        let status = reconcile(config, &args[1..]).await;
        drop(traces); // exit skips destructors: send the run's spans first
        std::process::exit(status);
    }
    pay_service::build(config)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}

/// `pay-service reconcile --date YYYY-MM-DD`: downloads and compares that
/// Beijing day's WeChat bill now, stores the result (replacing the day's),
/// prints it as a table. Exit status 0 when the bill and the orders agree,
/// 1 when there are discrepancies, 2 when it could not be done.
async fn reconcile(config: PayConfig, args: &[String]) -> i32 {
    let date = match args {
        [flag, d] if flag == "--date" => Some(d.as_str()),
        [one] => one.strip_prefix("--date="),
        _ => None,
    };
    let Some(date) = date else {
        eprintln!("usage: pay-service reconcile --date YYYY-MM-DD");
        return 2;
    };
    let Ok(date) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
        eprintln!("--date must be YYYY-MM-DD, got {date:?}");
        return 2;
    };
    let state = match pay_service::PayState::build(config, None).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pay-service reconcile: {e}");
            return 2;
        }
    };
    match pay_service::reconcile_day(&state, date).await {
        Ok(view) => {
            print!("{}", pay_service::reconciliation_table(&view));
            i32::from(!view.discrepancies.is_empty())
        }
        Err(e) => {
            eprintln!("pay-service reconcile --date {date}: {e}");
            2
        }
    }
}
