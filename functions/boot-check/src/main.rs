//! The boot-check Lambda: launches one instance from the verified replica AMI, looks at it once
//! per invocation (the state machine waits between looks), and terminates it on every verdict;
//! also `end` (after a failure) and `sweep` (the scheduled step).
//! Wiring only; the logic is `ferry_core::handlers::boot_check`.

use ferry_core::handlers::boot_check;
use ferry_core::{Config, Deps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ferry_core::init_tracing();
    let deps = Deps::load(Config::from_env()?).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        boot_check::handle(&deps, event.payload)
    }))
    .await
}
