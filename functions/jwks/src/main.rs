//! GET /.well-known/jwks.json and GET /.well-known/openid-configuration: the public keys.

use lambda_http::{Error, Request, run, service_fn};
use shared::bootstrap::{discovery_from_env, init_tracing};
use shared::handlers::discovery;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    init_tracing();
    let discovery = discovery_from_env()?;
    let discovery = &discovery;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(discovery::handle(discovery, request).await)
    }))
    .await
}
