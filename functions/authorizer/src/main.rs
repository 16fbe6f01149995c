//! The API Gateway Lambda authorizer: verifies the bearer token, then its session.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use shared::bootstrap::{KeyAccess, init_tracing, service_from_env};
use shared::handlers::authorizer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    init_tracing();
    let service = service_from_env(KeyAccess::Verify).await?;
    let service = &*service;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        authorizer::handle(service, event.payload).await
    }))
    .await
}
