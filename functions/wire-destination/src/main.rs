//! The wire-destination Lambda: points launch templates and an SSM parameter in the
//! destination Region at the verified replica AMI.
//! Wiring only; the logic is `ferry_core::handlers::wire_destination`.

use ferry_core::handlers::wire_destination;
use ferry_core::{Config, Deps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ferry_core::init_tracing();
    let deps = Deps::load(Config::from_env()?).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        wire_destination::handle(&deps, event.payload)
    }))
    .await
}
