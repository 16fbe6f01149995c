//! Two-factor sign-in: TOTP enrolment, turning it off, recovery codes, and the second step of a
//! sign-in (which signs tokens). Mails the user after five wrong codes in a row. Serves the routes that `shared::routes::ROUTES` gives
//! `Function::Mfa`.

use lambda_http::Error;
use shared::bootstrap;
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::signing_service_from_env().await?;
    let service = bootstrap::with_mfa_keys_from_env(service).await?;
    let service = bootstrap::with_relying_party(service)?;
    let service = bootstrap::with_ses_mail(service).await?;
    bootstrap::serve_http(&service, const { Function::Mfa.routes() }).await
}
