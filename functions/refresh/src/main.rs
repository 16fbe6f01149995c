//! Refresh rotation: spend a refresh token for a new pair.
//! Serves the routes that `shared::routes::ROUTES` gives `Function::Refresh`.

use lambda_http::Error;
use shared::bootstrap;
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::signing_service_from_env().await?;
    bootstrap::serve_http(&service, const { Function::Refresh.routes() }).await
}
