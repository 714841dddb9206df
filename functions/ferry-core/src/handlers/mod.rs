//! The steps of one replication. Each takes the replication document and returns it enriched.

pub mod boot_check;
pub mod check_copy;
pub mod enable_fsr;
pub mod plan;
pub mod retire;
pub mod start_copy;
pub mod tag_lineage;
pub mod verify_encryption;
pub mod wire_destination;

use crate::deps::Deps;
use crate::document::{Replication, SourceKind};
use crate::error::FerryError;
use tracing::{info, warn};

use crate::ports::{AwsError, ImageInfo, SnapshotInfo, Tag};
use crate::rules::lineage::{owned_by_replication, ownership_tags};
use crate::rules::status::{self, image_copy_is_live, snapshot_copy_is_live};

/// The steps of one replication, in the order the state machine runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    StartCopy,
    CheckCopy,
    VerifyEncryption,
    /// Only for an AMI whose destination asks for a boot check; passes the document through
    /// otherwise. Returns `evidence.bootCheck.status = booting` until it has a verdict.
    BootCheck,
    /// Only for an AMI whose destination names launch templates or an SSM parameter; passes
    /// the document through otherwise.
    WireDestination,
    TagLineage,
    EnableFsr,
}

impl Step {
    /// Runs this step's handler on a document, as its Lambda would.
    pub async fn run(self, deps: &Deps, document: &Replication) -> Result<Replication, FerryError> {
        let input = serde_json::to_value(document)
            .map_err(|e| FerryError::invalid("document", e.to_string()))?;
        match self {
            Step::StartCopy => start_copy::handle(deps, input).await,
            Step::CheckCopy => check_copy::handle(deps, input).await,
            Step::VerifyEncryption => verify_encryption::handle(deps, input).await,
            Step::BootCheck => match boot_check::handle(deps, input).await? {
                boot_check::BootCheckOutput::Document(document) => Ok(*document),
                boot_check::BootCheckOutput::Terminated { .. } => Err(FerryError::invalid(
                    "operation",
                    "a replication document is boot-checked; end and sweep are operations of their own",
                )),
            },
            Step::WireDestination => wire_destination::handle(deps, input).await,
            Step::TagLineage => tag_lineage::handle(deps, input).await,
            Step::EnableFsr => match enable_fsr::handle(deps, input).await? {
                enable_fsr::FsrOutput::Document(document) => Ok(*document),
                enable_fsr::FsrOutput::Due(_) => Err(FerryError::invalid(
                    "operation",
                    "a replication document enables FSR; disableDue is the scheduled step's",
                )),
            },
        }
    }
}

/// Runs one step's handler on a JSON document, as its Lambda would, and returns its JSON output.
pub async fn run_step(
    step: Step,
    deps: &Deps,
    input: &serde_json::Value,
) -> Result<serde_json::Value, FerryError> {
    fn json(output: impl serde::Serialize) -> Result<serde_json::Value, FerryError> {
        serde_json::to_value(output).map_err(|e| FerryError::invalid("document", e.to_string()))
    }
    let input = input.clone();
    match step {
        Step::StartCopy => json(start_copy::handle(deps, input).await?),
        Step::CheckCopy => json(check_copy::handle(deps, input).await?),
        Step::VerifyEncryption => json(verify_encryption::handle(deps, input).await?),
        Step::BootCheck => json(boot_check::handle(deps, input).await?),
        Step::WireDestination => json(wire_destination::handle(deps, input).await?),
        Step::TagLineage => json(tag_lineage::handle(deps, input).await?),
        Step::EnableFsr => json(enable_fsr::handle(deps, input).await?),
    }
}

/// A verified replica AMI: what wiring and the boot check act on.
pub(crate) struct VerifiedReplica {
    pub replication_id: String,
    pub image_id: String,
    pub key_arn: String,
    pub region: String,
}

