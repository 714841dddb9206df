//! The replication document: the one JSON object every function takes and returns enriched.
//! Field names are camelCase and fixed; a console rerun only needs this document pasted in.

use serde::{Deserialize, Serialize};

use crate::error::FerryError;

/// Largest replication document accepted (Step Functions carries at most 256 KiB between states).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replication {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_id: Option<String>,
    /// The Step Functions execution that ran it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    pub source: Source,
    pub destination: Destination,
    #[serde(default)]
    pub options: Options,
    /// The destination key as resolved by start-copy's preflight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<ResolvedKey>,
    /// The retention group (`groupBy=value` of the source's tag) as found by the preflight,
    /// when the destination asks for retention and the source carries that tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The source's EBS snapshots as found by the preflight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_snapshots: Vec<SourceSnapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyState>,
    #[serde(default, skip_serializing_if = "Evidence::is_empty")]
    pub evidence: Evidence,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    pub region: String,
    /// Key id, key ARN, alias name, alias ARN or multi-Region replica, in the destination Region.
    pub kms_key_id: String,
    /// AMI replications only: launch templates in the destination Region that get a new version
    /// pointing at the verified replica (wire-destination).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_templates: Vec<LaunchTemplateRef>,
    /// AMI replications only: an SSM parameter (`DataType aws:ec2:image`) in the destination
    /// Region that wire-destination sets to the verified replica's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm_parameter: Option<String>,
    /// AMI replications only: launch one instance from the verified replica, prove every volume
    /// comes up under the destination key and the instance passes its status checks, then
    /// terminate it (boot-check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_check: Option<BootCheckRequest>,
    /// AMI replications only: how many replicas of the source's image family the scheduled
    /// step keeps in this Region (retire-replicas); start-copy tags the replica with its group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionRequest>,
}

/// Which replicas of an image family (sources sharing the `groupBy` tag's value) are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionRequest {
    /// The newest this many verified replicas of a group are kept (at least 1).
    pub keep: u32,
    /// Replicas verified longer ago than this are retired (never the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<u32>,
    /// The source tag whose value names the image family (e.g. `app`).
    pub group_by: String,
    /// Days between deprecating a replica and deregistering it (default 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_days: Option<u32>,
}

/// Where and how the boot check launches its instance, in the destination Region.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootCheckRequest {
    /// A subnet of the destination Region; the instance gets no public IP address.
    pub subnet_id: String,
    pub instance_type: String,
    /// Security groups of the subnet's VPC (default: the VPC's default group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// How long the instance may take to pass its status checks (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_minutes: Option<u32>,
}

impl Destination {
    /// Whether the request asks wire-destination for anything.
    pub fn wants_wiring(&self) -> bool {
        !self.launch_templates.is_empty() || self.ssm_parameter.is_some()
    }
}

