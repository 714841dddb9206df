//! tag-lineage: makes sure the replica and each of its snapshots carry the full lineage, then
//! publishes the evidence. Idempotent: tags are overwritten with the same values, and evidence
//! already published for this verification (`ferry:evidence-published` on the replica) is not
//! published again.

use tracing::info;

use crate::deps::Deps;
use crate::document::{LineageEvidence, Replication};
use crate::error::FerryError;
use crate::handlers::aws_failure;
use crate::ports::Tag;
use crate::rules::boot_check::boot_checked_tag;
use crate::rules::lineage::{self, as_map, evidence_published, lineage_tags, rfc3339};

pub const SUCCEEDED: &str = "Replication Succeeded";

pub async fn handle(deps: &Deps, payload: serde_json::Value) -> Result<Replication, FerryError> {
    let mut document = Replication::from_json(payload)?;
    let key = document.resolved_key()?.clone();
    let destination_id = document.copy_state()?.destination_id.clone();
    let verification = document.evidence.verification.clone().ok_or_else(|| {
        FerryError::invalid(
            "evidence.verification",
            "missing: run verify-encryption first; only verified replicas are tagged",
        )
    })?;
    let id = document
        .replication_id
        .clone()
        .ok_or_else(|| FerryError::invalid("replicationId", "missing: run start-copy first"))?;
    let region = document.destination.region.clone();

    let verified_at = rfc3339(verification.verified_at);
    let mut common = lineage_tags(&document, &id, &key.arn, key.alias.as_deref());
    common.push(Tag::new(lineage::VERIFIED_AT, &verified_at));
    let mut plan = vec![];
    if destination_id.starts_with("ami-") {
        let mut tags = common.clone();
        tags.extend(boot_checked(&document));
        if let Some(parameter) = document
            .evidence
            .wiring
            .as_ref()
            .and_then(|w| w.ssm_parameter.as_ref())
        {
            tags.push(Tag::new(lineage::SSM_PARAMETER, &parameter.name));
        }
        plan.push((destination_id.clone(), tags));
    }
    for snapshot in &verification.snapshots {
        let mut tags = common.clone();
        if let Some(source) = &snapshot.source_snapshot_id {
            tags.push(Tag::new(lineage::SOURCE_SNAPSHOT_ID, source));
        }
        if let Some(source_key) = &snapshot.source_kms_key_arn {
            tags.push(Tag::new(lineage::SOURCE_KEY_ARN, source_key));
        }
        plan.push((snapshot.snapshot_id.clone(), tags));
    }
    for (resource, tags) in &plan {
        deps.tagging
            .create_tags(&region, std::slice::from_ref(resource), tags)
            .await
            .map_err(|e| aws_failure("ec2:CreateTags", e))?;
    }
    let tagged: Vec<String> = plan.into_iter().map(|(resource, _)| resource).collect();
    document.evidence.lineage = Some(LineageEvidence {
        tagged_resources: tagged.clone(),
        tags: as_map(&common),
        event_published: true,
    });
    if evidence_published(
        &replica_tags(deps, &region, &destination_id).await?,
        &verified_at,
    ) {
        info!(replication_id = %id, "lineage tagged; evidence of this verification was already published");
        return Ok(document);
    }
    let detail = serde_json::to_value(&document).map_err(|e| FerryError::PublishFailed {
        reason: e.to_string(),
    })?;
    deps.events
        .publish(SUCCEEDED, &detail, &tagged)
        .await
        .map_err(|e| FerryError::PublishFailed {
            reason: e.to_string(),
        })?;
    let marker = [Tag::new(lineage::EVIDENCE_PUBLISHED, &verified_at)];
    deps.tagging
        .create_tags(&region, std::slice::from_ref(&destination_id), &marker)
        .await
        .map_err(|e| aws_failure("ec2:CreateTags", e))?;
    info!(replication_id = %id, resources = tagged.len(), "lineage tagged and evidence published");
    Ok(document)
}

/// `ferry:boot-checked` for a replica whose boot check passed.
fn boot_checked(document: &crate::document::Replication) -> Option<Tag> {
    let check = document.evidence.boot_check.as_ref()?;
    (check.status == crate::document::BootStatus::Passed).then(|| {
        boot_checked_tag(
            check.status_ok_at.unwrap_or(check.launched_at),
            &check.instance_type,
            check.seconds_to_running.unwrap_or_default(),
            check.seconds_to_status_ok.unwrap_or_default(),
        )
    })
}

/// The replica's tags as EC2 has them now (none if it is gone: verification just saw it).
async fn replica_tags(deps: &Deps, region: &str, replica_id: &str) -> Result<Vec<Tag>, FerryError> {
    if replica_id.starts_with("ami-") {
        let image = deps
            .images
            .describe_image(region, replica_id)
            .await
            .map_err(|e| aws_failure("ec2:DescribeImages", e))?;
        Ok(image.map(|image| image.tags).unwrap_or_default())
    } else {
        let snapshots = deps
            .snapshots
            .describe_snapshots(region, &[replica_id.to_string()])
            .await
            .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
        Ok(snapshots
            .into_iter()
            .next()
            .map(|snapshot| snapshot.tags)
            .unwrap_or_default())
    }
}