/// The replica, only once verification has passed for it under the document's key.
pub(crate) fn verified_replica(document: &Replication) -> Result<VerifiedReplica, FerryError> {
    let verification = document.evidence.verification.as_ref().ok_or_else(|| {
        FerryError::invalid(
            "evidence.verification",
            "missing: run verify-encryption first; only a verified replica is wired or booted",
        )
    })?;
    let key = document.resolved_key()?;
    if verification.key_arn != key.arn {
        return Err(FerryError::invalid(
            "evidence.verification.keyArn",
            format!(
                "{} is not the document's key {}: rerun verify-encryption",
                verification.key_arn, key.arn
            ),
        ));
    }
    let image_id = document.copy_state()?.destination_id.clone();
    if !image_id.starts_with("ami-") {
        return Err(FerryError::invalid(
            "copy.destinationId",
            format!("{image_id} is not an AMI: only AMI replicas are wired or booted"),
        ));
    }
    let replication_id = document
        .replication_id
        .clone()
        .ok_or_else(|| FerryError::invalid("replicationId", "missing: run start-copy first"))?;
    Ok(VerifiedReplica {
        replication_id,
        image_id,
        key_arn: verification.key_arn.clone(),
        region: document.destination.region.clone(),
    })
}

/// The replica as EC2 has it now: a document verified long ago (a console rerun) never points a
/// template or parameter at (or boots) an image deregistered since. (SSM's own validation of an
/// `aws:ec2:image` value also needs the caller's `ec2:DescribeImages`.)
pub(crate) async fn still_available(
    deps: &Deps,
    replica: &VerifiedReplica,
) -> Result<ImageInfo, FerryError> {
    let image = deps
        .images
        .describe_image(&replica.region, &replica.image_id)
        .await
        .map_err(|e| aws_failure("ec2:DescribeImages", e))?;
    match image {
        Some(image) if image.state == "available" => Ok(image),
        other => Err(FerryError::ReplicaIncomplete {
            destination_id: replica.image_id.clone(),
            reason: format!(
                "{} in {} since verification: nothing points at it or boots it",
                other.map_or_else(|| "not found".to_string(), |i| i.state),
                replica.region
            ),
        }),
    }
}

/// The destination key as KMS describes it now, in the destination Region.
pub(crate) async fn describe_destination_key(
    deps: &Deps,
    document: &crate::document::Replication,
) -> Result<crate::ports::KeyInfo, FerryError> {
    let (reference, region) = (
        &document.destination.kms_key_id,
        &document.destination.region,
    );
    deps.keys
        .describe_key(region, reference)
        .await
        .map_err(|error| {
            if error.is_not_found() {
                FerryError::KeyNotFound {
                    key: reference.clone(),
                    region: region.clone(),
                }
            } else {
                aws_failure("kms:DescribeKey", error)
            }
        })
}

