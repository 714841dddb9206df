//! plan-replication: turns a console request, a trigger event or a DR-sweep schedule into
//! per-Region waves of replication requests. It applies the policy: sources are selected by tag,
//! copies ferry made are never replicated again (no loops), and a wave never holds more
//! snapshot copies than the Region's in-flight quota.

use std::collections::BTreeSet;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::info;

use crate::deps::Deps;
use crate::document::{Destination, Options, Replication, Source, SourceKind};
use crate::error::FerryError;
use crate::handlers::aws_failure;
use crate::policy::Policy;
use crate::ports::{SnapshotInfo, Tag};
use crate::rules::lineage;
use crate::rules::request::validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    Request,
    Event,
    Sweep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub trigger: Trigger,
    pub replication_count: usize,
    pub regions: Vec<RegionPlan>,
    pub skipped: Vec<Skipped>,
    /// Sources the sweep found already replicated and verified, per destination Region.
    #[serde(default)]
    pub already_replicated: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionPlan {
    pub region: String,
    /// Run one after another; the replications within a wave run at once.
    pub waves: Vec<Wave>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wave {
    pub snapshot_copies: usize,
    pub replications: Vec<Replication>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub source: String,
    pub reason: String,
}

/// A selected source, with the number of snapshot copies replicating it takes.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    region: String,
    kind: SourceKind,
    id: String,
    snapshot_copies: usize,
}

/// The input is the trigger itself, or `{"trigger": …, "executionId": …}` as the state machine
/// sends it; the execution id is then recorded in every planned replication.
pub async fn handle(deps: &Deps, payload: Value) -> Result<Plan, FerryError> {
    match (
        payload.get("trigger"),
        payload.get("executionId").and_then(Value::as_str),
    ) {
        (Some(trigger), Some(execution_id)) => {
            let mut plan = plan_trigger(deps, trigger.clone()).await?;
            for replication in plan
                .regions
                .iter_mut()
                .flat_map(|r| r.waves.iter_mut())
                .flat_map(|w| w.replications.iter_mut())
            {
                replication.execution_id = Some(execution_id.to_string());
            }
            Ok(plan)
        }
        _ => plan_trigger(deps, payload).await,
    }
}

async fn plan_trigger(deps: &Deps, payload: Value) -> Result<Plan, FerryError> {
    if payload.get("detail-type").is_some() {
        let event: EventBridgeEvent<Value> = serde_json::from_value(payload)
            .map_err(|e| FerryError::invalid("event", format!("not an EventBridge event: {e}")))?;
        return plan_event(deps, &event).await;
    }
    if payload.get("source").is_some_and(Value::is_object) {
        let document = Replication::from_json(payload)?;
        validate(&document)?;
        let wave = Wave {
            snapshot_copies: 1,
            replications: vec![document.clone()],
        };
        let regions = vec![RegionPlan {
            region: document.destination.region,
            waves: vec![wave],
        }];
        return Ok(Plan {
            trigger: Trigger::Request,
            replication_count: 1,
            regions,
            skipped: vec![],
            already_replicated: 0,
        });
    }
    Err(FerryError::invalid(
        "input",
        "expected a replication request {source, destination}, an EventBridge event, or a schedule",
    ))
}

fn policy(deps: &Deps) -> Result<&Policy, FerryError> {
    deps.config.policy.as_ref().ok_or_else(|| {
        FerryError::invalid(
            "policy",
            "FERRY_POLICY is not configured: deploy a ReplicationPolicy",
        )
    })
}

