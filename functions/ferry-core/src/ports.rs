//! One small trait per AWS capability. Handlers depend on these; adapters implement them over
//! the `aws-sdk-*` clients. Every method names the Region it acts in.

use async_trait::async_trait;

/// A failed AWS call, as the domain needs to see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// AWS answered with an error code.
    #[error("{code}: {message}")]
    Service { code: String, message: String },
    /// Throttled even after the SDK's own retries.
    #[error("throttled ({code}): {message}")]
    Throttled { code: String, message: String },
    /// No answer: connection, timeout, or an unparseable response.
    #[error("no usable answer: {0}")]
    Transport(String),
}

impl AwsError {
    pub fn code(&self) -> &str {
        match self {
            AwsError::Service { code, .. } | AwsError::Throttled { code, .. } => code,
            AwsError::Transport(_) => "Transport",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            AwsError::Service { message, .. } | AwsError::Throttled { message, .. } => message,
            AwsError::Transport(message) => message,
        }
    }

    pub fn is_not_found(&self) -> bool {
        let code = self.code();
        code.ends_with(".NotFound") || code == "NotFoundException" || code.ends_with(".Malformed")
    }
}

pub type AwsResult<T> = Result<T, AwsError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    pub arn: String,
    pub key_id: String,
    pub state: String,
    pub spec: String,
    pub usage: String,
    pub multi_region: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSnapshot {
    pub device_name: String,
    pub snapshot_id: String,
    /// As the image's block-device mapping reports it (`Ebs.Encrypted`).
    pub encrypted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    pub image_id: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub root_device_type: String,
    pub snapshots: Vec<DeviceSnapshot>,
    pub tags: Vec<Tag>,
    /// Creation time (EC2's `CreationDate`), Unix milliseconds.
    pub created_at_ms: Option<i64>,
    /// AWS's own lineage record (DescribeImages `SourceImageId`/`SourceImageRegion`): the AMI
    /// CopyImage (or CreateImage, CreateRestoreImageTask) made this one from. Tags can be
    /// written by anyone with `ec2:CreateTags`; these cannot.
    pub source_image_id: Option<String>,
    pub source_image_region: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub snapshot_id: String,
    pub state: String,
    pub state_message: Option<String>,
    pub progress: Option<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    /// ARNs of the KMS keys associated with the snapshot besides `kms_key_id`
    /// (`AssociateKmsKeyId`; DescribeSnapshots' `associatedKmsKeySet`): each one is a second,
    /// independent way to read the data, without re-encryption.
    pub associated_kms_key_ids: Vec<String>,
    pub tags: Vec<Tag>,
    /// Start time (EC2's `StartTime`), Unix milliseconds.
    pub created_at_ms: Option<i64>,
    /// `FullSnapshotSizeInBytes`: every block written to the source volume when the snapshot was
    /// taken (not the incremental size), which a full copy moves. `None` if EC2 did not report it.
    pub full_size_bytes: Option<u64>,
    /// `CompletionTime` as Unix seconds, once EC2 reports the snapshot completed.
    pub completed_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyImageRequest {
    pub source_region: String,
    pub source_image_id: String,
    pub name: String,
    pub description: String,
    pub kms_key_arn: String,
    pub client_token: String,
    pub copy_source_tags: bool,
    pub completion_duration_minutes: Option<i64>,
    pub image_tags: Vec<Tag>,
    pub snapshot_tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySnapshotRequest {
    pub source_region: String,
    pub source_snapshot_id: String,
    pub description: String,
    pub kms_key_arn: String,
    pub completion_duration_minutes: Option<i64>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsrState {
    pub snapshot_id: String,
    pub availability_zone: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsrFailure {
    pub snapshot_id: String,
    pub availability_zone: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsrChange {
    pub succeeded: Vec<FsrState>,
    pub failed: Vec<FsrFailure>,
}

#[async_trait]
pub trait Keys: Send + Sync {
    async fn describe_key(&self, region: &str, key_id: &str) -> AwsResult<KeyInfo>;
}

#[async_trait]
pub trait Images: Send + Sync {
    /// `Ok(None)` when the image does not exist.
    async fn describe_image(&self, region: &str, image_id: &str) -> AwsResult<Option<ImageInfo>>;
    async fn copy_image(&self, region: &str, request: &CopyImageRequest) -> AwsResult<String>;
    /// Images owned by this account carrying every one of `tags` (a tag with an empty value
    /// matches any value of that key).
    async fn find_images_tagged(&self, region: &str, tags: &[Tag]) -> AwsResult<Vec<ImageInfo>>;
    async fn deregister_image(&self, region: &str, image_id: &str) -> AwsResult<()>;
    /// EnableImageDeprecation at `at` (Unix seconds).
    async fn deprecate_image(&self, region: &str, image_id: &str, at: u64) -> AwsResult<()>;
}

#[async_trait]
pub trait Snapshots: Send + Sync {
    /// The snapshots that exist among `snapshot_ids`.
    async fn describe_snapshots(
        &self,
        region: &str,
        snapshot_ids: &[String],
    ) -> AwsResult<Vec<SnapshotInfo>>;
    /// Snapshots owned by this account carrying every one of `tags` (empty value: any value).
    async fn find_snapshots_tagged(
        &self,
        region: &str,
        tags: &[Tag],
    ) -> AwsResult<Vec<SnapshotInfo>>;
    async fn copy_snapshot(&self, region: &str, request: &CopySnapshotRequest)
        -> AwsResult<String>;
    async fn delete_snapshot(&self, region: &str, snapshot_id: &str) -> AwsResult<()>;
}

#[async_trait]
pub trait Tagging: Send + Sync {
    async fn create_tags(
        &self,
        region: &str,
        resource_ids: &[String],
        tags: &[Tag],
    ) -> AwsResult<()>;
}

#[async_trait]
pub trait FastRestore: Send + Sync {
    async fn availability_zones(&self, region: &str) -> AwsResult<Vec<String>>;
    async fn enable(
        &self,
        region: &str,
        snapshot_ids: &[String],
        zones: &[String],
    ) -> AwsResult<FsrChange>;
    async fn disable(
        &self,
        region: &str,
        snapshot_ids: &[String],
        zones: &[String],
    ) -> AwsResult<FsrChange>;
    /// FSR entries in `region`; all of them when `snapshot_ids` is empty.
    async fn describe(&self, region: &str, snapshot_ids: &[String]) -> AwsResult<Vec<FsrState>>;
}

#[async_trait]
pub trait Events: Send + Sync {
    async fn publish(
        &self,
        detail_type: &str,
        detail: &serde_json::Value,
        resources: &[String],
    ) -> AwsResult<()>;
}

pub trait Clock: Send + Sync {
    /// Unix seconds.
    fn now(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// JSON objects in the stack's bucket: the planner's work lists and the run manifests.
#[async_trait]
pub trait WorkStore: Send + Sync {
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> AwsResult<()>;
    /// `Ok(None)` when there is no such object.
    async fn get(&self, bucket: &str, key: &str) -> AwsResult<Option<Vec<u8>>>;
    /// Every key under `prefix`, in S3's (lexicographic) order.
    async fn list(&self, bucket: &str, prefix: &str) -> AwsResult<Vec<String>>;
}

/// A launch template as DescribeLaunchTemplates reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchTemplateInfo {
    pub template_id: String,
    pub name: String,
    pub default_version: i64,
    pub latest_version: i64,
}

/// One EBS volume of a launch-template block-device mapping, every field AWS keeps (a new
/// version's mappings replace the source version's whole list, so each one is given back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateEbs {
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub delete_on_termination: Option<bool>,
    pub iops: Option<i32>,
    pub snapshot_id: Option<String>,
    pub volume_size: Option<i32>,
    pub volume_type: Option<String>,
    pub throughput: Option<i32>,
    pub volume_initialization_rate: Option<i32>,
    pub ebs_card_index: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateMapping {
    pub device_name: Option<String>,
    pub virtual_name: Option<String>,
    pub no_device: Option<String>,
    pub ebs: Option<TemplateEbs>,
}

/// One version of a launch template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateVersionInfo {
    pub version: i64,
    pub description: Option<String>,
    pub image_id: Option<String>,
    pub is_default: bool,
    pub block_device_mappings: Vec<TemplateMapping>,
}

/// CreateLaunchTemplateVersion from `source_version`, replacing `ImageId` and (when any are
/// given) the block-device mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTemplateVersion {
    pub template_id: String,
    pub source_version: String,
    pub client_token: String,
    pub description: String,
    pub image_id: String,
    pub block_device_mappings: Vec<TemplateMapping>,
}

#[async_trait]
pub trait LaunchTemplates: Send + Sync {
    /// `Ok(None)` when no template has this name.
    async fn describe_template(
        &self,
        region: &str,
        name: &str,
    ) -> AwsResult<Option<LaunchTemplateInfo>>;
    /// The template's versions whose `ImageId` is `image_id`.
    async fn versions_with_image(
        &self,
        region: &str,
        template_id: &str,
        image_id: &str,
    ) -> AwsResult<Vec<TemplateVersionInfo>>;
    /// The template's `$Latest` version.
    async fn latest_version(
        &self,
        region: &str,
        template_id: &str,
    ) -> AwsResult<TemplateVersionInfo>;
    /// The new version's number (the same one again for a repeated `client_token`).
    async fn create_version(&self, region: &str, request: &NewTemplateVersion) -> AwsResult<i64>;
    async fn set_default_version(
        &self,
        region: &str,
        template_id: &str,
        version: i64,
    ) -> AwsResult<()>;
    /// The image of every launch template's default and latest version in `region`.
    async fn template_images(&self, region: &str) -> AwsResult<Vec<TemplateImage>>;
}

/// One launch-template version that launches an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateImage {
    pub template_name: String,
    pub version: i64,
    pub is_default: bool,
    pub image_id: String,
}

/// An SSM parameter as GetParameter reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterInfo {
    pub value: String,
    pub version: i64,
    pub data_type: Option<String>,
}

#[async_trait]
pub trait Parameters: Send + Sync {
    /// `Ok(None)` when there is no such parameter.
    async fn get(&self, region: &str, name: &str) -> AwsResult<Option<ParameterInfo>>;
    /// PutParameter `Type=String`, `DataType=aws:ec2:image`, `Overwrite=true`; the version SSM
    /// answered. SSM validates the value asynchronously: success does not mean it was stored.
    async fn put_image_id(&self, region: &str, name: &str, image_id: &str) -> AwsResult<i64>;
}

/// RunInstances for a boot check: one instance from `image_id` in `subnet_id`, no public IP
/// address, every resource tagged at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    pub image_id: String,
    pub instance_type: String,
    pub subnet_id: String,
    pub security_group_ids: Vec<String>,
    pub client_token: String,
    /// On the instance, its volumes and its network interface, at creation.
    pub tags: Vec<Tag>,
    /// The image's devices: each volume is deleted with the instance (its other mapping
    /// fields, the key included, stay the image's).
    pub delete_on_termination: Vec<String>,
}

/// A volume as the instance's block-device mapping names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachedVolume {
    pub device_name: String,
    pub volume_id: String,
}

