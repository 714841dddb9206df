//! The enable-fsr Lambda: enables (or disables) Fast Snapshot Restore on the verified replica's snapshots.
//! Wiring only; the logic is `ferry_core::handlers::enable_fsr`.

use ferry_core::handlers::enable_fsr;
use ferry_core::{Config, Deps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ferry_core::init_tracing();
    let deps = Deps::load(Config::from_env()?).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        enable_fsr::handle(&deps, event.payload)
    }))
    .await
}
