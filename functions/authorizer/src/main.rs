//! The API Gateway Lambda authorizer: verifies the bearer token, then its session, for every
//! route `shared::routes::ROUTES` marks protected.

use lambda_runtime::Error;
use shared::bootstrap::{self, KeyAccess};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::service_from_env(KeyAccess::Verify).await?;
    bootstrap::serve_authorizer(&service).await
}