/// An instance as DescribeInstances reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceInfo {
    pub instance_id: String,
    pub state: String,
    /// `StateReason` as "code: message".
    pub state_reason: Option<String>,
    /// `LaunchTime`, Unix milliseconds.
    pub launched_at_ms: Option<i64>,
    pub image_id: Option<String>,
    pub tags: Vec<Tag>,
    pub volumes: Vec<AttachedVolume>,
}

/// DescribeInstanceStatus: the system and instance checks (`initializing`, `ok`, `impaired`,
/// `insufficient-data`, `not-applicable`) and, when one is impaired, its details.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusChecks {
    pub system: String,
    pub instance: String,
    pub detail: Option<String>,
}

/// A volume as DescribeVolumes reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeInfo {
    pub volume_id: String,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
}

#[async_trait]
pub trait Instances: Send + Sync {
    /// The launched instance's id (the same one again for a repeated `client_token`).
    async fn launch(&self, region: &str, request: &LaunchRequest) -> AwsResult<String>;
    /// `Ok(None)` when there is no such instance.
    async fn describe_instance(
        &self,
        region: &str,
        instance_id: &str,
    ) -> AwsResult<Option<InstanceInfo>>;
    /// `Ok(None)` while EC2 reports no status for the instance.
    async fn status_checks(
        &self,
        region: &str,
        instance_id: &str,
    ) -> AwsResult<Option<StatusChecks>>;
    async fn describe_volumes(
        &self,
        region: &str,
        volume_ids: &[String],
    ) -> AwsResult<Vec<VolumeInfo>>;
    /// Instances carrying every one of `tags` (empty value: any value) that are not
    /// `terminated`.
    async fn find_instances_tagged(
        &self,
        region: &str,
        tags: &[Tag],
    ) -> AwsResult<Vec<InstanceInfo>>;
    async fn terminate(&self, region: &str, instance_ids: &[String]) -> AwsResult<()>;
    /// Instances launched from any of `image_ids` that are not `shutting-down` or `terminated`.
    async fn instances_of_images(
        &self,
        region: &str,
        image_ids: &[String],
    ) -> AwsResult<Vec<InstanceInfo>>;
}
