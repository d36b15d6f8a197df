use pay_service::{Application, PayConfig};
use shared::config::{Env, exit_on_error};
use shared::telemetry::init_tracing;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let env = exit_on_error(Env::from_process());
    let config = exit_on_error(PayConfig::from_env(&env));
    init_tracing(config.common.log_format);
    Application::build(config)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
