//! The steps of one replication. Each takes the replication document and returns it enriched.

pub mod check_copy;
pub mod enable_fsr;
pub mod plan;
pub mod start_copy;
pub mod tag_lineage;
pub mod verify_encryption;
pub mod wire_destination;

use crate::deps::Deps;
use crate::document::{Replication, SourceKind};
use crate::error::FerryError;
use crate::ports::AwsError;
use crate::rules::lineage::ownership_tags;
use crate::rules::status::{self, image_copy_is_live, snapshot_copy_is_live};

/// The steps of one replication, in the order the state machine runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    StartCopy,
    CheckCopy,
    VerifyEncryption,
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
        Step::WireDestination => json(wire_destination::handle(deps, input).await?),
        Step::TagLineage => json(tag_lineage::handle(deps, input).await?),
        Step::EnableFsr => json(enable_fsr::handle(deps, input).await?),
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

/// The live copy of `replication_id` in `region` that every execution keeps
/// ([`rules::status::copy_to_keep`](crate::rules::status::copy_to_keep)), if there is one.
pub(crate) async fn copy_to_keep(
    deps: &Deps,
    region: &str,
    replication_id: &str,
    kind: SourceKind,
) -> Result<Option<String>, FerryError> {
    let ownership = ownership_tags(replication_id);
    let copies: Vec<(Option<i64>, String)> = match kind {
        SourceKind::Image => deps
            .images
            .find_images_tagged(region, &ownership)
            .await
            .map_err(|e| aws_failure("ec2:DescribeImages", e))?
            .into_iter()
            .filter(|i| image_copy_is_live(&i.state))
            .map(|i| (i.created_at_ms, i.image_id))
            .collect(),
        SourceKind::Snapshot => deps
            .snapshots
            .find_snapshots_tagged(region, &ownership)
            .await
            .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?
            .into_iter()
            .filter(|s| snapshot_copy_is_live(&s.state))
            .map(|s| (s.created_at_ms, s.snapshot_id))
            .collect(),
    };
    Ok(status::copy_to_keep(copies.iter().map(|(at, id)| (*at, id.as_str()))).map(str::to_string))
}
