//! Registration: create a user, then sign it in.
//! Serves the routes that `shared::routes::ROUTES` gives `Function::Register`.

use lambda_http::Error;
use shared::bootstrap;
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::signing_service_from_env().await?;
    let service = bootstrap::with_ses_mail(service).await?;
    bootstrap::serve_http(&service, const { Function::Register.routes() }).await
}
