//! start-copy: preflight (key, zones, source, a time-based deadline's feasibility), then one
//! idempotent copy tagged at creation.

use tracing::{info, warn};

use crate::deps::Deps;
use crate::document::{
    CopyState, CopyStatus, Replication, ResolvedKey, SourceKind, SourceSnapshot,
};
use crate::error::FerryError;
use crate::handlers::{aws_failure, check_zones, copy_to_keep, describe_destination_key, KeptCopy};
use crate::ports::{CopyImageRequest, CopySnapshotRequest, Tag};
use crate::rules::lineage::{self, client_token, identity_tags, replication_id};
use crate::rules::polling::next_check_seconds;
use crate::rules::{key, request, retention, time_based};

/// What start-copy knows before it copies: the document with `replicationId`, `key` and
/// `sourceSnapshots` filled in, each source snapshot's full size, and the live copy this
/// replication already has (reused rather than copied again). `ferry replicate --dry-run`
/// shows it; [`handle`] acts on it.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub document: Replication,
    pub kind: SourceKind,
    /// (source snapshot id, `FullSnapshotSizeInBytes` when EC2 reports it).
    pub sizes: Vec<(String, Option<u64>)>,
    pub existing: Option<KeptCopy>,
}

/// Every check start-copy makes before copying: the request, the key, the zones, the source, a
/// time-based deadline's feasibility, and that a copy already started has the same options.
/// Nothing is copied.
pub async fn preflight(deps: &Deps, mut document: Replication) -> Result<Preflight, FerryError> {
    let kind = request::validate(&document)?;
    let key = resolve_key(deps, &document).await?;
    if let Some(fsr) = &document.options.fsr {
        check_zones(deps, &document.destination.region, &fsr.availability_zones).await?;
    }
    let (source_snapshots, sizes, source_tags) = inspect_source(deps, &document, kind).await?;
    document.source_snapshots = source_snapshots;
    document.group = document
        .destination
        .retention
        .as_ref()
        .and_then(|r| retention::group_of(&source_tags, &r.group_by));
    time_based::check_feasible(document.options.completion_duration_minutes, &sizes)?;
    let id = replication_id(
        &document.source.region,
        document.source_id(),
        &document.destination.region,
        &key.arn,
    );
    let existing = copy_to_keep(deps, &document.destination.region, &id, kind).await?;
    if let Some(copy) = &existing {
        if let Some(conflict) = lineage::options_conflict(&copy.tags, &document.options) {
            // Options shape a copy while AWS makes it: one in flight cannot take others. A
            // finished copy is reused as it was made, and the document says so.
            if copy.state == "pending" {
                return Err(FerryError::invalid(
                    "options",
                    format!("replication {id} has copy {} in flight in {}, and {conflict}: rerun with the same copy options, or after it finishes", copy.id, document.destination.region),
                ));
            }
            warn!(replication_id = %id, copy = %copy.id, %conflict, "reusing a finished copy made with other options");
        }
    }
    document.replication_id = Some(id);
    document.key = Some(key);
    Ok(Preflight {
        document,
        kind,
        sizes,
        existing,
    })
}

pub async fn handle(deps: &Deps, payload: serde_json::Value) -> Result<Replication, FerryError> {
    let Preflight {
        mut document,
        kind,
        existing,
        ..
    } = preflight(deps, Replication::from_json(payload)?).await?;
    let (id, key) = (
        document.replication_id.clone().unwrap_or_default(),
        document.resolved_key()?.clone(),
    );
    let made_with = existing
        .as_ref()
        .and_then(|copy| lineage::options_conflict(&copy.tags, &document.options));
    let (destination_id, started_at, reused) = match existing {
        // The copy every execution of this replication keeps (a retried or duplicate start).
        Some(copy) => {
            info!(replication_id = %id, destination_id = %copy.id, "reusing the existing copy");
            let started_at = copy
                .created_at_ms
                .and_then(|ms| u64::try_from(ms / 1000).ok())
                .unwrap_or_else(|| deps.clock.now());
            (copy.id, started_at, true)
        }
        None => {
            let tags = identity_tags(&document, &id, &key.arn);
            let copy = match kind {
                SourceKind::Image => copy_image(deps, &document, &id, &key, &tags).await?,
                SourceKind::Snapshot => copy_snapshot(deps, &document, &id, &key, tags).await?,
            };
            info!(replication_id = %id, destination_id = %copy, destination_region = %document.destination.region, "copy started");
            (copy, deps.clock.now(), false)
        }
    };
    document.copy = Some(CopyState {
        destination_id,
        status: CopyStatus::Pending,
        next_check_seconds: next_check_seconds(0, None, deps.config.poll),
        started_at,
        reused,
        made_with,
        checks: 0,
        progress: None,
        failure: None,
        cleaned_up: vec![],
    });
    Ok(document)
}

async fn resolve_key(deps: &Deps, document: &Replication) -> Result<ResolvedKey, FerryError> {
    let info = describe_destination_key(deps, document).await?;
    key::check_key(
        &document.destination.kms_key_id,
        &document.destination.region,
        &info,
    )
}

