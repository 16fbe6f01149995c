//! Sign-in with email and password. It mails after the answer: a new-device notice (with
//! `NOTIFY_NEW_DEVICE`), and the history entry of an address's lockout goes then too.
//! Serves the routes that `shared::routes::ROUTES` gives `Function::Login`.

use lambda_http::Error;
use shared::bootstrap;
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::signing_service_from_env().await?;
    let service = bootstrap::with_ses_mail(service).await?;
    bootstrap::serve_http(&service, const { Function::Login.routes() }).await
}
