//! Logout: revoke the current session, or all of them.
//! Serves the routes that `shared::routes::ROUTES` gives `Function::Logout`.

use lambda_http::Error;
use shared::bootstrap::{self, KeyAccess};
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::service_from_env(KeyAccess::None).await?;
    bootstrap::serve_http(&service, const { Function::Logout.routes() }).await
}
