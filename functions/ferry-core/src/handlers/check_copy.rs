//! check-copy: reads the copy's state once and returns it as data. It never waits.

use tracing::info;

use crate::deps::Deps;
use crate::document::{CopyStatus, Replication, SourceKind};
use crate::error::FerryError;
use crate::handlers::aws_failure;
use crate::rules::polling::next_check_seconds;
use crate::rules::status::{read_image, read_snapshots, CopyReading};

pub async fn handle(deps: &Deps, payload: serde_json::Value) -> Result<Replication, FerryError> {
    let mut document = Replication::from_json(payload)?;
    let (kind, _) = document.source_ref()?;
    let mut copy = document.copy_state()?.clone();
    let region = document.destination.region.clone();
    let missing = || CopyReading {
        status: CopyStatus::Failed,
        progress_percent: None,
        failure: Some(format!("{} no longer exists in {region}", copy.destination_id)),
    };
    let reading = match kind {
        SourceKind::Image => match deps.images.describe_image(&region, &copy.destination_id).await.map_err(|e| aws_failure("ec2:DescribeImages", e))? {
            None => missing(),
            Some(image) => {
                let ids: Vec<String> = image.snapshots.iter().map(|s| s.snapshot_id.clone()).collect();
                let snapshots = deps.snapshots.describe_snapshots(&region, &ids).await.map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
                read_image(&image, &snapshots)
            }
        },
        SourceKind::Snapshot => {
            let ids = [copy.destination_id.clone()];
            let snapshots = deps.snapshots.describe_snapshots(&region, &ids).await.map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
            if snapshots.is_empty() {
                missing()
            } else {
                read_snapshots(&snapshots)
            }
        }
    };
    let elapsed = deps.clock.now().saturating_sub(copy.started_at);
    copy.status = reading.status;
    copy.checks += 1;
    copy.progress = reading.progress_percent.map(|p| format!("{p}%"));
    copy.failure = reading.failure;
    copy.next_check_seconds =
        if reading.status == CopyStatus::Pending { next_check_seconds(elapsed, reading.progress_percent, deps.config.poll) } else { 0 };
    info!(destination_id = %copy.destination_id, status = ?copy.status, checks = copy.checks, elapsed, "copy checked");
    document.copy = Some(copy);
    Ok(document)
}
