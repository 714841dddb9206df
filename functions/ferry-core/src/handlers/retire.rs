//! retire-replicas: the scheduled step's retention, per destination Region that asks for it.
//! [`assess`] reads the Region (ferry's verified replicas by group, and what protects them:
//! launch templates' default and latest versions, the managed SSM parameter, instances) and
//! decides ([`crate::rules::retention::decide`]); [`apply`] carries out exactly those verdicts:
//! deprecate and tag `ferry:retire-after`, or, after the grace period, deregister the image and
//! delete its snapshots (each only if its own tags say this replication made it) and publish
//! `Replica Retired`. `ferry prune` shows [`assess`]'s verdicts and, with `--apply`, applies them.
//!
//! Input: `{"operation": "retire", "destinations": [{"region", "retention", "ssmParameter"?}]}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::deps::Deps;
use crate::error::FerryError;
use crate::handlers::{aws_failure, clean_up};
use crate::ports::Tag;
use crate::rules::fsr::is_active;
use crate::rules::lineage::MANAGED_BY;
use crate::rules::retention::{
    decide, deprecate_at, retiring_tags, Action, RetentionTarget, Verdict, GROUP,
};

/// The detail-type of the event each retirement publishes.
pub const RETIRED_EVENT: &str = "Replica Retired";

#[derive(Debug, Deserialize)]
#[serde(tag = "operation", rename_all = "camelCase", deny_unknown_fields)]
enum Input {
    Retire { destinations: Vec<RetentionTarget> },
}

/// What one Region's verdicts came to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub region: String,
    pub kept: usize,
    pub awaiting_grace: usize,
    pub deprecated: Vec<String>,
    /// Deregistered, with their snapshots.
    pub retired: Vec<String>,
    /// Due, but Fast Snapshot Restore is still on for a snapshot (EC2 refuses to delete it until
    /// FSR is disabled in every zone): ferry disabled it; the next run retires the replica.
    pub awaiting_fsr_disable: Vec<String>,
    /// Verdicts EC2 would not carry out (deregistration protection), with EC2's reason.
    pub refused: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retirements {
    pub regions: Vec<Applied>,
}

pub async fn handle(deps: &Deps, payload: serde_json::Value) -> Result<Retirements, FerryError> {
    let Input::Retire { destinations } = serde_json::from_value(payload).map_err(|e| {
        FerryError::invalid(
            "operation",
            format!("{e}: give {{\"operation\": \"retire\", \"destinations\": [{{\"region\", \"retention\"}}]}}"),
        )
    })?;
    let mut regions = vec![];
    for target in &destinations {
        let verdicts = assess(deps, target).await?;
        regions.push(apply(deps, target, &verdicts).await?);
    }
    Ok(Retirements { regions })
}

/// The verdict on every verified ferry replica of `target`'s groups in its Region.
pub async fn assess(deps: &Deps, target: &RetentionTarget) -> Result<Vec<Verdict>, FerryError> {
    let region = &target.region;
    let owned = [Tag::new(MANAGED_BY, "ferry"), Tag::new(GROUP, "")];
    let images = deps
        .images
        .find_images_tagged(region, &owned)
        .await
        .map_err(|e| aws_failure("ec2:DescribeImages", e))?;
    let now = deps.clock.now();
    let unprotected = decide(&images, &BTreeMap::new(), &target.retention, now);
    let candidates: Vec<String> = unprotected
        .iter()
        .filter(|v| v.action != Action::Keep)
        .map(|v| v.image_id.clone())
        .collect();
    if candidates.is_empty() {
        return Ok(unprotected);
    }
    let protected = protections(deps, target, &candidates).await?;
    Ok(decide(&images, &protected, &target.retention, now))
}

/// Why each of `candidates` must stay, if anything points at it or runs from it.
async fn protections(
    deps: &Deps,
    target: &RetentionTarget,
    candidates: &[String],
) -> Result<BTreeMap<String, String>, FerryError> {
    let region = &target.region;
    let mut protected = BTreeMap::new();
    let mut protect = |image_id: &str, why: String| {
        if candidates.iter().any(|c| c == image_id) {
            protected.entry(image_id.to_string()).or_insert(why);
        }
    };
    for used in deps
        .launch_templates
        .template_images(region)
        .await
        .map_err(|e| aws_failure("ec2:DescribeLaunchTemplateVersions", e))?
    {
        let which = if used.is_default { "default" } else { "latest" };
        protect(
            &used.image_id,
            format!(
                "launch template {}'s {which} version {} launches it",
                used.template_name, used.version
            ),
        );
    }
    if let Some(name) = &target.ssm_parameter {
        let parameter = deps
            .parameters
            .get(region, name)
            .await
            .map_err(|e| aws_failure("ssm:GetParameter", e))?;
        if let Some(parameter) = parameter {
            protect(&parameter.value, format!("SSM parameter {name} holds it"));
        }
    }
    for instance in deps
        .instances
        .instances_of_images(region, candidates)
        .await
        .map_err(|e| aws_failure("ec2:DescribeInstances", e))?
    {
        if let Some(image_id) = &instance.image_id {
            protect(
                image_id,
                format!(
                    "instance {} ({}) was launched from it",
                    instance.instance_id, instance.state
                ),
            );
        }
    }
    Ok(protected)
}

