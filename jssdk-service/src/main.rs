use jssdk_service::JssdkConfig;
use shared::config::{Env, exit_on_error};
use shared::startup::exit_on_startup_error;
use shared::telemetry::init_tracing;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let env = exit_on_error(Env::from_process());
    let config = exit_on_error(JssdkConfig::from_env(&env));
    let _traces = init_tracing(config.common.log_format, config.common.traces.as_ref());
    let app = exit_on_startup_error(jssdk_service::build(config).await);
    tracing::info!(port = app.port(), "jssdk-service listening");
    app.run_until_stopped().await
}
