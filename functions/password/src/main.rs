//! POST /auth/password: change the password, end every other session.

use lambda_http::{Error, Request, run, service_fn};
use shared::bootstrap::{KeyAccess, init_tracing, service_from_env};
use shared::handlers;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    init_tracing();
    let service = service_from_env(KeyAccess::None).await?;
    let service = &*service;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(handlers::change_password(service, request).await)
    }))
    .await
}
