//! plan-replication: turns a console request, a trigger event or a DR-sweep schedule into work
//! lists in the stack's bucket, one per destination Region, and answers with counts and keys
//! only, so its output is the same size for ten sources and for ten thousand. Its second
//! operation, `summarize`, reads a finished run's results back and writes the run manifest.
//!
//! The sweep makes one paginated pass per source Region over the selected sources and one per
//! destination over ferry's verified replicas, all Regions at once, and never describes a
//! source again: an image's listing carries its tags and its snapshots' encryption
//! (`BlockDeviceMappings[].Ebs.Encrypted`). EC2's Describe* bucket allows 100 calls at once and
//! refills 20 per second (../shared/AWS-FACTS.md); a 10,000-source sweep over 3 Regions takes
//! about 2 × (10,000 / 1,000 per page) + 2 × 3 pages per Region, far inside that.

use std::collections::BTreeSet;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::info;

use crate::deps::Deps;
use crate::document::{Replication, SourceKind};
use crate::error::FerryError;
use crate::handlers::aws_failure;
use crate::policy::Policy;
use crate::ports::{ImageInfo, SnapshotInfo, Tag};
use crate::rules::lineage;
use crate::rules::plan::{
    already_replicated, backing_snapshots, execution_name, inspect, region_concurrency, run_tag,
    verified_replicas, work_lists, Candidate, Inspection, Listed, RegionWorkList, Skipped,
    WorkItem, SKIPPED_SHOWN,
};
use crate::rules::request::validate;
use crate::rules::summary::{summarize, RunSummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    Request,
    Event,
    Sweep,
}

/// The planner's answer: counts, the bucket and keys; never the work itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub trigger: Trigger,
    /// The run's tag: every key of this run is under `runs/<run>/`.
    pub run: String,
    pub replication_count: usize,
    /// Sources the sweep found already replicated and verified, per destination Region.
    pub already_replicated: usize,
    /// Selected snapshots left out because they back a selected AMI (CopyImage copies them).
    pub backing_snapshots_dropped: usize,
    pub skipped_count: usize,
    /// The first few skip reasons; every one is in `plan.json`.
    pub skipped: Vec<Skipped>,
    pub bucket: String,
    pub plan_key: String,
    /// Where the fan-out writes each Region's results (`ResultWriter`).
    pub results_prefix: String,
    /// One entry per destination Region with work (at most the policy's 16 destinations).
    pub regions: Vec<RegionWork>,
    /// Destination Regions the scheduled step checks for FSR that is due to be disabled.
    pub fsr_regions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionWork {
    pub region: String,
    pub count: usize,
    /// The work list: a JSON array of `{name, replication}` items.
    pub key: String,
    /// Replications at once in this Region (the Distributed Map's `MaxConcurrency`).
    pub max_concurrency: usize,
}

/// `plan.json`: everything the run decided, for operators and `ferry status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRecord {
    pub plan: Plan,
    pub execution_id: Option<String>,
    pub skipped: Vec<Skipped>,
}

/// What the planner Lambda answers: a plan, or a run's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PlannerOutput {
    Plan(Plan),
    Summary(RunSummary),
}

/// The input is the trigger itself, `{"trigger": …, "executionId": …}` as the state machine
/// sends it, or `{"summarize": <plan>}` once the run's replications have ended.
pub async fn handle(deps: &Deps, payload: Value) -> Result<PlannerOutput, FerryError> {
    if let Some(plan) = payload.get("summarize") {
        let plan: Plan = serde_json::from_value(plan.clone())
            .map_err(|e| FerryError::invalid("summarize", format!("not a plan: {e}")))?;
        return summarize_run(deps, &plan).await.map(PlannerOutput::Summary);
    }
    let (trigger, execution_id) = match (
        payload.get("trigger"),
        payload.get("executionId").and_then(Value::as_str),
    ) {
        (Some(trigger), Some(execution_id)) => (trigger.clone(), Some(execution_id.to_string())),
        _ => (payload, None),
    };
    let run = run_tag(execution_id.as_deref().unwrap_or(&trigger.to_string()));
    let decided = decide(deps, trigger, &run).await?;
    store(deps, decided, &run, execution_id)
        .await
        .map(PlannerOutput::Plan)
}

/// What a trigger asks for, before it is stored.
struct Decided {
    trigger: Trigger,
    lists: Vec<RegionWorkList>,
    skipped: Vec<Skipped>,
    already: usize,
    backing_dropped: usize,
    budget: usize,
    fsr_regions: Vec<String>,
}

