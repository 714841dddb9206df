//! Test harness: runs ferry's handlers, and the deployed state machines, against the local AWS
//! (crate `ferry-local` in `local/`: the emulator's handle and the seeder, re-exported here).

pub mod state_machine;
pub mod world;

pub use ferry_local::{local_aws, seed, LocalAws, Seeder};
pub use state_machine::{Execution, LocalStepFunctions};

use ferry_core::flow::{Flow, Pause};
pub use ferry_core::handlers::{run_step, Step};
use ferry_core::{Deps, FerryError, Replication};
use serde_json::Value;

/// Reports one row's figure: the line `FIGURE <row>: <figure>` on stderr and, when
/// `FERRY_FIGURES_DIR` is set (scripts/test sets it), appended to `$FERRY_FIGURES_DIR/<row>.txt`
/// (the row's name with every character other than a letter or digit as `-`), so the figures of
/// every test binary can be shown together at the end of a run.
pub fn figure(row: &str, figure: &str) {
    let line = format!("FIGURE {row}: {figure}");
    eprintln!("{line}");
    let Some(dir) = std::env::var_os("FERRY_FIGURES_DIR").filter(|dir| !dir.is_empty()) else {
        return;
    };
    let file: String = row
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let path = std::path::Path::new(&dir).join(format!("{file}.txt"));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut out| {
            use std::io::Write;
            writeln!(out, "{line}")
        });
    if let Err(error) = written {
        eprintln!(
            "FERRY_FIGURES_DIR: cannot write {}: {error}",
            path.display()
        );
    }
}

/// Lets time pass on the local AWS: moves its clock instead of waiting.
pub struct Advance<'a>(pub &'a LocalAws);

#[async_trait::async_trait]
impl Pause for Advance<'_> {
    async fn pause(&self, seconds: f64) {
        self.0.advance(seconds);
    }
}

/// Follows a started copy the way the state machine does (`ferry_core::flow`), moving the local
/// AWS's clock by each wait. Returns the settled document (completed or failed) and its checks.
pub async fn poll_until_settled(
    aws: &LocalAws,
    deps: &Deps,
    document: Value,
) -> Result<(Value, u32), FerryError> {
    let flow = Flow {
        deps,
        pause: &Advance(aws),
        observe: &(),
    };
    let settled = flow.follow_copy(Replication::from_json(document)?).await?;
    let checks = settled.copy_state()?.checks;
    Ok((json(&settled), checks))
}

/// One replication in-process through `ferry_core::flow`, as one replication execution of the
/// state machine runs it, on the local AWS's clock.
pub async fn replicate_in_process(
    aws: &LocalAws,
    deps: &Deps,
    request: &Value,
) -> Result<Value, FerryError> {
    let flow = Flow {
        deps,
        pause: &Advance(aws),
        observe: &(),
    };
    let request = Replication::from_json(request.clone())?;
    flow.replicate(request).await.map(|done| json(&done))
}

fn json(document: &Replication) -> Value {
    serde_json::to_value(document).expect("a document serializes")
}
