//! What needs no store: the published keys (the JWK Set and the OpenID configuration), the
//! pages emailed links open, and the API's catch-all 404/405.
//! Serves the routes that `shared::routes::ROUTES` gives `Function::Web`.

use lambda_http::Error;
use shared::bootstrap;
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let published = bootstrap::published_from_env()?;
    bootstrap::serve_http(&published, const { Function::Web.routes() }).await
}
