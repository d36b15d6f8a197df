use jssdk_service::{Application, JssdkConfig};
use shared::config::{Env, exit_on_error};
use shared::telemetry::init_tracing;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let env = exit_on_error(Env::from_process());
    let config = exit_on_error(JssdkConfig::from_env(&env));
    init_tracing(config.common.log_format);
    let app = Application::build(config).await.map_err(|e| {
        eprintln!("startup error: {e}");
        std::io::Error::other(e.to_string())
    })?;
    tracing::info!(port = app.port(), "jssdk-service listening");
    app.run_until_stopped().await
}
