use auth_service::AuthConfig;
use shared::config::{Env, exit_on_error};
use shared::startup::exit_on_startup_error;
use shared::telemetry::init_tracing;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let env = exit_on_error(Env::from_process());
    let config = exit_on_error(AuthConfig::from_env(&env));
    let _traces = init_tracing(config.common.log_format, config.common.traces.as_ref());
    tracing::info!(addr = %config.common.listen_addr, "auth-service starting");
    let app = exit_on_startup_error(auth_service::build(config).await);
    tracing::info!(port = app.port(), "auth-service listening");
    app.run_until_stopped().await
}
