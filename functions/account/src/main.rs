//! Deleting one's own account: the password (or a fresh sign-in for an account without one)
//! and, with TOTP on, a code (this function opens sealed TOTP secrets); a notice goes to the
//! address. Serves the routes that `shared::routes::ROUTES` gives `Function::Account`.

use lambda_http::Error;
use shared::bootstrap::{self, KeyAccess};
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::service_from_env(KeyAccess::None).await?;
    let service = bootstrap::with_mfa_keys_from_env(service).await?;
    let service = bootstrap::with_ses_mail(service).await?;
    bootstrap::serve_http(&service, const { Function::Account.routes() }).await
}
