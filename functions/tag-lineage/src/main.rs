//! The tag-lineage Lambda: tags the replica and its snapshots with the full lineage and publishes the evidence to EventBridge.
//! Wiring only; the logic is `ferry_core::handlers::tag_lineage`.

use ferry_core::handlers::tag_lineage;
use ferry_core::{Config, Deps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ferry_core::init_tracing();
    let deps = Deps::load(Config::from_env()?).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        tag_lineage::handle(&deps, event.payload)
    }))
    .await
}
