//! The signed-in user.
//! Serves the routes that `shared::routes::ROUTES` gives `Function::Me`.

use lambda_http::Error;
use shared::bootstrap::{self, KeyAccess};
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::service_from_env(KeyAccess::None).await?;
    bootstrap::serve_http(&service, const { Function::Me.routes() }).await
}