/// Every requested Availability Zone must be one of the Region's own.
pub(crate) async fn check_zones(
    deps: &Deps,
    region: &str,
    requested: &[String],
) -> Result<(), FerryError> {
    let zones = deps
        .fast_restore
        .availability_zones(region)
        .await
        .map_err(|e| aws_failure("ec2:DescribeAvailabilityZones", e))?;
    match requested.iter().find(|zone| !zones.contains(zone)) {
        Some(zone) => Err(FerryError::invalid(
            "options.fsr.availabilityZones",
            format!(
                "{zone} is not an Availability Zone of {region} (it has {})",
                zones.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// An AWS failure the step cannot interpret further, named for the state machine.
pub(crate) fn aws_failure(operation: &str, error: AwsError) -> FerryError {
    match error {
        AwsError::Throttled { message, .. } => FerryError::Throttled {
            operation: operation.into(),
            message,
        },
        AwsError::Service { code, message } if code == "ResourceLimitExceeded" => {
            FerryError::CopyQuotaExceeded { message }
        }
        other => FerryError::AwsError {
            operation: operation.into(),
            code: other.code().into(),
            message: other.message().into(),
        },
    }
}

/// A live copy of a replication, as EC2 describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptCopy {
    pub id: String,
    /// EC2's state: `pending` while copying, then `available` (image) or `completed` (snapshot).
    pub state: String,
    /// EC2's creation time, Unix milliseconds.
    pub created_at_ms: Option<i64>,
    pub tags: Vec<Tag>,
}

/// The live copy of `replication_id` in `region` that every execution keeps
/// ([`rules::status::copy_to_keep`](crate::rules::status::copy_to_keep)), if there is one.
pub(crate) async fn copy_to_keep(
    deps: &Deps,
    region: &str,
    replication_id: &str,
    kind: SourceKind,
) -> Result<Option<KeptCopy>, FerryError> {
    let ownership = ownership_tags(replication_id);
    let copies: Vec<KeptCopy> = match kind {
        SourceKind::Image => deps
            .images
            .find_images_tagged(region, &ownership)
            .await
            .map_err(|e| aws_failure("ec2:DescribeImages", e))?
            .into_iter()
            .filter(|i| image_copy_is_live(&i.state))
            .map(|i| KeptCopy {
                id: i.image_id,
                state: i.state,
                created_at_ms: i.created_at_ms,
                tags: i.tags,
            })
            .collect(),
        SourceKind::Snapshot => deps
            .snapshots
            .find_snapshots_tagged(region, &ownership)
            .await
            .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?
            .into_iter()
            .filter(|s| snapshot_copy_is_live(&s.state))
            .map(|s| KeptCopy {
                id: s.snapshot_id,
                state: s.state,
                created_at_ms: s.created_at_ms,
                tags: s.tags,
            })
            .collect(),
    };
    let kept = status::copy_to_keep(copies.iter().map(|c| (c.created_at_ms, c.id.as_str())))
        .map(str::to_string);
    Ok(kept.and_then(|id| copies.into_iter().find(|c| c.id == id)))
}

/// Deregisters a copy's image and deletes its snapshots, each only if its own tags say this
/// replication made it. Returns what was removed.
pub(crate) async fn clean_up(
    deps: &Deps,
    region: &str,
    replication_id: &str,
    image: Option<&ImageInfo>,
    snapshots: &[SnapshotInfo],
) -> Result<Vec<String>, FerryError> {
    let mut removed = vec![];
    if let Some(image) = image {
        if !owned_by_replication(&image.tags, replication_id) {
            warn!(image_id = %image.image_id, "copy is not tagged as this replication's: left alone");
            return Ok(removed);
        }
        deps.images
            .deregister_image(region, &image.image_id)
            .await
            .map_err(|e| aws_failure("ec2:DeregisterImage", e))?;
        removed.push(image.image_id.clone());
    }
    for snapshot in snapshots {
        if owned_by_replication(&snapshot.tags, replication_id) {
            deps.snapshots
                .delete_snapshot(region, &snapshot.snapshot_id)
                .await
                .map_err(|e| aws_failure("ec2:DeleteSnapshot", e))?;
            removed.push(snapshot.snapshot_id.clone());
        } else {
            warn!(snapshot_id = %snapshot.snapshot_id, "snapshot is not tagged as this replication's: left alone");
        }
    }
    info!(replication_id, removed = removed.len(), "copy removed");
    Ok(removed)
}

/// `ferry replicate --replace`: removes this replication's copy `destination_id` (a replica that
/// failed verification), each part only if its own tags say this replication made it, so that a
/// new attempt copies afresh. Returns what was removed; nothing else is touched.
pub async fn remove_copy(
    deps: &Deps,
    document: &Replication,
    destination_id: &str,
) -> Result<Vec<String>, FerryError> {
    let (kind, _) = document.source_ref()?;
    let Some(replication_id) = &document.replication_id else {
        return Ok(vec![]);
    };
    let region = &document.destination.region;
    let image = match kind {
        SourceKind::Image => deps
            .images
            .describe_image(region, destination_id)
            .await
            .map_err(|e| aws_failure("ec2:DescribeImages", e))?,
        SourceKind::Snapshot => None,
    };
    let ids: Vec<String> = match &image {
        Some(image) => image
            .snapshots
            .iter()
            .map(|s| s.snapshot_id.clone())
            .collect(),
        None => vec![destination_id.to_string()],
    };
    let snapshots = deps
        .snapshots
        .describe_snapshots(region, &ids)
        .await
        .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
    clean_up(deps, region, replication_id, image.as_ref(), &snapshots).await
}
