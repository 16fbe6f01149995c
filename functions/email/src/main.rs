//! The signed-in user's address: a new verification link, an address change (which, with TOTP
//! on, checks a code: this function opens sealed TOTP secrets).
//! Serves the routes that `shared::routes::ROUTES` gives `Function::Email`.

use lambda_http::Error;
use shared::bootstrap::{self, KeyAccess};
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::service_from_env(KeyAccess::None).await?;
    let service = bootstrap::with_mfa_keys_from_env(service).await?;
    let service = bootstrap::with_ses_mail(service).await?;
    bootstrap::serve_http(&service, const { Function::Email.routes() }).await
}