impl Decided {
    fn nothing(trigger: Trigger, skipped: Vec<Skipped>) -> Decided {
        Decided {
            trigger,
            lists: vec![],
            skipped,
            already: 0,
            backing_dropped: 0,
            budget: 1,
            fsr_regions: vec![],
        }
    }
}

fn bucket(deps: &Deps) -> Result<&str, FerryError> {
    deps.config.work_bucket.as_deref().ok_or_else(|| {
        FerryError::invalid(
            "FERRY_WORK_BUCKET",
            "not configured: deploy the stack's WorkBucket and pass its name to plan-replication",
        )
    })
}

/// Writes each Region's work list and `plan.json`, and answers with their keys.
async fn store(
    deps: &Deps,
    decided: Decided,
    run: &str,
    execution_id: Option<String>,
) -> Result<Plan, FerryError> {
    let bucket = bucket(deps)?;
    let prefix = format!("runs/{run}");
    let mut regions = vec![];
    for mut list in decided.lists {
        for item in &mut list.items {
            item.replication.execution_id = execution_id.clone();
        }
        let key = format!("{prefix}/work/{}.json", list.region);
        put_json(deps, bucket, &key, &list.items).await?;
        regions.push(RegionWork {
            region: list.region,
            count: list.items.len(),
            key,
            max_concurrency: region_concurrency(
                decided.budget,
                list.items.len(),
                list.snapshot_copies,
            ),
        });
    }
    let plan = Plan {
        trigger: decided.trigger,
        run: run.to_string(),
        replication_count: regions.iter().map(|r| r.count).sum(),
        already_replicated: decided.already,
        backing_snapshots_dropped: decided.backing_dropped,
        skipped_count: decided.skipped.len(),
        skipped: decided
            .skipped
            .iter()
            .take(SKIPPED_SHOWN)
            .cloned()
            .collect(),
        bucket: bucket.to_string(),
        plan_key: format!("{prefix}/plan.json"),
        results_prefix: format!("{prefix}/results"),
        regions,
        fsr_regions: decided.fsr_regions,
    };
    let record = PlanRecord {
        plan: plan.clone(),
        execution_id,
        skipped: decided.skipped,
    };
    put_json(deps, bucket, &plan.plan_key, &record).await?;
    info!(
        run = %plan.run,
        replications = plan.replication_count,
        already_replicated = plan.already_replicated,
        backing_snapshots_dropped = plan.backing_snapshots_dropped,
        skipped = plan.skipped_count,
        "planned"
    );
    Ok(plan)
}

async fn put_json(
    deps: &Deps,
    bucket: &str,
    key: &str,
    value: &impl Serialize,
) -> Result<(), FerryError> {
    let body =
        serde_json::to_vec(value).map_err(|e| FerryError::invalid("work list", e.to_string()))?;
    deps.work
        .put(bucket, key, body)
        .await
        .map_err(|e| aws_failure("s3:PutObject", e))
}