async fn plan_event(deps: &Deps, event: &EventBridgeEvent<Value>) -> Result<Plan, FerryError> {
    let region = event.region.clone().unwrap_or_default();
    let detail = &event.detail;
    let sources: Vec<(SourceKind, String)> = match event.detail_type.as_str() {
        "Scheduled Event" => {
            let day = event
                .time
                .map(|t| t.timestamp())
                .unwrap_or_else(|| deps.clock.now() as i64)
                / 86_400;
            return sweep(deps, policy(deps)?, u32::try_from(day).ok()).await;
        }
        "EC2 AMI State Change" => match detail["State"].as_str() {
            Some("available") => vec![(
                SourceKind::Image,
                detail["ImageId"].as_str().unwrap_or_default().to_string(),
            )],
            other => {
                return Ok(skipped_plan(
                    detail["ImageId"].as_str().unwrap_or("?"),
                    format!("AMI state {other:?}, not available"),
                ))
            }
        },
        "EBS Snapshot Notification" | "EBS Multi-Volume Snapshots Completion Status" => {
            let (kind, result) = (
                detail["event"].as_str().unwrap_or_default(),
                detail["result"].as_str().unwrap_or_default(),
            );
            if !matches!(kind, "createSnapshot" | "createSnapshots") || result != "succeeded" {
                return Ok(skipped_plan(
                    detail["snapshot_id"].as_str().unwrap_or("?"),
                    format!("{kind} {result}: only created snapshots are replicated"),
                ));
            }
            let arns: Vec<&str> = match detail["snapshots"].as_array() {
                Some(many) => many
                    .iter()
                    .filter_map(|s| s["snapshot_id"].as_str())
                    .collect(),
                None => detail["snapshot_id"].as_str().into_iter().collect(),
            };
            arns.into_iter()
                .map(|arn| {
                    (
                        SourceKind::Snapshot,
                        arn.rsplit('/').next().unwrap_or(arn).to_string(),
                    )
                })
                .collect()
        }
        other => {
            return Err(FerryError::invalid(
                "detail-type",
                format!("{other:?} is not a trigger ferry handles"),
            ))
        }
    };
    let policy = policy(deps)?;
    let (mut candidates, mut skipped) = (vec![], vec![]);
    for (kind, id) in sources {
        match inspect(deps, policy, &region, kind, &id).await? {
            Ok(candidate) => candidates.push(candidate),
            Err(reason) => skipped.push(reason),
        }
    }
    Ok(build_plan(
        Trigger::Event,
        policy,
        candidates,
        skipped,
        0,
        &BTreeSet::new(),
        None,
    ))
}

fn skipped_plan(source: &str, reason: String) -> Plan {
    Plan {
        trigger: Trigger::Event,
        replication_count: 0,
        regions: vec![],
        skipped: vec![Skipped {
            source: source.into(),
            reason,
        }],
        already_replicated: 0,
    }
}

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

/// Applies the policy to one source: a candidate, a reason to skip it, or a named error.
async fn inspect(
    deps: &Deps,
    policy: &Policy,
    region: &str,
    kind: SourceKind,
    id: &str,
) -> Result<Result<Candidate, Skipped>, FerryError> {
    let skip = |reason: String| {
        Ok(Err(Skipped {
            source: format!("{region}/{id}"),
            reason,
        }))
    };
    let not_found = || FerryError::SourceNotFound {
        region: region.into(),
        id: id.into(),
    };
    let (tags, snapshot_ids) = match kind {
        SourceKind::Image => {
            let image = deps
                .images
                .describe_image(region, id)
                .await
                .map_err(|e| aws_failure("ec2:DescribeImages", e))?
                .ok_or_else(not_found)?;
            (
                image.tags,
                image
                    .snapshots
                    .into_iter()
                    .map(|s| s.snapshot_id)
                    .collect::<Vec<_>>(),
            )
        }
        SourceKind::Snapshot => {
            let found = deps
                .snapshots
                .describe_snapshots(region, &[id.to_string()])
                .await
                .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
            (
                found.into_iter().next().ok_or_else(not_found)?.tags,
                vec![id.to_string()],
            )
        }
    };
    if tag(&tags, lineage::MANAGED_BY) == Some("ferry") {
        let origin = tag(&tags, lineage::SOURCE_ID).unwrap_or("?");
        return skip(format!(
            "a copy ferry made (of {origin}): copies are never replicated again"
        ));
    }
    if !policy.selects(&tags) {
        return skip(format!(
            "not selected: it lacks the tag {}{}",
            policy.selection.tag_key,
            values(&policy.selection.tag_values)
        ));
    }
    if policy.require_encrypted_source {
        let snapshots = deps
            .snapshots
            .describe_snapshots(region, &snapshot_ids)
            .await
            .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
        let unencrypted: Vec<&str> = snapshots
            .iter()
            .filter(|s| !s.encrypted)
            .map(|s| s.snapshot_id.as_str())
            .collect();
        if !unencrypted.is_empty() {
            return Err(FerryError::SourceNotEncrypted {
                id: id.into(),
                snapshots: unencrypted.join(", "),
            });
        }
    }
    Ok(Ok(Candidate {
        region: region.into(),
        kind,
        id: id.into(),
        snapshot_copies: snapshot_ids.len().max(1),
    }))
}

