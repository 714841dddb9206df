//! ferry's named errors. Each variant's name is its Lambda `errorType`, matched verbatim by the
//! state machine's `Retry`/`Catch`; the message says what to fix.

use lambda_runtime::Diagnostic;

/// One offending destination snapshot, as listed by verification errors.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotFinding {
    pub snapshot_id: String,
    pub problem: String,
}

/// One volume of a boot-check instance that is not under the destination key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeFinding {
    pub volume_id: String,
    pub device_name: String,
    pub problem: String,
}

fn list_volumes(findings: &[VolumeFinding]) -> String {
    findings
        .iter()
        .map(|f| format!("{} at {} ({})", f.volume_id, f.device_name, f.problem))
        .collect::<Vec<_>>()
        .join("; ")
}

fn list(findings: &[SnapshotFinding]) -> String {
    findings
        .iter()
        .map(|f| format!("{} ({})", f.snapshot_id, f.problem))
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FerryError {
    #[error("invalid request: {field}: {reason}")]
    InvalidRequest { field: String, reason: String },
    #[error("source {id} not found in {region}: check the id and the source Region")]
    SourceNotFound { region: String, id: String },
    #[error("source {id} is {state}, not {wanted}: wait until it is {wanted}, then rerun")]
    SourceNotReady {
        id: String,
        state: String,
        wanted: String,
    },
    #[error("source image {id} is {root_device_type}-backed: only EBS-backed AMIs can be copied with their snapshots")]
    SourceNotEbsBacked {
        id: String,
        root_device_type: String,
    },
    #[error("source {id} has unencrypted snapshots ({snapshots}) and the policy requires encrypted sources: encrypt the source first")]
    SourceNotEncrypted { id: String, snapshots: String },
    /// A time-based copy (`completionDurationMinutes`) that a source snapshot cannot meet at
    /// AWS's 500 MiB/s per snapshot; refused before anything is copied.
    #[error("completionDurationMinutes {requested_minutes} cannot be met: snapshot {snapshot_id} holds {size_gib} GiB, which needs at least {earliest_minutes} minutes at AWS's 500 MiB/s per time-based snapshot copy; {advice}")]
    CompletionDurationTooShort {
        requested_minutes: u64,
        snapshot_id: String,
        size_gib: String,
        earliest_minutes: u64,
        advice: String,
    },
    #[error("KMS key {key} not found in {region}: create the key (or an alias or multi-Region replica) in the destination Region")]
    KeyNotFound { key: String, region: String },
    #[error("KMS key {key} lives in {key_region}, not in the destination Region {region}: use a key in {region} (keys are never shared across Regions)")]
    KeyNotInDestinationRegion {
        key: String,
        key_region: String,
        region: String,
    },
    #[error("KMS key {key_arn} is {state}: {hint}")]
    KeyNotEnabled {
        key_arn: String,
        state: String,
        hint: String,
    },
    #[error("KMS key {key_arn} is {spec}/{usage}: EBS needs a SYMMETRIC_DEFAULT key for ENCRYPT_DECRYPT")]
    KeyNotSymmetric {
        key_arn: String,
        spec: String,
        usage: String,
    },
    #[error("copy {destination_id} failed: {reason}")]
    CopyFailed {
        destination_id: String,
        reason: String,
    },
    #[error("the destination Region refused another copy ({message}): at most 20 snapshot copies run at once per Region; retry later")]
    CopyQuotaExceeded { message: String },
    #[error("replica {destination_id} has unencrypted snapshots: {}", list(.findings))]
    ReplicaNotEncrypted {
        destination_id: String,
        findings: Vec<SnapshotFinding>,
    },
    #[error("replica {destination_id} has snapshots under a key other than {expected_key_arn}: {}", list(.findings))]
    ReplicaWrongKey {
        destination_id: String,
        expected_key_arn: String,
        findings: Vec<SnapshotFinding>,
    },
    /// A destination snapshot has a KMS key associated besides its own (`AssociateKmsKeyId`):
    /// a second way to read the data, so it is not under exactly the destination key.
    #[error("replica {destination_id} has snapshots with KMS keys associated besides {expected_key_arn} (each a second way to read the data): {}", list(.findings))]
    ReplicaAssociatedKey {
        destination_id: String,
        expected_key_arn: String,
        findings: Vec<SnapshotFinding>,
    },
    /// The lineage AWS recorded for the replica AMI (DescribeImages `SourceImageId` and
    /// `SourceImageRegion`) is not the document's source.
    #[error("replica {destination_id} was copied from {recorded} according to AWS, not from the document's source {expected}")]
    ReplicaLineageMismatch {
        destination_id: String,
        expected: String,
        recorded: String,
    },
    #[error("replica {destination_id} is incomplete: {reason}")]
    ReplicaIncomplete {
        destination_id: String,
        reason: String,
    },
    #[error("Fast Snapshot Restore quota is full in {region}: {reason}; disable FSR elsewhere or raise the quota")]
    FsrQuotaExceeded { region: String, reason: String },
    /// wire-destination: a launch template the request names does not exist in the destination
    /// Region. ferry never creates templates, only versions.
    #[error("launch template {name:?} not found in {region}: create it there (ferry adds versions to existing templates, never creates them) or drop it from destination.launchTemplates")]
    LaunchTemplateNotFound { name: String, region: String },
    /// wire-destination: the SSM parameter does not hold the replica id after PutParameter.
    /// SSM validates `aws:ec2:image` values asynchronously: a value it rejects answers success
    /// and changes nothing, so the step reads the parameter back.
    #[error("SSM parameter {name} in {region} does not hold {image_id} after PutParameter (it holds {found}): SSM validates aws:ec2:image values asynchronously and drops a value it rejects")]
    ParameterNotWritten {
        name: String,
        region: String,
        image_id: String,
        found: String,
    },
    /// boot-check: EC2 refused to launch the boot-check instance, or ended it while it booted
    /// (an unusable volume key, capacity, a subnet or instance type the Region does not have).
    #[error("boot check of {image_id} in {region}: the instance was not launched or did not boot: {reason}")]
    BootCheckLaunchRefused {
        image_id: String,
        region: String,
        reason: String,
    },
    /// boot-check: the instance ran but failed an EC2 status check.
    #[error("boot check of {image_id}: instance {instance_id} failed its {check} status check ({detail}); it was terminated")]
    BootCheckStatusFailed {
        image_id: String,
        instance_id: String,
        check: String,
        detail: String,
    },
    /// boot-check: a volume of the launched instance is not encrypted under the destination key.
    #[error("boot check of {image_id}: instance {instance_id} came up with volumes not under {expected_key_arn}: {}; it was terminated", list_volumes(.findings))]
    BootCheckWrongKey {
        image_id: String,
        instance_id: String,
        expected_key_arn: String,
        findings: Vec<VolumeFinding>,
    },
    /// boot-check: the instance did not pass its status checks within the request's limit.
    #[error("boot check of {image_id}: instance {instance_id} was still {state} after {minutes} minutes; it was terminated")]
    BootCheckTimedOut {
        image_id: String,
        instance_id: String,
        state: String,
        minutes: u32,
    },
    #[error("the evidence event was not published: {reason}")]
    PublishFailed { reason: String },
    #[error("AWS throttled {operation} after the SDK's retries: {message}")]
    Throttled { operation: String, message: String },
    #[error("AWS call {operation} failed: {code}: {message}")]
    AwsError {
        operation: String,
        code: String,
        message: String,
    },
}

impl FerryError {
    /// Every error name, declared once; the ASL and the README use these verbatim.
    pub const NAMES: [&'static str; 27] = [
        "InvalidRequest",
        "SourceNotFound",
        "SourceNotReady",
        "SourceNotEbsBacked",
        "SourceNotEncrypted",
        "CompletionDurationTooShort",
        "KeyNotFound",
        "KeyNotInDestinationRegion",
        "KeyNotEnabled",
        "KeyNotSymmetric",
        "CopyFailed",
        "CopyQuotaExceeded",
        "ReplicaNotEncrypted",
        "ReplicaWrongKey",
        "ReplicaAssociatedKey",
        "ReplicaLineageMismatch",
        "ReplicaIncomplete",
        "FsrQuotaExceeded",
        "LaunchTemplateNotFound",
        "ParameterNotWritten",
        "BootCheckLaunchRefused",
        "BootCheckStatusFailed",
        "BootCheckWrongKey",
        "BootCheckTimedOut",
        "PublishFailed",
        "Throttled",
        "AwsError",
    ];

    /// The variant's Lambda `errorType`: its own name, one arm per variant.
    pub fn name(&self) -> &'static str {
        use FerryError::*;
        match self {
            InvalidRequest { .. } => "InvalidRequest",
            SourceNotFound { .. } => "SourceNotFound",
            SourceNotReady { .. } => "SourceNotReady",
            SourceNotEbsBacked { .. } => "SourceNotEbsBacked",
            SourceNotEncrypted { .. } => "SourceNotEncrypted",
            CompletionDurationTooShort { .. } => "CompletionDurationTooShort",
            KeyNotFound { .. } => "KeyNotFound",
            KeyNotInDestinationRegion { .. } => "KeyNotInDestinationRegion",
            KeyNotEnabled { .. } => "KeyNotEnabled",
            KeyNotSymmetric { .. } => "KeyNotSymmetric",
            CopyFailed { .. } => "CopyFailed",
            CopyQuotaExceeded { .. } => "CopyQuotaExceeded",
            ReplicaNotEncrypted { .. } => "ReplicaNotEncrypted",
            ReplicaWrongKey { .. } => "ReplicaWrongKey",
            ReplicaAssociatedKey { .. } => "ReplicaAssociatedKey",
            ReplicaLineageMismatch { .. } => "ReplicaLineageMismatch",
            ReplicaIncomplete { .. } => "ReplicaIncomplete",
            FsrQuotaExceeded { .. } => "FsrQuotaExceeded",
            LaunchTemplateNotFound { .. } => "LaunchTemplateNotFound",
            ParameterNotWritten { .. } => "ParameterNotWritten",
            BootCheckLaunchRefused { .. } => "BootCheckLaunchRefused",
            BootCheckStatusFailed { .. } => "BootCheckStatusFailed",
            BootCheckWrongKey { .. } => "BootCheckWrongKey",
            BootCheckTimedOut { .. } => "BootCheckTimedOut",
            PublishFailed { .. } => "PublishFailed",
            Throttled { .. } => "Throttled",
            AwsError { .. } => "AwsError",
        }
    }

    /// The names the state machine retries with backoff; every other name fails the branch.
    pub const RETRYABLE: [&'static str; 4] = [
        "Throttled",
        "CopyQuotaExceeded",
        "PublishFailed",
        "ParameterNotWritten",
    ];

    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FerryError::Throttled { .. }
                | FerryError::CopyQuotaExceeded { .. }
                | FerryError::PublishFailed { .. }
                | FerryError::ParameterNotWritten { .. }
        )
    }

    /// A one-line hint on how to fix it, for people at a terminal.
    pub fn hint(&self) -> &'static str {
        use FerryError::*;
        match self {
            InvalidRequest { .. } => "correct the named field; `ferry replicate --help` shows the accepted forms",
            SourceNotFound { .. } => "check the id and --source-region; ferry sees only this account's images and snapshots",
            SourceNotReady { .. } => "wait until the source is available/completed, then run again",
            SourceNotEbsBacked { .. } => "instance-store AMIs have no snapshots to copy; rebuild the AMI as EBS-backed",
            SourceNotEncrypted { .. } => "encrypt the source (copy it encrypted in its own Region) or relax requireEncryptedSource",
            CompletionDurationTooShort { .. } => "ask for the earliest feasible completion duration the message gives, or drop completionDurationMinutes",
            KeyNotFound { .. } => "create the key or alias in the destination Region, or name an existing one in --to REGION=KEY",
            KeyNotInDestinationRegion { .. } => "name a key that lives in the destination Region (a multi-Region replica works)",
            KeyNotEnabled { .. } => "enable the key (or cancel its deletion), or name another key",
            KeyNotSymmetric { .. } => "EBS needs a SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key",
            CopyFailed { .. } => "read AWS's reason above, fix it, then rerun with the next options.attempt",
            CopyQuotaExceeded { .. } => "too many copies in flight to that Region; rerun later",
            ReplicaNotEncrypted { .. } | ReplicaWrongKey { .. } => "the replica is not compliant: investigate before using it; do not launch from it",
            ReplicaAssociatedKey { .. } => "someone associated another KMS key with the replica: investigate, then DisassociateKmsKeyId and re-verify",
            ReplicaLineageMismatch { .. } => "the replica is not a copy of this source according to AWS: check the document's copy.destinationId, or rerun from start-copy",
            ReplicaIncomplete { .. } => "wait for the copy to finish, or rerun the replication",
            FsrQuotaExceeded { .. } => "disable FSR on other snapshots in that Region, or drop failWhenQuotaFull",
            LaunchTemplateNotFound { .. } => "create the launch template in the destination Region, or drop it from destination.launchTemplates; then rerun",
            ParameterNotWritten { .. } => "check that the replica is available and that ferry may ec2:DescribeImages it (SSM validates with the caller's rights); then rerun: the verified replica is reused",
            BootCheckLaunchRefused { .. } => "check destination.bootCheck (subnet, security groups and instance type of the destination Region) and the destination key's state; then rerun: the verified replica is reused",
            BootCheckStatusFailed { .. } => "the replica did not boot healthy: read its console output from a manual launch before using it",
            BootCheckWrongKey { .. } => "a volume launched from the replica is not under the destination key: do not launch from it; investigate the AMI's mappings and EBS defaults",
            BootCheckTimedOut { .. } => "the instance did not pass status checks in time: raise bootCheck.timeoutMinutes or try another instance type; then rerun",
            PublishFailed { .. } => "check the event bus name and permissions, then rerun: the verified replica is reused and only the evidence is published",
            Throttled { .. } => "AWS is throttling this account; rerun later or lower concurrency",
            AwsError { .. } => "check credentials, Region and endpoint; the message above is AWS's own",
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FerryError::InvalidRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<FerryError> for Diagnostic {
    fn from(error: FerryError) -> Self {
        Diagnostic {
            error_type: error.name().to_string(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_its_fixed_pascal_case_name() {
        let wrong_key = FerryError::ReplicaWrongKey {
            destination_id: "ami-1".into(),
            expected_key_arn: "arn:k".into(),
            findings: vec![SnapshotFinding {
                snapshot_id: "snap-1".into(),
                problem: "under arn:other".into(),
            }],
        };
        let diagnostic = Diagnostic::from(wrong_key);
        assert_eq!(diagnostic.error_type, "ReplicaWrongKey");
        assert!(diagnostic
            .error_message
            .contains("snap-1 (under arn:other)"));
    }

    /// One error of every variant, in declaration order.
    fn one_of_each() -> Vec<FerryError> {
        use FerryError::*;
        let (s, findings) = (String::new, Vec::new);
        vec![
            InvalidRequest {
                field: s(),
                reason: s(),
            },
            SourceNotFound {
                region: s(),
                id: s(),
            },
            SourceNotReady {
                id: s(),
                state: s(),
                wanted: s(),
            },
            SourceNotEbsBacked {
                id: s(),
                root_device_type: s(),
            },
            SourceNotEncrypted {
                id: s(),
                snapshots: s(),
            },
            CompletionDurationTooShort {
                requested_minutes: 15,
                snapshot_id: s(),
                size_gib: s(),
                earliest_minutes: 30,
                advice: s(),
            },
            KeyNotFound {
                key: s(),
                region: s(),
            },
            KeyNotInDestinationRegion {
                key: s(),
                key_region: s(),
                region: s(),
            },
            KeyNotEnabled {
                key_arn: s(),
                state: s(),
                hint: s(),
            },
            KeyNotSymmetric {
                key_arn: s(),
                spec: s(),
                usage: s(),
            },
            CopyFailed {
                destination_id: s(),
                reason: s(),
            },
            CopyQuotaExceeded { message: s() },
            ReplicaNotEncrypted {
                destination_id: s(),
                findings: findings(),
            },
            ReplicaWrongKey {
                destination_id: s(),
                expected_key_arn: s(),
                findings: findings(),
            },
            ReplicaAssociatedKey {
                destination_id: s(),
                expected_key_arn: s(),
                findings: findings(),
            },
            ReplicaLineageMismatch {
                destination_id: s(),
                expected: s(),
                recorded: s(),
            },
            ReplicaIncomplete {
                destination_id: s(),
                reason: s(),
            },
            FsrQuotaExceeded {
                region: s(),
                reason: s(),
            },
            LaunchTemplateNotFound {
                name: s(),
                region: s(),
            },
            ParameterNotWritten {
                name: s(),
                region: s(),
                image_id: s(),
                found: s(),
            },
            BootCheckLaunchRefused {
                image_id: s(),
                region: s(),
                reason: s(),
            },
            BootCheckStatusFailed {
                image_id: s(),
                instance_id: s(),
                check: s(),
                detail: s(),
            },
            BootCheckWrongKey {
                image_id: s(),
                instance_id: s(),
                expected_key_arn: s(),
                findings: vec![VolumeFinding {
                    volume_id: s(),
                    device_name: s(),
                    problem: s(),
                }],
            },
            BootCheckTimedOut {
                image_id: s(),
                instance_id: s(),
                state: s(),
                minutes: 15,
            },
            PublishFailed { reason: s() },
            Throttled {
                operation: s(),
                message: s(),
            },
            AwsError {
                operation: s(),
                code: s(),
                message: s(),
            },
        ]
    }

    #[test]
    fn every_variant_is_named_by_itself_and_declared_in_names() {
        let names: Vec<&str> = one_of_each().iter().map(FerryError::name).collect();
        assert_eq!(names, FerryError::NAMES);
        for error in one_of_each() {
            assert_eq!(Diagnostic::from(error.clone()).error_type, error.name());
            assert!(!error.hint().is_empty(), "{}", error.name());
        }
    }

    #[test]
    fn the_retryable_names_are_exactly_the_retryable_variants() {
        let retryable: Vec<&str> = one_of_each()
            .iter()
            .filter(|e| e.is_retryable())
            .map(FerryError::name)
            .collect();
        let mut declared = FerryError::RETRYABLE.to_vec();
        declared.sort();
        let mut retryable = retryable;
        retryable.sort();
        assert_eq!(retryable, declared);
    }

    #[test]
    fn names_are_unique_pascal_case() {
        let mut names = FerryError::NAMES.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FerryError::NAMES.len());
        assert!(names
            .iter()
            .all(|n| n.chars().next().unwrap().is_ascii_uppercase()
                && n.chars().all(|c| c.is_ascii_alphanumeric())));
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(FerryError::Throttled {
            operation: "CopyImage".into(),
            message: "slow down".into()
        }
        .is_retryable());
        assert!(!FerryError::invalid("source", "missing").is_retryable());
    }
}
