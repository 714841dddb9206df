//! The start-copy Lambda: preflight (key, zones, source), then one idempotent copy re-encrypted under the destination key and tagged at creation.
//! Wiring only; the logic is `ferry_core::handlers::start_copy`.

use ferry_core::handlers::start_copy;
use ferry_core::{Config, Deps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ferry_core::init_tracing();
    let deps = Deps::load(Config::from_env()?).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        start_copy::handle(&deps, event.payload)
    }))
    .await
}