fn values(accepted: &[String]) -> String {
    if accepted.is_empty() {
        String::new()
    } else {
        format!(" with a value in [{}]", accepted.join(", "))
    }
}

/// The DR sweep: every selected source in the policy's source Regions that lacks a verified
/// replica (judged by lineage tags) in a destination Region is planned for that Region only.
async fn sweep(deps: &Deps, policy: &Policy, attempt: Option<u32>) -> Result<Plan, FerryError> {
    let selection = [Tag::new(&policy.selection.tag_key, "")];
    let (mut candidates, mut skipped) = (vec![], vec![]);
    for region in &policy.source_regions {
        let images = deps
            .images
            .find_images_tagged(region, &selection)
            .await
            .map_err(|e| aws_failure("ec2:DescribeImages", e))?;
        let snapshots = deps
            .snapshots
            .find_snapshots_tagged(region, &selection)
            .await
            .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
        let found = images
            .iter()
            .filter(|image| image.state == "available")
            .map(|image| (SourceKind::Image, &image.image_id))
            .chain(
                snapshots
                    .iter()
                    .filter(|s| s.state == "completed")
                    .map(|s| (SourceKind::Snapshot, &s.snapshot_id)),
            );
        for (kind, id) in found {
            match inspect(deps, policy, region, kind, id).await {
                Ok(Ok(candidate)) => candidates.push(candidate),
                Ok(Err(skip)) => skipped.push(skip),
                Err(error @ FerryError::SourceNotEncrypted { .. }) => skipped.push(Skipped {
                    source: format!("{region}/{id}"),
                    reason: error.to_string(),
                }),
                Err(error) => return Err(error),
            }
        }
    }
    let mut verified = BTreeSet::new();
    for destination in &policy.destinations {
        let ours = [
            Tag::new(lineage::MANAGED_BY, "ferry"),
            Tag::new(lineage::VERIFIED_AT, ""),
        ];
        let images = deps
            .images
            .find_images_tagged(&destination.region, &ours)
            .await
            .map_err(|e| aws_failure("ec2:DescribeImages", e))?;
        let snapshots: Vec<SnapshotInfo> = deps
            .snapshots
            .find_snapshots_tagged(&destination.region, &ours)
            .await
            .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
        let replicas = images
            .iter()
            .filter(|i| i.state == "available")
            .map(|i| &i.tags)
            .chain(
                snapshots
                    .iter()
                    .filter(|s| s.state == "completed")
                    .map(|s| &s.tags),
            );
        for tags in replicas {
            if let (Some(region), Some(id)) = (
                tag(tags, lineage::SOURCE_REGION),
                tag(tags, lineage::SOURCE_ID),
            ) {
                verified.insert((
                    destination.region.clone(),
                    region.to_string(),
                    id.to_string(),
                ));
            }
        }
    }
    let already = candidates
        .iter()
        .map(|c| {
            policy
                .destinations
                .iter()
                .filter(|d| verified.contains(&(d.region.clone(), c.region.clone(), c.id.clone())))
                .count()
        })
        .sum();
    let plan = build_plan(
        Trigger::Sweep,
        policy,
        candidates,
        skipped,
        already,
        &verified,
        attempt,
    );
    info!(
        replications = plan.replication_count,
        already_replicated = plan.already_replicated,
        skipped = plan.skipped.len(),
        "sweep planned"
    );
    Ok(plan)
}

