//! check-copy: reads the copy's state once and returns it as data. It never waits. A copy AWS
//! failed is removed on the spot, with its snapshots, if and only if the resources' own tags say
//! this replication made them; so is a duplicate copy of the same replication, once it completes
//! (the earliest copy is kept).

use tracing::{info, warn};

use crate::deps::Deps;
use crate::document::{CopyState, CopyStatus, Replication, SourceKind};
use crate::error::FerryError;
use crate::handlers::{aws_failure, clean_up, copy_to_keep, describe_destination_key};
use crate::rules::polling::next_check_seconds;
use crate::rules::status::{explain_failure, read_image, read_missing, read_snapshots};
use crate::rules::time_based::deadline_outcome;

pub async fn handle(deps: &Deps, payload: serde_json::Value) -> Result<Replication, FerryError> {
    let mut document = Replication::from_json(payload)?;
    let (kind, _) = document.source_ref()?;
    let mut copy = document.copy_state()?.clone();
    let region = document.destination.region.clone();

    let image = match kind {
        SourceKind::Image => deps
            .images
            .describe_image(&region, &copy.destination_id)
            .await
            .map_err(|e| aws_failure("ec2:DescribeImages", e))?,
        SourceKind::Snapshot => None,
    };
    let snapshot_ids: Vec<String> = match &image {
        Some(image) => image
            .snapshots
            .iter()
            .map(|s| s.snapshot_id.clone())
            .collect(),
        None if kind == SourceKind::Snapshot => vec![copy.destination_id.clone()],
        None => vec![],
    };
    let snapshots = deps
        .snapshots
        .describe_snapshots(&region, &snapshot_ids)
        .await
        .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
    let elapsed = deps.clock.now().saturating_sub(copy.started_at);
    let reading = match (&image, kind) {
        (Some(image), _) => read_image(image, &snapshots),
        (None, SourceKind::Snapshot) if !snapshots.is_empty() => read_snapshots(&snapshots),
        _ => {
            // Not found. Another execution of this replication may have removed it as its
            // duplicate: follow the copy they all keep. Otherwise EC2 may not see a just-created
            // copy yet (eventual consistency).
            if let Some(kept) = kept_elsewhere(deps, &document, &copy.destination_id, kind).await? {
                warn!(missing = %copy.destination_id, kept = %kept, "the copy followed is gone: following the copy this replication keeps");
                copy.checks += 1;
                follow(&mut copy, kept, deps);
                document.copy = Some(copy);
                return Ok(document);
            }
            read_missing(&copy.destination_id, &region, elapsed)
        }
    };

    copy.status = reading.status;
    copy.checks += 1;
    copy.progress = reading.progress_percent.map(|p| format!("{p}%"));
    copy.next_check_seconds = if reading.status == CopyStatus::Pending {
        next_check_seconds(elapsed, reading.progress_percent, deps.config.poll)
    } else {
        0
    };
    if let Some(failure) = reading.failure {
        let key = destination_key_state(deps, &document).await;
        let next = document.options.attempt.unwrap_or(1) + 1;
        copy.failure = Some(format!(
            "{}. Fix the cause, then rerun with options.attempt = {next}",
            explain_failure(failure, key.as_ref())
        ));
    }
    if let Some(id) = document.replication_id.clone() {
        if copy.status == CopyStatus::Failed {
            copy.cleaned_up = clean_up(deps, &region, &id, image.as_ref(), &snapshots).await?;
        } else if copy.status == CopyStatus::Completed {
            if let Some(canonical) =
                kept_elsewhere(deps, &document, &copy.destination_id, kind).await?
            {
                // Deliveries that started at the same instant each made a copy: every execution
                // keeps the earliest, and a duplicate removes its own.
                warn!(replication_id = %id, duplicate = %copy.destination_id, kept = %canonical, "duplicate copy: keeping the earliest");
                copy.cleaned_up = clean_up(deps, &region, &id, image.as_ref(), &snapshots).await?;
                follow(&mut copy, canonical, deps);
            }
        }
    }
    if copy.status == CopyStatus::Completed {
        if let Some(minutes) = document
            .options
            .completion_duration_minutes
            .and_then(|m| u64::try_from(m).ok())
        {
            // AWS's own CompletionTime of the last snapshot, else when this check saw it done.
            let completed_at = snapshots
                .iter()
                .map(|s| s.completed_at)
                .collect::<Option<Vec<u64>>>()
                .and_then(|times| times.into_iter().max())
                .unwrap_or_else(|| deps.clock.now());
            let outcome = deadline_outcome(copy.started_at, minutes, completed_at);
            if !outcome.met {
                warn!(destination_id = %copy.destination_id, minutes, late_seconds = outcome.late_seconds, "time-based copy missed its completion duration (reported, not failed; AWS bills the tier of the actual duration)");
            }
            document.evidence.time_based_copy = Some(outcome);
        }
    }
    info!(destination_id = %copy.destination_id, status = ?copy.status, checks = copy.checks, elapsed, cleaned_up = copy.cleaned_up.len(), "copy checked");
    document.copy = Some(copy);
    Ok(document)
}

/// Makes `copy` follow `kept`, the copy this replication keeps, checked again soon.
fn follow(copy: &mut CopyState, kept: String, deps: &Deps) {
    copy.destination_id = kept;
    copy.status = CopyStatus::Pending;
    copy.next_check_seconds = deps.config.poll.min_seconds;
}

/// The copy this replication keeps, when it is not `destination_id`.
async fn kept_elsewhere(
    deps: &Deps,
    document: &Replication,
    destination_id: &str,
    kind: SourceKind,
) -> Result<Option<String>, FerryError> {
    let Some(id) = &document.replication_id else {
        return Ok(None);
    };
    Ok(copy_to_keep(deps, &document.destination.region, id, kind)
        .await?
        .map(|kept| kept.id)
        .filter(|kept| kept != destination_id))
}

/// The destination key as KMS describes it now, to explain a failed copy. Best effort: the copy
/// has failed either way, so a key that cannot be described leaves AWS's words alone.
async fn destination_key_state(
    deps: &Deps,
    document: &Replication,
) -> Option<crate::ports::KeyInfo> {
    describe_destination_key(deps, document)
        .await
        .inspect_err(|error| warn!(%error, "destination key could not be described to explain the failed copy"))
        .ok()
}
