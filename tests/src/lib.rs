//! Test harness: starts the local AWS on a free loopback port, seeds it through the real SDK
//! clients, and runs ferry's handlers against it.

pub mod local_aws;
pub mod seed;
pub mod state_machine;

pub use local_aws::LocalAws;
pub use seed::Seeder;
pub use state_machine::{Execution, LocalStepFunctions};

pub use ferry_core::handlers::{run_step, Step};
use ferry_core::{Deps, FerryError};
use serde_json::Value;

/// Polls check-copy the way the state machine does, moving the emulator's clock by each
/// `nextCheckSeconds` instead of waiting. Returns the final document and the number of checks.
pub async fn poll_until_settled(aws: &LocalAws, deps: &Deps, mut document: Value) -> Result<(Value, u32), FerryError> {
    for checks in 1..=200 {
        document = run_step(Step::CheckCopy, deps, &document).await?;
        if document["copy"]["status"] != "pending" {
            return Ok((document, checks));
        }
        aws.advance(document["copy"]["nextCheckSeconds"].as_f64().unwrap_or(30.0));
    }
    panic!("the copy never settled: {document}");
}
