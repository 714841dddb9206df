//! The plan-replication Lambda: turns a request, a trigger event or a DR-sweep schedule into
//! per-Region waves of replications, applying the policy. Wiring only; the logic is
//! `ferry_core::handlers::plan`.

use ferry_core::handlers::plan;
use ferry_core::{Config, Deps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ferry_core::init_tracing();
    let deps = Deps::load(Config::from_env()?).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        plan::handle(&deps, event.payload)
    }))
    .await
}
