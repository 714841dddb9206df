//! The verify-encryption Lambda: fail-closed proof that every destination snapshot is complete and encrypted under exactly the resolved destination key.
//! Wiring only; the logic is `ferry_core::handlers::verify_encryption`.

use ferry_core::handlers::verify_encryption;
use ferry_core::{Config, Deps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ferry_core::init_tracing();
    let deps = Deps::load(Config::from_env()?).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        verify_encryption::handle(&deps, event.payload)
    }))
    .await
}
