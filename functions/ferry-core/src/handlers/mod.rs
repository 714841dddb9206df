//! The five steps. Each takes the replication document and returns it enriched.

pub mod check_copy;
pub mod enable_fsr;
pub mod start_copy;
pub mod tag_lineage;
pub mod verify_encryption;

use crate::error::FerryError;
use crate::ports::AwsError;

/// An AWS failure the step cannot interpret further, named for the state machine.
pub(crate) fn aws_failure(operation: &str, error: AwsError) -> FerryError {
    match error {
        AwsError::Throttled { message, .. } => FerryError::Throttled { operation: operation.into(), message },
        AwsError::Service { code, message } if code == "ResourceLimitExceeded" => FerryError::CopyQuotaExceeded { message },
        other => FerryError::AwsError { operation: operation.into(), code: other.code().into(), message: other.message().into() },
    }
}
