//! enable-fsr: Fast Snapshot Restore on every destination snapshot in the requested zones, or
//! its disable operation. A full quota is recorded as skipped unless the request says to fail.
//! With `disableAfterHours` the snapshots are tagged `ferry:fsr-disable-at`, and the scheduled
//! `disableDue` operation disables what is due: no replication waits a day to turn FSR off.

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::deps::Deps;
use crate::document::{FsrEvidence, FsrOutcome, FsrZoneState, Replication};
use crate::error::FerryError;
use crate::handlers::{aws_failure, check_zones};
use crate::ports::{FsrChange, FsrState, Tag};
use crate::rules::fsr::{self, is_active, is_quota_code, quota_shortfall};
use crate::rules::lineage::{self, rfc3339};

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    Enable,
    Disable,
    DisableDue,
}

/// The input: the document itself (enable), `{"operation": "disable", "replication": {…}}`,
/// or `{"operation": "disableDue", "regions": [...]}` from the scheduled step.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Command {
    Due {
        operation: Operation,
        regions: Vec<String>,
    },
    Explicit {
        operation: Operation,
        replication: serde_json::Value,
    },
    Document(serde_json::Value),
}

/// What enable-fsr answers: the enriched document, or what the scheduled step disabled.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FsrOutput {
    Document(Box<Replication>),
    Due(DueReport),
}

/// The scheduled step's answer (bounded by the FSR quota: 5 snapshots per Region by default).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DueReport {
    pub disabled: Vec<FsrZoneState>,
    pub snapshots: usize,
}

pub async fn handle(deps: &Deps, payload: serde_json::Value) -> Result<FsrOutput, FerryError> {
    let (operation, payload) = match serde_json::from_value(payload)
        .map_err(|e| FerryError::invalid("operation", e.to_string()))?
    {
        Command::Due {
            operation: Operation::DisableDue,
            regions,
        } => {
            return disable_due(deps, &regions).await.map(FsrOutput::Due);
        }
        Command::Due { .. } => {
            return Err(FerryError::invalid(
                "operation",
                "regions go with \"disableDue\"; enable and disable take a replication",
            ))
        }
        Command::Explicit {
            operation,
            replication,
        } => (operation, replication),
        Command::Document(document) => (Operation::Enable, document),
    };
    change(deps, operation, payload)
        .await
        .map(|document| FsrOutput::Document(Box::new(document)))
}

async fn change(
    deps: &Deps,
    operation: Operation,
    payload: serde_json::Value,
) -> Result<Replication, FerryError> {
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
        Operation::DisableDue => {
            return Err(FerryError::invalid(
                "operation",
                "disableDue takes {\"regions\": [...]}, not a replication",
            ))
        }
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
            let quota_reason = quota_reason(deps, &region, &snapshot_ids).await?;
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
            if let (Some(reason), Some(change)) = (&quota_reason, &change) {
                roll_back(deps, &region, change, reason).await?;
            }
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
                    if let Some(hours) = options.disable_after_hours {
                        let due = fsr::disable_at_tag(deps.clock.now(), hours);
                        deps.tagging
                            .create_tags(&region, &snapshot_ids, std::slice::from_ref(&due))
                            .await
                            .map_err(|e| aws_failure("ec2:CreateTags", e))?;
                    }
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

/// After AWS refused part of an enable for its quota: disables the pairs it did enable, so that
/// a replication recorded as `skipped` (or failed with `FsrQuotaExceeded`) leaves no FSR on. FSR
/// bills per snapshot and zone-hour; nothing else would ever turn these off, as they carry no
/// `ferry:fsr-disable-at`.
async fn roll_back(
    deps: &Deps,
    region: &str,
    change: &FsrChange,
    reason: &str,
) -> Result<(), FerryError> {
    for enabled in &change.succeeded {
        deps.fast_restore
            .disable(
                region,
                std::slice::from_ref(&enabled.snapshot_id),
                std::slice::from_ref(&enabled.availability_zone),
            )
            .await
            .map_err(|e| aws_failure("ec2:DisableFastSnapshotRestores", e))?;
    }
    if !change.succeeded.is_empty() {
        info!(
            region,
            pairs = change.succeeded.len(),
            reason,
            "fast snapshot restore rolled back: the quota refused part of it"
        );
    }
    Ok(())
}

/// Why enabling would exceed the Region's quota of snapshots with FSR, if it would.
async fn quota_reason(
    deps: &Deps,
    region: &str,
    ours: &[String],
) -> Result<Option<String>, FerryError> {
    let entries = deps
        .fast_restore
        .describe(region, &[])
        .await
        .map_err(|e| aws_failure("ec2:DescribeFastSnapshotRestores", e))?;
    Ok(quota_shortfall(
        region,
        &entries,
        ours,
        deps.config.fsr_quota_per_region,
    ))
}

/// Disables FSR on every ferry replica in `regions` whose `ferry:fsr-disable-at` has come,
/// in the zones where it is on, and marks it `ferry:fsr-disabled-at`.
async fn disable_due(deps: &Deps, regions: &[String]) -> Result<DueReport, FerryError> {
    let now = deps.clock.now();
    let mut report = DueReport::default();
    for region in regions {
        let tagged = deps
            .snapshots
            .find_snapshots_tagged(
                region,
                &[
                    Tag::new(lineage::MANAGED_BY, "ferry"),
                    Tag::new(fsr::DISABLE_AT, ""),
                ],
            )
            .await
            .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
        let due: Vec<String> = tagged
            .iter()
            .filter(|s| fsr::is_due(&s.tags, now))
            .map(|s| s.snapshot_id.clone())
            .collect();
        if due.is_empty() {
            continue;
        }
        let states = deps
            .fast_restore
            .describe(region, &due)
            .await
            .map_err(|e| aws_failure("ec2:DescribeFastSnapshotRestores", e))?;
        let mut zones: Vec<String> = states
            .iter()
            .filter(|s| is_active(&s.state))
            .map(|s| s.availability_zone.clone())
            .collect();
        zones.sort_unstable();
        zones.dedup();
        if !zones.is_empty() {
            let change = deps
                .fast_restore
                .disable(region, &due, &zones)
                .await
                .map_err(|e| aws_failure("ec2:DisableFastSnapshotRestores", e))?;
            fail_on_errors("ec2:DisableFastSnapshotRestores", &change)?;
            report.disabled.extend(zone_states(&change.succeeded));
        }
        deps.tagging
            .create_tags(region, &due, &[Tag::new(fsr::DISABLED_AT, rfc3339(now))])
            .await
            .map_err(|e| aws_failure("ec2:CreateTags", e))?;
        info!(region = %region, snapshots = due.len(), zones = zones.len(), "fast snapshot restore disabled as due");
        report.snapshots += due.len();
    }
    Ok(report)
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
