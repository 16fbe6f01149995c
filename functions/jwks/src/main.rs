//! Key discovery (the JWK Set and the OpenID configuration) and the API's catch-all 404/405.
//! Serves the routes that `shared::routes::ROUTES` gives `Function::Jwks`.

use lambda_http::Error;
use shared::bootstrap;
use shared::routes::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    bootstrap::init_tracing();
    let discovery = bootstrap::discovery_from_env()?;
    bootstrap::serve_http(&discovery, const { Function::Jwks.routes() }).await
}
