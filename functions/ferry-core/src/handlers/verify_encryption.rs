//! verify-encryption: the compliance rule, fail-closed, on fresh reads of AWS (never on what the
//! document claims about the replica).

use tracing::{info, warn};

use crate::deps::Deps;
use crate::document::{AwsLineage, Replication, SourceKind, Verification};
use crate::error::FerryError;
use crate::handlers::{aws_failure, describe_destination_key};
use crate::ports::KeyInfo;
use crate::rules::verify::{verify, Replica};

pub async fn handle(deps: &Deps, payload: serde_json::Value) -> Result<Replication, FerryError> {
    let mut document = Replication::from_json(payload)?;
    let (kind, source_id) = document.source_ref()?;
    let source_id = source_id.to_string();
    let expected_key_arn = document.resolved_key()?.arn.clone();
    let destination_id = document.copy_state()?.destination_id.clone();
    let region = document.destination.region.clone();
    let key_now = current_key(deps, &document, &expected_key_arn).await?;

    let image = match kind {
        SourceKind::Image => Some(
            deps.images
                .describe_image(&region, &destination_id)
                .await
                .map_err(|e| aws_failure("ec2:DescribeImages", e))?
                .ok_or_else(|| FerryError::ReplicaIncomplete {
                    destination_id: destination_id.clone(),
                    reason: format!("not found in {region}"),
                })?,
        ),
        SourceKind::Snapshot => None,
    };
    let source_snapshot_count = match kind {
        SourceKind::Image => live_source_snapshot_count(deps, &document, &source_id).await?,
        SourceKind::Snapshot => 1,
    };
    let expected: Vec<_> = match &image {
        Some(image) => image
            .snapshots
            .iter()
            .map(|d| {
                (
                    d.snapshot_id.clone(),
                    document
                        .source_snapshots
                        .iter()
                        .find(|s| s.device_name.as_deref() == Some(d.device_name.as_str())),
                )
            })
            .collect(),
        None => vec![(destination_id.clone(), document.source_snapshots.first())],
    };
    let ids: Vec<String> = expected.iter().map(|(id, _)| id.clone()).collect();
    let described = deps
        .snapshots
        .describe_snapshots(&region, &ids)
        .await
        .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
    let replica = Replica {
        destination_id: &destination_id,
        image: image.as_ref(),
        expected,
        source_snapshot_count,
        described: &described,
        expected_key_arn: &expected_key_arn,
        key_now: &key_now,
        expected_source: image
            .as_ref()
            .map(|_| (document.source.region.as_str(), source_id.as_str())),
    };
    let snapshots = verify(&replica).inspect_err(|error| warn!(destination_id = %destination_id, error = error.name(), "verification failed"))?;
    info!(destination_id = %destination_id, snapshots = snapshots.len(), key_arn = %expected_key_arn, "replica verified");
    // Verification proved AWS's record equal to the document's source; the evidence keeps it.
    let aws_lineage = image.and_then(|image| {
        Some(AwsLineage {
            source_image_id: image.source_image_id?,
            source_image_region: image.source_image_region?,
        })
    });
    document.evidence.verification = Some(Verification {
        verified_at: deps.clock.now(),
        key_arn: expected_key_arn,
        key_state: key_now.state,
        snapshots,
        aws_lineage,
    });
    Ok(document)
}

/// The key as it is now. The document's key must still be what the request's key resolves to:
/// a pasted document cannot redirect verification to another key.
async fn current_key(
    deps: &Deps,
    document: &Replication,
    expected_key_arn: &str,
) -> Result<KeyInfo, FerryError> {
    let reference = &document.destination.kms_key_id;
    let key = describe_destination_key(deps, document).await?;
    if key.arn != expected_key_arn {
        return Err(FerryError::invalid(
            "key.arn",
            format!("{expected_key_arn} is not the key {reference} resolves to now ({}); rerun from start-copy", key.arn),
        ));
    }
    Ok(key)
}

/// How many EBS snapshots the source has now; the document's count when the source is gone.
async fn live_source_snapshot_count(
    deps: &Deps,
    document: &Replication,
    source_id: &str,
) -> Result<usize, FerryError> {
    let live = deps
        .images
        .describe_image(&document.source.region, source_id)
        .await
        .map_err(|e| aws_failure("ec2:DescribeImages", e))?;
    Ok(live
        .map(|image| image.snapshots.len())
        .unwrap_or(document.source_snapshots.len())
        .max(document.source_snapshots.len()))
}