/// Carries out `verdicts` (from [`assess`]) in `target`'s Region.
pub async fn apply(
    deps: &Deps,
    target: &RetentionTarget,
    verdicts: &[Verdict],
) -> Result<Applied, FerryError> {
    let region = &target.region;
    let now = deps.clock.now();
    let mut applied = Applied {
        region: region.clone(),
        ..Default::default()
    };
    let zero_grace = target.retention.grace_days == Some(0);
    for verdict in verdicts {
        match verdict.action {
            Action::Keep => applied.kept += 1,
            Action::AwaitGrace => applied.awaiting_grace += 1,
            Action::Deprecate => {
                deps.images
                    .deprecate_image(region, &verdict.image_id, deprecate_at(now))
                    .await
                    .map_err(|e| aws_failure("ec2:EnableImageDeprecation", e))?;
                deps.tagging
                    .create_tags(
                        region,
                        std::slice::from_ref(&verdict.image_id),
                        &retiring_tags(&target.retention, &verdict.reason, now),
                    )
                    .await
                    .map_err(|e| aws_failure("ec2:CreateTags", e))?;
                info!(region, image_id = %verdict.image_id, reason = %verdict.reason, "replica deprecated");
                applied.deprecated.push(verdict.image_id.clone());
                // No grace: deregistered in the same run.
                if zero_grace {
                    retire(deps, region, verdict, now, &mut applied).await?;
                }
            }
            Action::Deregister => retire(deps, region, verdict, now, &mut applied).await?,
        }
    }
    Ok(applied)
}

async fn retire(
    deps: &Deps,
    region: &str,
    verdict: &Verdict,
    now: u64,
    applied: &mut Applied,
) -> Result<(), FerryError> {
    let Some(image) = deps
        .images
        .describe_image(region, &verdict.image_id)
        .await
        .map_err(|e| aws_failure("ec2:DescribeImages", e))?
    else {
        return Ok(());
    };
    let Some(replication_id) = verdict.replication_id.as_deref() else {
        return Ok(());
    };
    let ids: Vec<String> = image
        .snapshots
        .iter()
        .map(|s| s.snapshot_id.clone())
        .collect();
    let snapshots = deps
        .snapshots
        .describe_snapshots(region, &ids)
        .await
        .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
    // EC2 deletes no snapshot with FSR on in any zone ("Fast snapshot restores must be disabled
    // within all Availability Zones before the snapshot may be deleted").
    let fsr = deps
        .fast_restore
        .describe(region, &ids)
        .await
        .map_err(|e| aws_failure("ec2:DescribeFastSnapshotRestores", e))?;
    let on: Vec<_> = fsr.iter().filter(|f| f.state != "disabled").collect();
    if !on.is_empty() {
        for state in on.iter().filter(|f| is_active(&f.state)) {
            let change = deps
                .fast_restore
                .disable(
                    region,
                    std::slice::from_ref(&state.snapshot_id),
                    std::slice::from_ref(&state.availability_zone),
                )
                .await
                .map_err(|e| aws_failure("ec2:DisableFastSnapshotRestores", e))?;
            if let Some(failed) = change.failed.first() {
                warn!(region, snapshot_id = %failed.snapshot_id, code = %failed.code, "FSR not disabled");
            }
        }
        info!(region, image_id = %verdict.image_id, "FSR still on: disabling it; retired on a later run");
        applied.awaiting_fsr_disable.push(verdict.image_id.clone());
        return Ok(());
    }
    let removed = match clean_up(deps, region, replication_id, Some(&image), &snapshots).await {
        Ok(removed) => removed,
        // Deregistration protection (EnableImageDeregistrationProtection) is an owner's choice.
        Err(FerryError::AwsError { code, message, .. }) if code == "OperationNotPermitted" => {
            warn!(region, image_id = %verdict.image_id, %message, "deregistration refused: kept");
            applied
                .refused
                .push(format!("{}: {code}: {message}", verdict.image_id));
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    if removed.is_empty() {
        return Ok(());
    }
    let detail = serde_json::json!({
        "region": region,
        "imageId": verdict.image_id,
        "group": verdict.group,
        "reason": verdict.reason,
        "verifiedAt": verdict.verified_at,
        "replicationId": verdict.replication_id,
        "source": verdict.source,
        "retiredAt": crate::rules::lineage::rfc3339(now),
        "removed": removed,
    });
    deps.events
        .publish(RETIRED_EVENT, &detail, &removed)
        .await
        .map_err(|e| FerryError::PublishFailed {
            reason: e.to_string(),
        })?;
    info!(region, image_id = %verdict.image_id, removed = removed.len(), "replica retired");
    applied.retired.push(verdict.image_id.clone());
    Ok(())
}