/// A launch template, by name, that gets a new version for the replica; ferry never creates
/// templates, only versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaunchTemplateRef {
    pub name: String,
    /// Make the new version the template's default version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub set_default: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_source_tags: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_duration_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsr: Option<FsrOptions>,
    /// Rerun counter after a failed copy (default 1): a new attempt gets a new CopyImage token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FsrOptions {
    #[serde(default)]
    pub availability_zones: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_after_hours: Option<f64>,
    /// Fail with `FsrQuotaExceeded` instead of recording FSR as skipped when the quota is full.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_when_quota_full: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedKey {
    pub arn: String,
    pub key_id: String,
    /// The alias the request named, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub multi_region: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceSnapshot {
    pub snapshot_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CopyStatus {
    Pending,
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyState {
    pub destination_id: String,
    pub status: CopyStatus,
    pub next_check_seconds: u64,
    /// Unix seconds when the copy started: when start-copy issued it, or, for a copy it found
    /// and reused, when EC2 created it.
    pub started_at: u64,
    /// start-copy found this replication's copy already started (a rerun, a duplicate event)
    /// and reused it instead of copying again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
    /// For a reused copy that finished before this request asked for other copy options: how it
    /// was made instead (a finished copy keeps the options it was made with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_with: Option<String>,
    #[serde(default)]
    pub checks: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// AWS's own StateReason / StateMessage when the copy failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// What check-copy removed of a failed copy ferry owned (image and snapshot ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleaned_up: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// For a time-based copy (`completionDurationMinutes`): whether it met its deadline, recorded
    /// by check-copy when the copy completes. A missed deadline is reported here, not failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_based_copy: Option<crate::rules::time_based::DeadlineOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<LineageEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsr: Option<FsrEvidence>,
    /// What wire-destination pointed at the verified replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wiring: Option<WiringEvidence>,
    /// The boot check's instance, while it boots and once it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_check: Option<BootCheck>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BootStatus {
    /// Launched; the state machine waits `nextCheckSeconds` and checks again.
    Booting,
    /// Running, both status checks ok, every volume under the destination key; terminated.
    Passed,
}

/// One boot check: the instance launched from the replica, what it showed, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootCheck {
    pub status: BootStatus,
    pub image_id: String,
    pub instance_id: String,
    pub instance_type: String,
    pub subnet_id: String,
    /// Instances this check launched (another one when its instance vanished before a verdict).
    pub launches: u32,
    /// Unix seconds: RunInstances answered; the first check that saw `running`; the first that
    /// saw both status checks `ok` (observed times: at most one wait late).
    pub launched_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_ok_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_to_running: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_to_status_ok: Option<u64>,
    /// Every volume attached to the instance, under the key it came up with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<BootVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<u64>,
    pub next_check_seconds: u64,
    #[serde(default)]
    pub checks: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootVolume {
    pub volume_id: String,
    pub device_name: String,
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        self.time_based_copy.is_none()
            && self.verification.is_none()
            && self.lineage.is_none()
            && self.fsr.is_none()
            && self.wiring.is_none()
            && self.boot_check.is_none()
    }
}

/// The launch-template versions and the SSM parameter that point at the replica.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WiringEvidence {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_templates: Vec<WiredTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm_parameter: Option<WiredParameter>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WiredTemplate {
    pub name: String,
    pub template_id: String,
    /// The version whose `ImageId` is the replica, every EBS mapping under the destination key.
    pub version: i64,
    /// Whether that version is the template's default version now.
    pub is_default: bool,
    /// False when an earlier run of this step had already created the version.
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WiredParameter {
    pub name: String,
    /// The parameter's version holding the replica id, read back from SSM.
    pub version: i64,
    /// False when the parameter already held the replica id and nothing was written.
    pub written: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub verified_at: u64,
    pub key_arn: String,
    pub key_state: String,
    pub snapshots: Vec<VerifiedSnapshot>,
    /// For an AMI replica: the source AWS recorded for the copy (DescribeImages), proved equal
    /// to the document's `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_lineage: Option<AwsLineage>,
}

