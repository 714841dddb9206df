//! enable-fsr: Fast Snapshot Restore on every destination snapshot in the requested zones, or
//! its disable operation. A full quota is recorded as skipped unless the request says to fail.

use serde::Deserialize;
use tracing::info;

use crate::deps::Deps;
use crate::document::{FsrEvidence, FsrOutcome, FsrZoneState, Replication};
use crate::error::FerryError;
use crate::handlers::{aws_failure, check_zones};
use crate::ports::{FsrChange, FsrState};

const ACTIVE_STATES: [&str; 3] = ["enabling", "optimizing", "enabled"];

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    Enable,
    Disable,
}

/// The input: the document itself (enable), or `{"operation": "disable", "replication": {…}}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Command {
    Explicit {
        operation: Operation,
        replication: serde_json::Value,
    },
    Document(serde_json::Value),
}

pub async fn handle(deps: &Deps, payload: serde_json::Value) -> Result<Replication, FerryError> {
    let (operation, payload) = match serde_json::from_value(payload)
        .map_err(|e| FerryError::invalid("operation", e.to_string()))?
    {
        Command::Explicit {
            operation,
            replication,
        } => (operation, replication),
        Command::Document(document) => (Operation::Enable, document),
    };
    let mut document = Replication::from_json(payload)?;
    let Some(options) = document.options.fsr.clone() else {
        document.evidence.fsr = Some(FsrEvidence {
            outcome: FsrOutcome::NotRequested,
            reason: None,
            states: vec![],
            disable_after_seconds: None,
        });
        return Ok(document);
    };
    let verification = document.evidence.verification.as_ref().ok_or_else(|| {
        FerryError::invalid(
            "evidence.verification",
            "missing: FSR is enabled only on verified replicas",
        )
    })?;
    let snapshot_ids: Vec<String> = verification
        .snapshots
        .iter()
        .map(|s| s.snapshot_id.clone())
        .collect();
    let region = document.destination.region.clone();
    let zones = options.availability_zones;
    check_zones(deps, &region, &zones).await?;

    let evidence = match operation {
        Operation::Disable => {
            let change = deps
                .fast_restore
                .disable(&region, &snapshot_ids, &zones)
                .await
                .map_err(|e| aws_failure("ec2:DisableFastSnapshotRestores", e))?;
            fail_on_errors("ec2:DisableFastSnapshotRestores", &change)?;
            FsrEvidence {
                outcome: FsrOutcome::Disabled,
                reason: None,
                states: zone_states(&change.succeeded),
                disable_after_seconds: None,
            }
        }
        Operation::Enable => {
            let quota_reason = quota_shortfall(deps, &region, &snapshot_ids).await?;
            let change = match quota_reason {
                Some(_) => None,
                None => Some(
                    deps.fast_restore
                        .enable(&region, &snapshot_ids, &zones)
                        .await
                        .map_err(|e| aws_failure("ec2:EnableFastSnapshotRestores", e))?,
                ),
            };
            let quota_reason = quota_reason.or_else(|| {
                change
                    .as_ref()?
                    .failed
                    .iter()
                    .find(|f| is_quota_code(&f.code))
                    .map(|f| format!("{}: {}", f.code, f.message))
            });
            match (quota_reason, change) {
                (Some(reason), _) if options.fail_when_quota_full => {
                    return Err(FerryError::FsrQuotaExceeded { region, reason })
                }
                (Some(reason), _) => FsrEvidence {
                    outcome: FsrOutcome::Skipped,
                    reason: Some(reason),
                    states: vec![],
                    disable_after_seconds: None,
                },
                (None, Some(change)) => {
                    fail_on_errors("ec2:EnableFastSnapshotRestores", &change)?;
                    FsrEvidence {
                        outcome: FsrOutcome::Requested,
                        reason: None,
                        states: zone_states(&change.succeeded),
                        disable_after_seconds: options
                            .disable_after_hours
                            .map(|hours| (hours * 3600.0).round() as u64),
                    }
                }
                (None, None) => FsrEvidence {
                    outcome: FsrOutcome::Skipped,
                    reason: None,
                    states: vec![],
                    disable_after_seconds: None,
                },
            }
        }
    };
    info!(region = %region, outcome = ?evidence.outcome, zones = evidence.states.len(), "fast snapshot restore");
    document.evidence.fsr = Some(evidence);
    Ok(document)
}

fn is_quota_code(code: &str) -> bool {
    code.contains("LimitExceeded") || code.contains("QuotaExceeded")
}

/// Why enabling would exceed the Region's quota of snapshots with FSR, if it would.
async fn quota_shortfall(
    deps: &Deps,
    region: &str,
    ours: &[String],
) -> Result<Option<String>, FerryError> {
    let entries = deps
        .fast_restore
        .describe(region, &[])
        .await
        .map_err(|e| aws_failure("ec2:DescribeFastSnapshotRestores", e))?;
    let mut others: Vec<&str> = entries
        .iter()
        .filter(|e| ACTIVE_STATES.contains(&e.state.as_str()) && !ours.contains(&e.snapshot_id))
        .map(|e| e.snapshot_id.as_str())
        .collect();
    others.sort_unstable();
    others.dedup();
    let quota = deps.config.fsr_quota_per_region;
    Ok((others.len() + ours.len() > quota)
        .then(|| format!("{} snapshots already use FSR in {region} and the quota is {quota}; {} more would exceed it", others.len(), ours.len())))
}

fn fail_on_errors(operation: &str, change: &FsrChange) -> Result<(), FerryError> {
    match change.failed.first() {
        Some(failure) => Err(FerryError::AwsError {
            operation: operation.into(),
            code: failure.code.clone(),
            message: format!(
                "{} in {}: {}",
                failure.snapshot_id, failure.availability_zone, failure.message
            ),
        }),
        None => Ok(()),
    }
}

fn zone_states(states: &[FsrState]) -> Vec<FsrZoneState> {
    states
        .iter()
        .map(|s| FsrZoneState {
            snapshot_id: s.snapshot_id.clone(),
            availability_zone: s.availability_zone.clone(),
            state: s.state.clone(),
        })
        .collect()
}
