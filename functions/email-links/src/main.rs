//! The public routes emailed links lead to: verify an address, reset a password (and ask for a reset).
//! Serves the routes that `shared::routes::ROUTES` gives `Function::EmailLinks`.

use lambda_http::Error;
use shared::bootstrap::{self, KeyAccess};
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::service_from_env(KeyAccess::None).await?;
    let service = bootstrap::with_ses_mail(service).await?;
    bootstrap::serve_http(&service, const { Function::EmailLinks.routes() }).await
}
