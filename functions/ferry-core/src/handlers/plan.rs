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
//!
//! This module lists, describes and stores; what to plan is decided in [`crate::rules::plan`],
//! and the documents it answers and writes are [`crate::plan`]'s.

use futures::future::try_join_all;
use serde::Serialize;
use serde_json::Value;
use tracing::info;

use crate::deps::Deps;
use crate::document::SourceKind;
use crate::error::FerryError;
use crate::handlers::aws_failure;
use crate::plan::{Plan, PlannerOutput, Trigger};
use crate::policy::Policy;
use crate::ports::{ImageInfo, SnapshotInfo, Tag};
use crate::rules::lineage;
use crate::rules::plan::pack::lay_out;
use crate::rules::plan::select::{settled, verified_replicas, SourceListing, VerifiedReplicas};
use crate::rules::plan::trigger::{Asked, PlannerInput};
use crate::rules::plan::Decision;
use crate::rules::summary::{summarize, RunSummary};

/// The input is the trigger itself, `{"trigger": …, "executionId": …}` as the state machine
/// sends it, or `{"summarize": <plan>}` once the run's replications have ended.
pub async fn handle(deps: &Deps, payload: Value) -> Result<PlannerOutput, FerryError> {
    let (asked, run, execution_id) = match PlannerInput::parse(payload, deps.clock.now())? {
        PlannerInput::Summarize(plan) => {
            return summarize_run(deps, &plan).await.map(PlannerOutput::Summary)
        }
        PlannerInput::Plan {
            asked,
            run,
            execution_id,
        } => (asked, run, execution_id),
    };
    let decision = match asked {
        Asked::Request(document) => Decision::request(*document, &run),
        Asked::NotReady(skipped) => Decision::nothing(Trigger::Event, vec![skipped]),
        Asked::Sources { region, kind, ids } => {
            let policy = policy(deps)?;
            let (images, snapshots) = describe_sources(deps, &region, kind, &ids).await?;
            Decision::event(policy, &region, &images, &snapshots, &run)?
        }
        Asked::Sweep { attempt } => sweep(deps, policy(deps)?, attempt, &run).await?,
    };
    store(deps, decision, &run, execution_id)
        .await
        .map(PlannerOutput::Plan)
}

fn bucket(deps: &Deps) -> Result<&str, FerryError> {
    deps.config.work_bucket.as_deref().ok_or_else(|| {
        FerryError::invalid(
            "FERRY_WORK_BUCKET",
            "not configured: deploy the stack's WorkBucket and pass its name to plan-replication",
        )
    })
}

fn policy(deps: &Deps) -> Result<&Policy, FerryError> {
    deps.config.policy.as_ref().ok_or_else(|| {
        FerryError::invalid(
            "policy",
            "FERRY_POLICY is not configured: deploy a ReplicationPolicy",
        )
    })
}

/// Writes each Region's work list and `plan.json`, and answers with their keys.
async fn store(
    deps: &Deps,
    decision: Decision,
    run: &str,
    execution_id: Option<String>,
) -> Result<Plan, FerryError> {
    let layout = lay_out(decision, run, bucket(deps)?, execution_id);
    let plan = &layout.record.plan;
    for (key, items) in &layout.work_lists {
        put_json(deps, &plan.bucket, key, items).await?;
    }
    put_json(deps, &plan.bucket, &plan.plan_key, &layout.record).await?;
    info!(
        run = %plan.run,
        replications = plan.replication_count,
        already_replicated = plan.already_replicated,
        backing_snapshots_dropped = plan.backing_snapshots_dropped,
        skipped = plan.skipped_count,
        "planned"
    );
    Ok(layout.record.plan)
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
    Ok(settled(images, snapshots))
}

/// The sources carrying the policy's selection tag in `region`.
async fn list_sources(
    deps: &Deps,
    policy: &Policy,
    region: &str,
) -> Result<SourceListing, FerryError> {
    let selection = [Tag::new(&policy.selection.tag_key, "")];
    let (images, snapshots) = list_settled(deps, region, &selection).await?;
    Ok(SourceListing::new(region, images, snapshots))
}

/// ferry's verified replicas in one destination Region.
async fn list_verified(deps: &Deps, destination: &str) -> Result<VerifiedReplicas, FerryError> {
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

/// The DR sweep lists every source Region and every destination at once (at most 16
/// destinations plus the source Regions), then decides ([`Decision::sweep`]).
async fn sweep(
    deps: &Deps,
    policy: &Policy,
    attempt: Option<u32>,
    run: &str,
) -> Result<Decision, FerryError> {
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
    let verified: VerifiedReplicas = verified.into_iter().flatten().collect();
    Ok(Decision::sweep(policy, &sources, &verified, attempt, run))
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
