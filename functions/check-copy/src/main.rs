//! The check-copy Lambda: reads a copy's state once and returns pending, completed or failed with the next wait; never sleeps.
//! Wiring only; the logic is `ferry_core::handlers::check_copy`.

use ferry_core::handlers::check_copy;
use ferry_core::{Config, Deps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ferry_core::init_tracing();
    let deps = Deps::load(Config::from_env()?).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        check_copy::handle(&deps, event.payload)
    }))
    .await
}
