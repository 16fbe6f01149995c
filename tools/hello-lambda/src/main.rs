//! The least a Rust Lambda function does: start the runtime and answer. `scripts/cold-start`
//! measures every real function beside it.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(json!({"hello": event.context.request_id}))
    }))
    .await
}
