//! check-copy: reads the copy's state once and returns it as data. It never waits. A copy AWS
//! failed is removed on the spot, with its snapshots, if and only if the resources' own tags say
//! this replication made them.

use tracing::{info, warn};

use crate::deps::Deps;
use crate::document::{CopyStatus, Replication, SourceKind};
use crate::error::FerryError;
use crate::handlers::aws_failure;
use crate::ports::{ImageInfo, SnapshotInfo};
use crate::rules::lineage::owned_by_replication;
use crate::rules::polling::next_check_seconds;
use crate::rules::status::{read_image, read_snapshots, CopyReading};

pub async fn handle(deps: &Deps, payload: serde_json::Value) -> Result<Replication, FerryError> {
    let mut document = Replication::from_json(payload)?;
    let (kind, _) = document.source_ref()?;
    let mut copy = document.copy_state()?.clone();
    let region = document.destination.region.clone();

    let image = match kind {
        SourceKind::Image => deps.images.describe_image(&region, &copy.destination_id).await.map_err(|e| aws_failure("ec2:DescribeImages", e))?,
        SourceKind::Snapshot => None,
    };
    let snapshot_ids: Vec<String> = match &image {
        Some(image) => image.snapshots.iter().map(|s| s.snapshot_id.clone()).collect(),
        None if kind == SourceKind::Snapshot => vec![copy.destination_id.clone()],
        None => vec![],
    };
    let snapshots = deps.snapshots.describe_snapshots(&region, &snapshot_ids).await.map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
    let reading = match (&image, kind) {
        (Some(image), _) => read_image(image, &snapshots),
        (None, SourceKind::Snapshot) if !snapshots.is_empty() => read_snapshots(&snapshots),
        _ => CopyReading { status: CopyStatus::Failed, progress_percent: None, failure: Some(format!("{} no longer exists in {region}", copy.destination_id)) },
    };

    let elapsed = deps.clock.now().saturating_sub(copy.started_at);
    copy.status = reading.status;
    copy.checks += 1;
    copy.progress = reading.progress_percent.map(|p| format!("{p}%"));
    copy.next_check_seconds =
        if reading.status == CopyStatus::Pending { next_check_seconds(elapsed, reading.progress_percent, deps.config.poll) } else { 0 };
    copy.failure = reading.failure.map(|failure| {
        let next = document.options.attempt.unwrap_or(1) + 1;
        format!("{failure}. Fix the cause, then rerun with options.attempt = {next}")
    });
    if copy.status == CopyStatus::Failed {
        if let Some(id) = &document.replication_id {
            copy.cleaned_up = clean_up(deps, &region, id, image.as_ref(), &snapshots).await?;
        }
    }
    info!(destination_id = %copy.destination_id, status = ?copy.status, checks = copy.checks, elapsed, cleaned_up = copy.cleaned_up.len(), "copy checked");
    document.copy = Some(copy);
    Ok(document)
}

/// Deregisters the failed image and deletes its snapshots, each only if its own tags say this
/// replication made it. Returns what was removed.
async fn clean_up(deps: &Deps, region: &str, replication_id: &str, image: Option<&ImageInfo>, snapshots: &[SnapshotInfo]) -> Result<Vec<String>, FerryError> {
    let mut removed = vec![];
    if let Some(image) = image {
        if !owned_by_replication(&image.tags, replication_id) {
            warn!(image_id = %image.image_id, "failed copy is not tagged as this replication's: left alone");
            return Ok(removed);
        }
        deps.images.deregister_image(region, &image.image_id).await.map_err(|e| aws_failure("ec2:DeregisterImage", e))?;
        removed.push(image.image_id.clone());
    }
    for snapshot in snapshots {
        if owned_by_replication(&snapshot.tags, replication_id) {
            deps.snapshots.delete_snapshot(region, &snapshot.snapshot_id).await.map_err(|e| aws_failure("ec2:DeleteSnapshot", e))?;
            removed.push(snapshot.snapshot_id.clone());
        } else {
            warn!(snapshot_id = %snapshot.snapshot_id, "snapshot is not tagged as this replication's: left alone");
        }
    }
    info!(replication_id, removed = removed.len(), "failed copy cleaned up");
    Ok(removed)
}
