//! Passkeys (WebAuthn): adding one (a fresh factor first), listing, renaming and removing them,
//! and signing in with one (which signs tokens). Mails the user when a passkey is added and
//! when a cloned key is refused. Serves the routes that `shared::routes::ROUTES` gives
//! `Function::Passkeys`.

use lambda_http::Error;
use shared::bootstrap;
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::signing_service_from_env().await?;
    let service = bootstrap::with_relying_party(service)?;
    let service = bootstrap::with_ses_mail(service).await?;
    bootstrap::serve_http(&service, const { Function::Passkeys.routes() }).await
}