/// The lineage AWS recorded for a replica AMI: DescribeImages `SourceImageId` and
/// `SourceImageRegion`, which CopyImage sets and tags cannot forge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsLineage {
    pub source_image_id: String,
    pub source_image_region: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedSnapshot {
    pub snapshot_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_kms_key_arn: Option<String>,
    pub kms_key_arn: String,
    pub encrypted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineageEvidence {
    pub tagged_resources: Vec<String>,
    pub tags: std::collections::BTreeMap<String, String>,
    pub event_published: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FsrOutcome {
    NotRequested,
    Requested,
    Skipped,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsrEvidence {
    pub outcome: FsrOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub states: Vec<FsrZoneState>,
    /// When FSR was requested with `disableAfterHours`: how long until the scheduled step
    /// disables it (the snapshots carry `ferry:fsr-disable-at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_after_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsrZoneState {
    pub snapshot_id: String,
    pub availability_zone: String,
    pub state: String,
}

/// What kind of source a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Image,
    Snapshot,
}

impl Replication {
    /// A request: what to copy, where, and how; every later field empty.
    pub fn request(source: Source, destination: Destination, options: Options) -> Self {
        Replication {
            replication_id: None,
            execution_id: None,
            source,
            destination,
            options,
            key: None,
            group: None,
            source_snapshots: vec![],
            copy: None,
            evidence: Evidence::default(),
        }
    }

    /// Parses a document from the Lambda payload; anything malformed is `InvalidRequest`.
    pub fn from_json(payload: serde_json::Value) -> Result<Self, FerryError> {
        let size = payload.to_string().len();
        if size > MAX_DOCUMENT_BYTES {
            return Err(FerryError::invalid(
                "document",
                format!("{size} bytes; at most {} are accepted", MAX_DOCUMENT_BYTES),
            ));
        }
        serde_json::from_value(payload).map_err(|e| {
            FerryError::invalid(
                "document",
                format!("{e}; see README 'The replication document'"),
            )
        })
    }

    /// The source's id as the request gives it (imageId, else snapshotId; [`Self::source_ref`]
    /// checks that exactly one is given).
    pub fn source_id(&self) -> &str {
        self.source
            .image_id
            .as_deref()
            .or(self.source.snapshot_id.as_deref())
            .unwrap_or_default()
    }

    /// The source's id and kind; the request must name exactly one of imageId and snapshotId.
    pub fn source_ref(&self) -> Result<(SourceKind, &str), FerryError> {
        match (&self.source.image_id, &self.source.snapshot_id) {
            (Some(image), None) => Ok((SourceKind::Image, image)),
            (None, Some(snapshot)) => Ok((SourceKind::Snapshot, snapshot)),
            (Some(_), Some(_)) => Err(FerryError::invalid(
                "source",
                "give imageId or snapshotId, not both",
            )),
            (None, None) => Err(FerryError::invalid(
                "source",
                "give imageId (ami-…) or snapshotId (snap-…)",
            )),
        }
    }

    pub fn resolved_key(&self) -> Result<&ResolvedKey, FerryError> {
        self.key.as_ref().ok_or_else(|| {
            FerryError::invalid(
                "key",
                "missing: run start-copy first, its output carries the resolved key",
            )
        })
    }

    pub fn copy_state(&self) -> Result<&CopyState, FerryError> {
        self.copy.as_ref().ok_or_else(|| {
            FerryError::invalid(
                "copy",
                "missing: run start-copy first, its output carries the copy state",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_with_unknown_field_is_invalid() {
        let error = Replication::from_json(json!({
            "source": {"region": "us-east-1", "imageId": "ami-0123456789abcdef0"},
            "destination": {"region": "us-west-2", "kmsKeyId": "alias/k"},
            "sourceRegion": "us-east-1"
        }))
        .unwrap_err();
        assert_eq!(error.name(), "InvalidRequest");
        assert!(error.to_string().contains("sourceRegion"));
    }

    #[test]
    fn document_round_trips_in_camel_case() {
        let request = json!({
            "source": {"region": "us-east-1", "snapshotId": "snap-0123456789abcdef0"},
            "destination": {"region": "us-west-2", "kmsKeyId": "alias/k"},
            "options": {"copySourceTags": true, "completionDurationMinutes": 30, "fsr": {"availabilityZones": ["us-west-2a"]}}
        });
        let document = Replication::from_json(request.clone()).unwrap();
        assert_eq!(
            document.source_ref().unwrap(),
            (SourceKind::Snapshot, "snap-0123456789abcdef0")
        );
        assert_eq!(serde_json::to_value(&document).unwrap(), request);
    }

    #[test]
    fn source_must_name_exactly_one_id() {
        let mut document = Replication::from_json(json!({
            "source": {"region": "us-east-1", "imageId": "ami-0123456789abcdef0", "snapshotId": "snap-0123456789abcdef0"},
            "destination": {"region": "us-west-2", "kmsKeyId": "alias/k"}
        }))
        .unwrap();
        assert_eq!(document.source_ref().unwrap_err().name(), "InvalidRequest");
        document.source.image_id = None;
        document.source.snapshot_id = None;
        assert_eq!(document.source_ref().unwrap_err().name(), "InvalidRequest");
    }
}
