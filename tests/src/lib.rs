//! Test harness: runs ferry's handlers, and the deployed state machines, against the local AWS
//! (crate `ferry-local` in `local/`: the emulator's handle and the seeder, re-exported here).

pub mod state_machine;
pub mod world;

pub use ferry_local::{local_aws, seed, LocalAws, Seeder};
pub use state_machine::{Execution, LocalStepFunctions};

pub use ferry_core::handlers::{run_step, Step};
use ferry_core::{Deps, FerryError};
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

/// Polls check-copy the way the state machine does, moving the emulator's clock by each
/// `nextCheckSeconds` instead of waiting. Returns the final document and the number of checks.
pub async fn poll_until_settled(
    aws: &LocalAws,
    deps: &Deps,
    mut document: Value,
) -> Result<(Value, u32), FerryError> {
    for checks in 1..=200 {
        document = run_step(Step::CheckCopy, deps, &document).await?;
        if document["copy"]["status"] != "pending" {
            return Ok((document, checks));
        }
        aws.advance(
            document["copy"]["nextCheckSeconds"]
                .as_f64()
                .unwrap_or(30.0),
        );
    }
    panic!("the copy never settled: {document}");
}

/// One replication through the five steps in-process, as one Map iteration of the state machine
/// runs them: start-copy → check-copy (polled) → verify-encryption → tag-lineage → enable-fsr.
pub async fn replicate_in_process(
    aws: &LocalAws,
    deps: &Deps,
    request: &Value,
) -> Result<Value, FerryError> {
    let started = run_step(Step::StartCopy, deps, request).await?;
    let (copied, _) = poll_until_settled(aws, deps, started).await?;
    assert_eq!(copied["copy"]["status"], "completed", "{copied}");
    let verified = run_step(Step::VerifyEncryption, deps, &copied).await?;
    let tagged = run_step(Step::TagLineage, deps, &verified).await?;
    run_step(Step::EnableFsr, deps, &tagged).await
}