/// The source's snapshots, and each one's full size as EC2 reports it (for time-based copies).
async fn inspect_source(
    deps: &Deps,
    document: &Replication,
    kind: SourceKind,
) -> Result<(Vec<SourceSnapshot>, Vec<(String, Option<u64>)>, Vec<Tag>), FerryError> {
    let (region, id) = (&document.source.region, document.source_id());
    let not_found = || FerryError::SourceNotFound {
        region: region.clone(),
        id: id.into(),
    };
    let mut source_tags = vec![];
    let snapshot_ids: Vec<(Option<String>, String)> = match kind {
        SourceKind::Image => {
            let image = deps
                .images
                .describe_image(region, id)
                .await
                .map_err(|e| aws_failure("ec2:DescribeImages", e))?
                .ok_or_else(not_found)?;
            if image.state != "available" {
                return Err(FerryError::SourceNotReady {
                    id: id.into(),
                    state: image.state,
                    wanted: "available".into(),
                });
            }
            if image.root_device_type != "ebs" || image.snapshots.is_empty() {
                return Err(FerryError::SourceNotEbsBacked {
                    id: id.into(),
                    root_device_type: image.root_device_type,
                });
            }
            source_tags = image.tags;
            image
                .snapshots
                .into_iter()
                .map(|s| (Some(s.device_name), s.snapshot_id))
                .collect()
        }
        SourceKind::Snapshot => vec![(None, id.to_string())],
    };
    let ids: Vec<String> = snapshot_ids.iter().map(|(_, id)| id.clone()).collect();
    let described = deps
        .snapshots
        .describe_snapshots(region, &ids)
        .await
        .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
    if kind == SourceKind::Snapshot {
        let snapshot = described.first().ok_or_else(not_found)?;
        if snapshot.state != "completed" {
            return Err(FerryError::SourceNotReady {
                id: id.into(),
                state: snapshot.state.clone(),
                wanted: "completed".into(),
            });
        }
    }
    let sizes = described
        .iter()
        .map(|s| (s.snapshot_id.clone(), s.full_size_bytes))
        .collect();
    let snapshots = snapshot_ids
        .into_iter()
        .map(|(device_name, snapshot_id)| {
            let found = described.iter().find(|s| s.snapshot_id == snapshot_id);
            SourceSnapshot {
                encrypted: found.is_some_and(|s| s.encrypted),
                kms_key_arn: found.and_then(|s| s.kms_key_id.clone()),
                snapshot_id,
                device_name,
            }
        })
        .collect();
    Ok((snapshots, sizes, source_tags))
}

/// Copies with a ClientToken for this attempt.
async fn copy_image(
    deps: &Deps,
    document: &Replication,
    id: &str,
    key: &ResolvedKey,
    tags: &[Tag],
) -> Result<String, FerryError> {
    let source_image_id = document.source_id();
    let request = CopyImageRequest {
        source_region: document.source.region.clone(),
        source_image_id: source_image_id.into(),
        name: format!("ferry-{source_image_id}-{id}"),
        description: format!(
            "ferry replication {id} of {}/{source_image_id}",
            document.source.region
        ),
        kms_key_arn: key.arn.clone(),
        client_token: client_token(id, document.options.attempt.unwrap_or(1)),
        copy_source_tags: document.options.copy_source_tags.unwrap_or(false),
        completion_duration_minutes: document.options.completion_duration_minutes,
        image_tags: tags.to_vec(),
        snapshot_tags: tags.to_vec(),
    };
    deps.images.copy_image(&document.destination.region, &request).await.map_err(|error| match error.code() {
        "IdempotentParameterMismatch" => FerryError::invalid(
            "options",
            format!("replication {id} was already started with other copy options (copySourceTags, completionDurationMinutes): rerun it with the same options, or with options.attempt one higher"),
        ),
        _ => aws_failure("ec2:CopyImage", error),
    })
}

/// CopySnapshot has no ClientToken: [`preflight`]'s lookup of the kept copy is its only guard.
async fn copy_snapshot(
    deps: &Deps,
    document: &Replication,
    id: &str,
    key: &ResolvedKey,
    mut tags: Vec<Tag>,
) -> Result<String, FerryError> {
    let region = &document.destination.region;
    let source_snapshot_id = document.source_id().to_string();
    tags.push(Tag::new(lineage::SOURCE_SNAPSHOT_ID, &source_snapshot_id));
    let request = CopySnapshotRequest {
        source_region: document.source.region.clone(),
        description: format!(
            "ferry replication {id} of {}/{source_snapshot_id}",
            document.source.region
        ),
        source_snapshot_id,
        kms_key_arn: key.arn.clone(),
        completion_duration_minutes: document.options.completion_duration_minutes,
        tags,
    };
    deps.snapshots
        .copy_snapshot(region, &request)
        .await
        .map_err(|e| aws_failure("ec2:CopySnapshot", e))
}
