//! The retire-replicas Lambda: the scheduled step's retention. Per destination Region that asks
//! for it, deprecates the replicas of an image family beyond what the policy keeps and, after
//! the grace period, deregisters them with their snapshots, publishing `Replica Retired`.
//! Wiring only; the logic is `ferry_core::handlers::retire`.

use ferry_core::handlers::retire;
use ferry_core::{Config, Deps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ferry_core::init_tracing();
    let deps = Deps::load(Config::from_env()?).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        retire::handle(&deps, event.payload)
    }))
    .await
}