/// One request per (candidate, destination) not yet verified, packed into per-Region waves.
/// `attempt` is the sweep's day number: a copy that failed (and was cleaned up) gets a fresh
/// CopyImage token at the next day's sweep, while duplicate sweeps of one day still dedupe.
fn build_plan(
    trigger: Trigger,
    policy: &Policy,
    candidates: Vec<Candidate>,
    mut skipped: Vec<Skipped>,
    already: usize,
    verified: &BTreeSet<(String, String, String)>,
    attempt: Option<u32>,
) -> Plan {
    let mut regions: Vec<RegionPlan> = vec![];
    let mut count = 0;
    for destination in &policy.destinations {
        let mut waves: Vec<Wave> = vec![];
        for candidate in &candidates {
            if destination.region == candidate.region {
                skipped.push(Skipped {
                    source: format!("{}/{}", candidate.region, candidate.id),
                    reason: format!("{} is its own Region", destination.region),
                });
                continue;
            }
            if verified.contains(&(
                destination.region.clone(),
                candidate.region.clone(),
                candidate.id.clone(),
            )) {
                continue;
            }
            let request = Replication {
                replication_id: None,
                execution_id: None,
                source: Source {
                    region: candidate.region.clone(),
                    image_id: (candidate.kind == SourceKind::Image).then(|| candidate.id.clone()),
                    snapshot_id: (candidate.kind == SourceKind::Snapshot)
                        .then(|| candidate.id.clone()),
                },
                destination: Destination {
                    region: destination.region.clone(),
                    kms_key_id: destination.kms_key_id.clone(),
                },
                options: Options {
                    copy_source_tags: Some(policy.copy_source_tags),
                    completion_duration_minutes: destination.completion_duration_minutes,
                    batch: None,
                    fsr: destination.fsr.clone(),
                    attempt,
                },
                key: None,
                source_snapshots: vec![],
                copy: None,
                evidence: Default::default(),
            };
            let fits = waves.last().is_some_and(|w| {
                w.snapshot_copies + candidate.snapshot_copies
                    <= policy.max_copies_in_flight_per_region
            });
            if !fits {
                waves.push(Wave {
                    snapshot_copies: 0,
                    replications: vec![],
                });
            }
            if let Some(wave) = waves.last_mut() {
                wave.snapshot_copies += candidate.snapshot_copies;
                wave.replications.push(request);
                count += 1;
            }
        }
        if !waves.is_empty() {
            regions.push(RegionPlan {
                region: destination.region.clone(),
                waves,
            });
        }
    }
    Plan {
        trigger,
        replication_count: count,
        regions,
        skipped,
        already_replicated: already,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max: usize) -> Policy {
        Policy::parse(&format!(
            r#"{{"selection": {{"tagKey": "dr"}}, "maxCopiesInFlightPerRegion": {max},
               "destinations": [{{"region": "us-west-2", "kmsKeyId": "alias/a"}}, {{"region": "us-east-1", "kmsKeyId": "alias/b"}}]}}"#
        ))
        .unwrap()
    }

    fn candidate(id: &str, copies: usize) -> Candidate {
        Candidate {
            region: "us-east-1".into(),
            kind: SourceKind::Image,
            id: id.into(),
            snapshot_copies: copies,
        }
    }

    #[test]
    fn waves_never_hold_more_snapshot_copies_than_the_quota() {
        let candidates: Vec<_> = (0..10)
            .map(|i| candidate(&format!("ami-{i:08}"), 3))
            .collect();
        let plan = build_plan(
            Trigger::Sweep,
            &policy(7),
            candidates,
            vec![],
            0,
            &BTreeSet::new(),
            Some(20_000),
        );
        let waves = &plan.regions[0].waves;
        assert_eq!(plan.replication_count, 10);
        assert!(waves.iter().all(|w| w.snapshot_copies <= 7), "{waves:?}");
        assert_eq!(
            waves.iter().map(|w| w.replications.len()).sum::<usize>(),
            10
        );
        assert_eq!(waves.len(), 5);
    }

    #[test]
    fn the_source_region_is_never_a_destination_and_verified_replicas_are_not_planned() {
        let verified = BTreeSet::from([(
            "us-west-2".to_string(),
            "us-east-1".to_string(),
            "ami-00000001".to_string(),
        )]);
        let plan = build_plan(
            Trigger::Sweep,
            &policy(20),
            vec![candidate("ami-00000001", 1), candidate("ami-00000002", 1)],
            vec![],
            1,
            &verified,
            None,
        );
        assert_eq!(plan.regions.len(), 1);
        let planned: Vec<_> = plan.regions[0].waves[0]
            .replications
            .iter()
            .map(|r| r.source.image_id.clone().unwrap())
            .collect();
        assert_eq!(planned, ["ami-00000002"]);
        assert_eq!(
            plan.skipped.len(),
            2,
            "both are skipped for their own Region"
        );
    }
}