async fn decide(deps: &Deps, payload: Value, run: &str) -> Result<Decided, FerryError> {
    if payload.get("detail-type").is_some() {
        let event: EventBridgeEvent<Value> = serde_json::from_value(payload)
            .map_err(|e| FerryError::invalid("event", format!("not an EventBridge event: {e}")))?;
        return decide_event(deps, &event, run).await;
    }
    if payload.get("source").is_some_and(Value::is_object) {
        let document = Replication::from_json(payload)?;
        validate(&document)?;
        let item = WorkItem {
            name: execution_name(run, document.source_id(), &document.destination.region),
            replication: document.clone(),
        };
        return Ok(Decided {
            lists: vec![RegionWorkList {
                region: document.destination.region.clone(),
                items: vec![item],
                snapshot_copies: 1,
            }],
            ..Decided::nothing(Trigger::Request, vec![])
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

async fn decide_event(
    deps: &Deps,
    event: &EventBridgeEvent<Value>,
    run: &str,
) -> Result<Decided, FerryError> {
    let region = event.region.clone().unwrap_or_default();
    let detail = &event.detail;
    let skip = |source: &str, reason: String| {
        Ok(Decided::nothing(
            Trigger::Event,
            vec![Skipped {
                source: source.into(),
                reason,
            }],
        ))
    };
    let (kind, ids): (SourceKind, Vec<String>) = match event.detail_type.as_str() {
        "Scheduled Event" => {
            let day = event
                .time
                .map(|t| t.timestamp())
                .unwrap_or_else(|| deps.clock.now() as i64)
                / 86_400;
            return sweep(deps, policy(deps)?, u32::try_from(day).ok(), run).await;
        }
        "EC2 AMI State Change" => match detail["State"].as_str() {
            Some("available") => (
                SourceKind::Image,
                vec![detail["ImageId"].as_str().unwrap_or_default().to_string()],
            ),
            other => {
                return skip(
                    detail["ImageId"].as_str().unwrap_or("?"),
                    format!("AMI state {other:?}, not available"),
                )
            }
        },
        "EBS Snapshot Notification" | "EBS Multi-Volume Snapshots Completion Status" => {
            let (kind, result) = (
                detail["event"].as_str().unwrap_or_default(),
                detail["result"].as_str().unwrap_or_default(),
            );
            if !matches!(kind, "createSnapshot" | "createSnapshots") || result != "succeeded" {
                return skip(
                    detail["snapshot_id"].as_str().unwrap_or("?"),
                    format!("{kind} {result}: only created snapshots are replicated"),
                );
            }
            let arns: Vec<&str> = match detail["snapshots"].as_array() {
                Some(many) => many
                    .iter()
                    .filter_map(|s| s["snapshot_id"].as_str())
                    .collect(),
                None => detail["snapshot_id"].as_str().into_iter().collect(),
            };
            (
                SourceKind::Snapshot,
                arns.into_iter()
                    .map(|arn| arn.rsplit('/').next().unwrap_or(arn).to_string())
                    .collect(),
            )
        }
        other => {
            return Err(FerryError::invalid(
                "detail-type",
                format!("{other:?} is not a trigger ferry handles"),
            ))
        }
    };
    let policy = policy(deps)?;
    let (images, snapshots) = describe_sources(deps, &region, kind, &ids).await?;
    let listed = images
        .iter()
        .map(|i| Listed::image(&region, i))
        .chain(snapshots.iter().map(|s| Listed::snapshot(&region, s)));
    let (mut candidates, mut skipped) = (vec![], vec![]);
    for source in listed {
        match inspect(policy, &source)? {
            Inspection::Selected(candidate) => candidates.push(candidate),
            Inspection::Skipped(reason) => skipped.push(reason),
        }
    }
    let lists = work_lists(
        policy,
        &candidates,
        &BTreeSet::new(),
        None,
        run,
        &mut skipped,
    );
    Ok(Decided {
        lists,
        budget: policy.max_copies_in_flight_per_region,
        ..Decided::nothing(Trigger::Event, skipped)
    })
}

/// The sources an event names, as EC2 describes them now; a missing one is `SourceNotFound`.
async fn describe_sources(
    deps: &Deps,
    region: &str,
    kind: SourceKind,
    ids: &[String],
) -> Result<(Vec<ImageInfo>, Vec<SnapshotInfo>), FerryError> {
    let not_found = |id: &str| FerryError::SourceNotFound {
        region: region.into(),
        id: id.into(),
    };
    match kind {
        SourceKind::Image => {
            let mut images = vec![];
            for id in ids {
                let image = deps
                    .images
                    .describe_image(region, id)
                    .await
                    .map_err(|e| aws_failure("ec2:DescribeImages", e))?
                    .ok_or_else(|| not_found(id))?;
                images.push(image);
            }
            Ok((images, vec![]))
        }
        SourceKind::Snapshot => {
            let found = deps
                .snapshots
                .describe_snapshots(region, ids)
                .await
                .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
            if let Some(missing) = ids
                .iter()
                .find(|id| !found.iter().any(|s| &s.snapshot_id == *id))
            {
                return Err(not_found(missing));
            }
            Ok((vec![], found))
        }
    }
}

/// What one source Region holds that the policy selects: its images, and its snapshots
/// that do not back one of those images.
struct SourceListing {
    region: String,
    images: Vec<ImageInfo>,
    snapshots: Vec<SnapshotInfo>,
    backing_dropped: usize,
}

/// The available images and completed snapshots of this account in `region` that carry every
/// one of `tags`: one paginated listing of each, both at once.
async fn list_settled(
    deps: &Deps,
    region: &str,
    tags: &[Tag],
) -> Result<(Vec<ImageInfo>, Vec<SnapshotInfo>), FerryError> {
    let (images, snapshots) = futures::try_join!(
        async {
            deps.images
                .find_images_tagged(region, tags)
                .await
                .map_err(|e| aws_failure("ec2:DescribeImages", e))
        },
        async {
            deps.snapshots
                .find_snapshots_tagged(region, tags)
                .await
                .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))
        }
    )?;
    Ok((
        images
            .into_iter()
            .filter(|i| i.state == "available")
            .collect(),
        snapshots
            .into_iter()
            .filter(|s| s.state == "completed")
            .collect(),
    ))
}

async fn list_sources(
    deps: &Deps,
    policy: &Policy,
    region: &str,
) -> Result<SourceListing, FerryError> {
    let selection = [Tag::new(&policy.selection.tag_key, "")];
    let (images, snapshots) = list_settled(deps, region, &selection).await?;
    let backing = backing_snapshots(&images);
    let (dropped, snapshots): (Vec<_>, Vec<_>) = snapshots
        .into_iter()
        .partition(|s| backing.contains(&s.snapshot_id));
    Ok(SourceListing {
        region: region.to_string(),
        images,
        snapshots,
        backing_dropped: dropped.len(),
    })
}

/// ferry's verified replicas in one destination Region.
async fn list_verified(
    deps: &Deps,
    destination: &str,
) -> Result<BTreeSet<(String, String, String)>, FerryError> {
    let ours = [
        Tag::new(lineage::MANAGED_BY, "ferry"),
        Tag::new(lineage::VERIFIED_AT, ""),
    ];
    let (images, snapshots) = list_settled(deps, destination, &ours).await?;
    let tags = images
        .iter()
        .map(|i| i.tags.as_slice())
        .chain(snapshots.iter().map(|s| s.tags.as_slice()));
    Ok(verified_replicas(destination, tags))
}

/// The DR sweep: every selected source in the policy's source Regions that lacks a verified
/// replica (judged by lineage tags) in a destination Region is planned for that Region only.
/// Every Region is listed at once (at most 16 destinations plus the source Regions).
async fn sweep(
    deps: &Deps,
    policy: &Policy,
    attempt: Option<u32>,
    run: &str,
) -> Result<Decided, FerryError> {
    let (sources, verified) = futures::try_join!(
        try_join_all(
            policy
                .source_regions
                .iter()
                .map(|r| list_sources(deps, policy, r))
        ),
        try_join_all(
            policy
                .destinations
                .iter()
                .map(|d| list_verified(deps, &d.region))
        ),
    )?;
    let verified: BTreeSet<_> = verified.into_iter().flatten().collect();
    let (mut candidates, mut skipped): (Vec<Candidate>, Vec<Skipped>) = (vec![], vec![]);
    for listing in &sources {
        let listed = listing
            .images
            .iter()
            .map(|i| Listed::image(&listing.region, i))
            .chain(
                listing
                    .snapshots
                    .iter()
                    .map(|s| Listed::snapshot(&listing.region, s)),
            );
        for source in listed {
            match inspect(policy, &source) {
                Ok(Inspection::Selected(candidate)) => candidates.push(candidate),
                Ok(Inspection::Skipped(skip)) => skipped.push(skip),
                Err(error @ FerryError::SourceNotEncrypted { .. }) => skipped.push(Skipped {
                    source: format!("{}/{}", listing.region, source.id),
                    reason: error.to_string(),
                }),
                Err(error) => return Err(error),
            }
        }
    }
    let already = already_replicated(policy, &candidates, &verified);
    Ok(Decided {
        trigger: Trigger::Sweep,
        lists: work_lists(policy, &candidates, &verified, attempt, run, &mut skipped),
        skipped,
        already,
        backing_dropped: sources.iter().map(|s| s.backing_dropped).sum(),
        budget: policy.max_copies_in_flight_per_region,
        fsr_regions: policy
            .destinations
            .iter()
            .map(|d| d.region.clone())
            .collect(),
    })
}

/// Reads the run's results back, writes `runs/<run>/summary.json` and answers with counts.
async fn summarize_run(deps: &Deps, plan: &Plan) -> Result<RunSummary, FerryError> {
    let keys = deps
        .work
        .list(&plan.bucket, &format!("{}/", plan.results_prefix))
        .await
        .map_err(|e| aws_failure("s3:ListObjectsV2", e))?;
    let mut files = vec![];
    for key in keys.iter().filter(|k| k.ends_with(".json")) {
        let body = deps
            .work
            .get(&plan.bucket, key)
            .await
            .map_err(|e| aws_failure("s3:GetObject", e))?
            .unwrap_or_default();
        files.push((key.clone(), body));
    }
    let summary_key = format!("runs/{}/summary.json", plan.run);
    let (summary, manifest) = summarize(&plan.run, &plan.bucket, summary_key, &files);
    put_json(deps, &plan.bucket, &summary.summary_key, &manifest).await?;
    info!(run = %plan.run, succeeded = summary.succeeded, failed = summary.failed, "run summarized");
    Ok(summary)
}
