//! Test harness: starts the local AWS on a free loopback port, seeds it through the real SDK
//! clients, and runs ferry's handlers against it.

pub mod local_aws;
pub mod seed;
pub mod state_machine;

pub use local_aws::LocalAws;
pub use seed::Seeder;
pub use state_machine::{Execution, LocalStepFunctions};

use ferry_core::handlers::{check_copy, enable_fsr, start_copy, tag_lineage, verify_encryption};
use ferry_core::{Deps, FerryError};
use serde_json::Value;

/// The five functions, in the order the state machine runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    StartCopy,
    CheckCopy,
    VerifyEncryption,
    TagLineage,
    EnableFsr,
}

/// Runs one function's handler on a JSON document, as its Lambda would, and returns its JSON output.
pub async fn run_step(step: Step, deps: &Deps, input: &Value) -> Result<Value, FerryError> {
    let input = input.clone();
    let output = match step {
        Step::StartCopy => start_copy::handle(deps, input).await?,
        Step::CheckCopy => check_copy::handle(deps, input).await?,
        Step::VerifyEncryption => verify_encryption::handle(deps, input).await?,
        Step::TagLineage => tag_lineage::handle(deps, input).await?,
        Step::EnableFsr => enable_fsr::handle(deps, input).await?,
    };
    Ok(serde_json::to_value(output).expect("documents serialize"))
}

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
