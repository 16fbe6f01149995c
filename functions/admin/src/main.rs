//! The admin API: users a page at a time, one user, its activity and roles, its sessions and
//! ending them, and deleting it (with a notice to its address). The authorizer admits only tokens holding the `admin` role; the function checks
//! it again. Serves the routes that `shared::routes::ROUTES` gives `Function::Admin`.

use lambda_http::Error;
use shared::bootstrap::{self, KeyAccess};
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let service = bootstrap::service_from_env(KeyAccess::None).await?;
    let service = bootstrap::with_ses_mail(service).await?;
    bootstrap::serve_http(&service, const { Function::Admin.routes() }).await
}
