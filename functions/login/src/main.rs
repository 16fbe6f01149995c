//! POST /auth/login: check email and password, start a session.

use lambda_http::{Error, Request, run, service_fn};
use shared::bootstrap::{init_tracing, signing_service_from_env};
use shared::handlers;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    init_tracing();
    let service = signing_service_from_env().await?;
    let service = &*service;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(handlers::login(service, request).await)
    }))
    .await
}
