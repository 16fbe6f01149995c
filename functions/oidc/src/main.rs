//! Signing in with an OpenID provider (Google, Microsoft, Apple, any issuer), linking one to
//! an account, listing and unlinking them; it signs tokens, and it alone reads the providers'
//! client secrets. Mails the user when an identity is linked. Serves the routes that
//! `shared::routes::ROUTES` gives `Function::Oidc`.

use lambda_http::Error;
use shared::bootstrap;
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::signing_service_from_env().await?;
    let service = bootstrap::with_oidc_from_env(service).await?;
    let service = bootstrap::with_ses_mail(service).await?;
    bootstrap::serve_http(&service, const { Function::Oidc.routes() }).await
}
