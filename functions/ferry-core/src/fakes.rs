//! In-memory fakes of the ports (feature `fakes`): the logic's tests and benchmarks run on
//! them without the local AWS. They count the calls the SDK adapters would make (a listing by
//! tag costs one call per page of [`PAGE_SIZE`](crate::adapters::ec2::PAGE_SIZE) items), so a
//! benchmark can report EC2 calls for fleets the emulator is too slow to seed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::adapters::ec2::PAGE_SIZE;
use crate::config::Config;
use crate::deps::Deps;
use crate::ports::{
    AttachedVolume, AwsError, AwsResult, Clock, CopyImageRequest, CopySnapshotRequest, Events,
    FastRestore, FsrChange, FsrFailure, FsrState, ImageInfo, Images, InstanceInfo, Instances,
    KeyInfo, Keys, LaunchRequest, LaunchTemplateInfo, LaunchTemplates, NewTemplateVersion,
    ParameterInfo, Parameters, SnapshotInfo, Snapshots, StatusChecks, Tag, Tagging, TemplateImage,
    TemplateMapping, TemplateVersionInfo, VolumeInfo, WorkStore,
};
use crate::rules::fsr::is_active;

fn carries(tags: &[Tag], wanted: &[Tag]) -> bool {
    wanted.iter().all(|w| {
        tags.iter()
            .any(|t| t.key == w.key && (w.value.is_empty() || t.value == w.value))
    })
}

fn pages(items: usize) -> usize {
    items.div_ceil(PAGE_SIZE as usize).max(1)
}

/// EC2 in memory: images and snapshots per Region, Fast Snapshot Restore per Region, and the
/// calls made, by action.
pub struct FakeEc2 {
    pub images: Mutex<BTreeMap<String, Vec<ImageInfo>>>,
    pub snapshots: Mutex<BTreeMap<String, Vec<SnapshotInfo>>>,
    /// Every (snapshot, zone) FSR was ever enabled on, with its state, per Region.
    pub fsr: Mutex<BTreeMap<String, Vec<FsrState>>>,
    /// AWS's own FSR quota: distinct snapshots enabling, optimizing or enabled per Region.
    /// Enabling one more fails with `FastSnapshotRestoreLimitExceeded`, as the emulator does.
    pub fsr_quota: AtomicUsize,
    pub calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl Default for FakeEc2 {
    fn default() -> Self {
        FakeEc2 {
            images: Mutex::default(),
            snapshots: Mutex::default(),
            fsr: Mutex::default(),
            fsr_quota: AtomicUsize::new(5),
            calls: Mutex::default(),
        }
    }
}

impl FakeEc2 {
    fn count(&self, action: &'static str, calls: usize) {
        *self.calls.lock().unwrap().entry(action).or_insert(0) += calls;
    }

    /// Every call made so far.
    pub fn total_calls(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }

    pub fn add_image(&self, region: &str, image: ImageInfo) {
        self.images
            .lock()
            .unwrap()
            .entry(region.into())
            .or_default()
            .push(image);
    }

    pub fn add_snapshot(&self, region: &str, snapshot: SnapshotInfo) {
        self.snapshots
            .lock()
            .unwrap()
            .entry(region.into())
            .or_default()
            .push(snapshot);
    }

    /// Calls made of `action`.
    pub fn calls_of(&self, action: &str) -> usize {
        self.calls.lock().unwrap().get(action).copied().unwrap_or(0)
    }

    /// FSR on `snapshot_id` in `zone` of `region`, in `state`, as if someone else set it.
    pub fn set_fsr(&self, region: &str, snapshot_id: &str, zone: &str, state: &str) {
        let mut fsr = self.fsr.lock().unwrap();
        let entries = fsr.entry(region.into()).or_default();
        entries.retain(|e| !(e.snapshot_id == snapshot_id && e.availability_zone == zone));
        entries.push(FsrState {
            snapshot_id: snapshot_id.into(),
            availability_zone: zone.into(),
            state: state.into(),
        });
    }
}

fn unsupported(operation: &str) -> AwsError {
    AwsError::Service {
        code: "UnsupportedOperation".into(),
        message: format!("{operation} is not faked"),
    }
}

#[async_trait]
impl Images for FakeEc2 {
    async fn describe_image(&self, region: &str, image_id: &str) -> AwsResult<Option<ImageInfo>> {
        self.count("DescribeImages", 1);
        let images = self.images.lock().unwrap();
        Ok(images
            .get(region)
            .and_then(|all| all.iter().find(|i| i.image_id == image_id).cloned()))
    }

    async fn copy_image(&self, _: &str, _: &CopyImageRequest) -> AwsResult<String> {
        Err(unsupported("CopyImage"))
    }

    async fn find_images_tagged(&self, region: &str, tags: &[Tag]) -> AwsResult<Vec<ImageInfo>> {
        let images = self.images.lock().unwrap();
        let found: Vec<ImageInfo> = images
            .get(region)
            .map(|all| {
                all.iter()
                    .filter(|i| carries(&i.tags, tags))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        drop(images);
        self.count("DescribeImages", pages(found.len()));
        Ok(found)
    }

    async fn deregister_image(&self, region: &str, image_id: &str) -> AwsResult<()> {
        self.count("DeregisterImage", 1);
        let mut images = self.images.lock().unwrap();
        images
            .entry(region.into())
            .or_default()
            .retain(|i| i.image_id != image_id);
        Ok(())
    }

    async fn deprecate_image(&self, region: &str, image_id: &str, _at: u64) -> AwsResult<()> {
        self.count("EnableImageDeprecation", 1);
        let images = self.images.lock().unwrap();
        match images
            .get(region)
            .and_then(|images| images.iter().find(|i| i.image_id == image_id))
        {
            Some(_) => Ok(()),
            None => Err(AwsError::Service {
                code: "InvalidAMIID.NotFound".into(),
                message: format!("The image id '[{image_id}]' does not exist"),
            }),
        }
    }
}

#[async_trait]
impl Snapshots for FakeEc2 {
    async fn describe_snapshots(
        &self,
        region: &str,
        ids: &[String],
    ) -> AwsResult<Vec<SnapshotInfo>> {
        self.count("DescribeSnapshots", 1);
        let snapshots = self.snapshots.lock().unwrap();
        Ok(snapshots
            .get(region)
            .map(|all| {
                all.iter()
                    .filter(|s| ids.contains(&s.snapshot_id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn find_snapshots_tagged(
        &self,
        region: &str,
        tags: &[Tag],
    ) -> AwsResult<Vec<SnapshotInfo>> {
        let snapshots = self.snapshots.lock().unwrap();
        let found: Vec<SnapshotInfo> = snapshots
            .get(region)
            .map(|all| {
                all.iter()
                    .filter(|s| carries(&s.tags, tags))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        drop(snapshots);
        self.count("DescribeSnapshots", pages(found.len()));
        Ok(found)
    }

    async fn copy_snapshot(&self, _: &str, _: &CopySnapshotRequest) -> AwsResult<String> {
        Err(unsupported("CopySnapshot"))
    }

    async fn delete_snapshot(&self, region: &str, snapshot_id: &str) -> AwsResult<()> {
        self.count("DeleteSnapshot", 1);
        let mut snapshots = self.snapshots.lock().unwrap();
        snapshots
            .entry(region.into())
            .or_default()
            .retain(|s| s.snapshot_id != snapshot_id);
        Ok(())
    }
}

#[async_trait]
impl Tagging for FakeEc2 {
    async fn create_tags(&self, region: &str, ids: &[String], tags: &[Tag]) -> AwsResult<()> {
        self.count("CreateTags", 1);
        let overwrite = |on: &mut Vec<Tag>| {
            on.retain(|t| !tags.iter().any(|n| n.key == t.key));
            on.extend(tags.iter().cloned());
        };
        let mut images = self.images.lock().unwrap();
        for image in images.entry(region.into()).or_default() {
            if ids.contains(&image.image_id) {
                overwrite(&mut image.tags);
            }
        }
        let mut snapshots = self.snapshots.lock().unwrap();
        for snapshot in snapshots.entry(region.into()).or_default() {
            if ids.contains(&snapshot.snapshot_id) {
                overwrite(&mut snapshot.tags);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl FastRestore for FakeEc2 {
    async fn availability_zones(&self, region: &str) -> AwsResult<Vec<String>> {
        Ok(["a", "b", "c"]
            .iter()
            .map(|z| format!("{region}{z}"))
            .collect())
    }
    /// Enabling a pair already active leaves it as it is; a snapshot that would take the
    /// Region past [`FakeEc2::fsr_quota`] fails in every requested zone.
    async fn enable(
        &self,
        region: &str,
        snapshot_ids: &[String],
        zones: &[String],
    ) -> AwsResult<FsrChange> {
        self.count("EnableFastSnapshotRestores", 1);
        let quota = self.fsr_quota.load(Ordering::SeqCst);
        let mut fsr = self.fsr.lock().unwrap();
        let entries = fsr.entry(region.into()).or_default();
        let mut change = FsrChange::default();
        for snapshot_id in snapshot_ids {
            let mut counted: Vec<&str> = entries
                .iter()
                .filter(|e| is_active(&e.state))
                .map(|e| e.snapshot_id.as_str())
                .collect();
            counted.sort_unstable();
            counted.dedup();
            if !counted.contains(&snapshot_id.as_str()) && counted.len() >= quota {
                change.failed.extend(zones.iter().map(|zone| FsrFailure {
                    snapshot_id: snapshot_id.clone(),
                    availability_zone: zone.clone(),
                    code: "FastSnapshotRestoreLimitExceeded".into(),
                    message: format!("{quota} snapshots already use FSR in {region}"),
                }));
                continue;
            }
            for zone in zones {
                let pair =
                    |e: &FsrState| &e.snapshot_id == snapshot_id && &e.availability_zone == zone;
                match entries.iter_mut().find(|e| pair(e)) {
                    Some(entry) if is_active(&entry.state) => {}
                    Some(entry) => entry.state = "enabling".into(),
                    None => entries.push(FsrState {
                        snapshot_id: snapshot_id.clone(),
                        availability_zone: zone.clone(),
                        state: "enabling".into(),
                    }),
                }
                let entry = entries.iter().find(|e| pair(e)).unwrap();
                change.succeeded.push(entry.clone());
            }
        }
        Ok(change)
    }

    /// Every requested pair becomes `disabling`; one never enabled answers `disabled`.
    async fn disable(
        &self,
        region: &str,
        snapshot_ids: &[String],
        zones: &[String],
    ) -> AwsResult<FsrChange> {
        self.count("DisableFastSnapshotRestores", 1);
        let mut fsr = self.fsr.lock().unwrap();
        let entries = fsr.entry(region.into()).or_default();
        let mut change = FsrChange::default();
        for snapshot_id in snapshot_ids {
            for zone in zones {
                let state = match entries
                    .iter_mut()
                    .find(|e| &e.snapshot_id == snapshot_id && &e.availability_zone == zone)
                {
                    Some(entry) => {
                        entry.state = "disabling".into();
                        entry.state.clone()
                    }
                    None => "disabled".into(),
                };
                change.succeeded.push(FsrState {
                    snapshot_id: snapshot_id.clone(),
                    availability_zone: zone.clone(),
                    state,
                });
            }
        }
        Ok(change)
    }

    async fn describe(&self, region: &str, snapshot_ids: &[String]) -> AwsResult<Vec<FsrState>> {
        self.count("DescribeFastSnapshotRestores", 1);
        Ok(self
            .fsr
            .lock()
            .unwrap()
            .get(region)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| snapshot_ids.is_empty() || snapshot_ids.contains(&e.snapshot_id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// KMS in memory: keys per Region, found by ARN, key id or one of their aliases.
#[derive(Default)]
pub struct FakeKeys {
    pub keys: Mutex<Vec<(String, KeyInfo, Vec<String>)>>,
}

impl FakeKeys {
    /// Adds `key` in `region`, also known by `aliases`.
    pub fn add_key(&self, region: &str, key: KeyInfo, aliases: &[&str]) {
        self.keys.lock().unwrap().push((
            region.into(),
            key,
            aliases.iter().map(|a| a.to_string()).collect(),
        ));
    }
}

#[async_trait]
impl Keys for FakeKeys {
    async fn describe_key(&self, region: &str, key_id: &str) -> AwsResult<KeyInfo> {
        self.keys
            .lock()
            .unwrap()
            .iter()
            .find(|(r, key, aliases)| {
                r == region
                    && (key.arn == key_id
                        || key.key_id == key_id
                        || aliases.iter().any(|a| a == key_id))
            })
            .map(|(_, key, _)| key.clone())
            .ok_or_else(|| AwsError::Service {
                code: "NotFoundException".into(),
                message: format!("{key_id} is not faked in {region}"),
            })
    }
}

/// EventBridge that keeps what it is given, after refusing the first [`FakeEvents::refusals`]
/// publishes as an unavailable PutEvents would.
#[derive(Default)]
pub struct FakeEvents {
    pub published: Mutex<Vec<(String, serde_json::Value)>>,
    pub refusals: AtomicUsize,
}

#[async_trait]
impl Events for FakeEvents {
    async fn publish(
        &self,
        detail_type: &str,
        detail: &serde_json::Value,
        _: &[String],
    ) -> AwsResult<()> {
        let refused = self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            return Err(AwsError::Service {
                code: "InternalException".into(),
                message: "PutEvents is unavailable".into(),
            });
        }
        self.published
            .lock()
            .unwrap()
            .push((detail_type.into(), detail.clone()));
        Ok(())
    }
}

/// S3 in memory: `(bucket, key)` → body, and how many bytes were written.
#[derive(Default)]
pub struct MemoryStore {
    pub objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    pub bytes_written: AtomicUsize,
}

#[async_trait]
impl WorkStore for MemoryStore {
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> AwsResult<()> {
        self.bytes_written.fetch_add(body.len(), Ordering::SeqCst);
        self.objects
            .lock()
            .unwrap()
            .insert((bucket.into(), key.into()), body);
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> AwsResult<Option<Vec<u8>>> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(&(bucket.to_string(), key.to_string()))
            .cloned())
    }

    async fn list(&self, bucket: &str, prefix: &str) -> AwsResult<Vec<String>> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .keys()
            .filter(|(b, k)| b == bucket && k.starts_with(prefix))
            .map(|(_, k)| k.clone())
            .collect())
    }
}

/// A clock that says what it is told.
pub struct FixedClock(pub AtomicU64);

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One launch template in memory: its versions, and the ClientTokens it has answered.
#[derive(Debug, Clone, Default)]
pub struct FakeTemplate {
    pub info: LaunchTemplateInfo,
    pub versions: Vec<TemplateVersionInfo>,
    pub tokens: BTreeMap<String, (NewTemplateVersion, i64)>,
}

/// Launch templates in memory, per Region, as EC2 keeps them: a new version copies its source
/// version and replaces what the request gives; a repeated ClientToken answers the same version
/// (other parameters with it: `IdempotentParameterMismatch`); a missing template answers
/// `InvalidLaunchTemplateName.NotFoundException` / `InvalidLaunchTemplateId.NotFound`.
#[derive(Default)]
pub struct FakeLaunchTemplates {
    pub templates: Mutex<BTreeMap<String, Vec<FakeTemplate>>>,
    pub calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl FakeLaunchTemplates {
    fn count(&self, action: &'static str) {
        *self.calls.lock().unwrap().entry(action).or_insert(0) += 1;
    }

    /// Calls made of `action`.
    pub fn calls_of(&self, action: &str) -> usize {
        self.calls.lock().unwrap().get(action).copied().unwrap_or(0)
    }

    /// A template `name` in `region` whose version 1 (the default) launches `image_id` with
    /// `mappings`; answers its id.
    pub fn add_template(
        &self,
        region: &str,
        name: &str,
        image_id: &str,
        mappings: Vec<TemplateMapping>,
    ) -> String {
        let mut templates = self.templates.lock().unwrap();
        let all = templates.entry(region.into()).or_default();
        let template_id = format!("lt-{:017x}", all.len() + 1);
        all.push(FakeTemplate {
            info: LaunchTemplateInfo {
                template_id: template_id.clone(),
                name: name.into(),
                default_version: 1,
                latest_version: 1,
            },
            versions: vec![TemplateVersionInfo {
                version: 1,
                description: None,
                image_id: Some(image_id.into()),
                is_default: true,
                block_device_mappings: mappings,
            }],
            tokens: BTreeMap::new(),
        });
        template_id
    }

    /// The template named `name` in `region`, as it is now.
    pub fn template(&self, region: &str, name: &str) -> Option<FakeTemplate> {
        self.templates
            .lock()
            .unwrap()
            .get(region)
            .and_then(|all| all.iter().find(|t| t.info.name == name).cloned())
    }

    fn with_template<T>(
        &self,
        region: &str,
        template_id: &str,
        f: impl FnOnce(&mut FakeTemplate) -> AwsResult<T>,
    ) -> AwsResult<T> {
        let mut templates = self.templates.lock().unwrap();
        let template = templates
            .get_mut(region)
            .and_then(|all| all.iter_mut().find(|t| t.info.template_id == template_id))
            .ok_or_else(|| AwsError::Service {
                code: "InvalidLaunchTemplateId.NotFound".into(),
                message: format!("The specified launch template, with template ID {template_id}, does not exist."),
            })?;
        f(template)
    }
}

#[async_trait]
impl LaunchTemplates for FakeLaunchTemplates {
    async fn describe_template(
        &self,
        region: &str,
        name: &str,
    ) -> AwsResult<Option<LaunchTemplateInfo>> {
        self.count("DescribeLaunchTemplates");
        Ok(self.template(region, name).map(|t| t.info))
    }

    async fn versions_with_image(
        &self,
        region: &str,
        template_id: &str,
        image_id: &str,
    ) -> AwsResult<Vec<TemplateVersionInfo>> {
        self.count("DescribeLaunchTemplateVersions");
        self.with_template(region, template_id, |t| {
            Ok(t.versions
                .iter()
                .filter(|v| v.image_id.as_deref() == Some(image_id))
                .cloned()
                .collect())
        })
    }

    async fn latest_version(
        &self,
        region: &str,
        template_id: &str,
    ) -> AwsResult<TemplateVersionInfo> {
        self.count("DescribeLaunchTemplateVersions");
        self.with_template(region, template_id, |t| {
            Ok(t.versions.last().cloned().unwrap_or_default())
        })
    }

    async fn create_version(&self, region: &str, request: &NewTemplateVersion) -> AwsResult<i64> {
        self.count("CreateLaunchTemplateVersion");
        self.with_template(region, &request.template_id, |t| {
            if let Some((earlier, version)) = t.tokens.get(&request.client_token) {
                return if earlier == request {
                    Ok(*version)
                } else {
                    Err(AwsError::Service {
                        code: "IdempotentParameterMismatch".into(),
                        message: "the ClientToken was used with other parameters".into(),
                    })
                };
            }
            let source = match request.source_version.as_str() {
                "$Latest" => t.versions.last().cloned(),
                "$Default" => t.versions.iter().find(|v| v.is_default).cloned(),
                number => t
                    .versions
                    .iter()
                    .find(|v| v.version.to_string() == number)
                    .cloned(),
            }
            .ok_or_else(|| AwsError::Service {
                code: "InvalidLaunchTemplateId.VersionNotFound".into(),
                message: format!("no version {}", request.source_version),
            })?;
            let version = t.info.latest_version + 1;
            t.versions.push(TemplateVersionInfo {
                version,
                description: Some(request.description.clone()),
                image_id: Some(request.image_id.clone()),
                is_default: false,
                block_device_mappings: if request.block_device_mappings.is_empty() {
                    source.block_device_mappings
                } else {
                    request.block_device_mappings.clone()
                },
            });
            t.info.latest_version = version;
            t.tokens
                .insert(request.client_token.clone(), (request.clone(), version));
            Ok(version)
        })
    }

    async fn set_default_version(
        &self,
        region: &str,
        template_id: &str,
        version: i64,
    ) -> AwsResult<()> {
        self.count("ModifyLaunchTemplate");
        self.with_template(region, template_id, |t| {
            if !t.versions.iter().any(|v| v.version == version) {
                return Err(AwsError::Service {
                    code: "InvalidLaunchTemplateId.VersionNotFound".into(),
                    message: format!("no version {version}"),
                });
            }
            for v in &mut t.versions {
                v.is_default = v.version == version;
            }
            t.info.default_version = version;
            Ok(())
        })
    }

    async fn template_images(&self, region: &str) -> AwsResult<Vec<TemplateImage>> {
        self.count("DescribeLaunchTemplates");
        let templates = self.templates.lock().unwrap();
        Ok(templates
            .get(region)
            .into_iter()
            .flatten()
            .flat_map(|t| {
                let latest = t.versions.last();
                t.versions
                    .iter()
                    .filter(move |v| v.is_default || Some(*v) == latest)
                    .filter_map(|v| {
                        Some(TemplateImage {
                            template_name: t.info.name.clone(),
                            version: v.version,
                            is_default: v.is_default,
                            image_id: v.image_id.clone()?,
                        })
                    })
            })
            .collect())
    }
}

/// SSM parameters in memory, per Region. `aws:ec2:image` values are validated as AWS does,
/// after answering: a value that names no image of [`FakeEc2`] in the Region (or any value,
/// with [`FakeParameters::validation_fails`]) answers success with the version it would have
/// had, and changes nothing.
pub struct FakeParameters {
    pub ec2: Arc<FakeEc2>,
    /// SSM's asynchronous validation drops every value (as when the caller lacks
    /// `ec2:DescribeImages`).
    pub validation_fails: std::sync::atomic::AtomicBool,
    pub parameters: Mutex<BTreeMap<(String, String), ParameterInfo>>,
    pub calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl FakeParameters {
    pub fn new(ec2: Arc<FakeEc2>) -> Self {
        FakeParameters {
            ec2,
            validation_fails: Default::default(),
            parameters: Mutex::default(),
            calls: Mutex::default(),
        }
    }

    /// Calls made of `action`.
    pub fn calls_of(&self, action: &str) -> usize {
        self.calls.lock().unwrap().get(action).copied().unwrap_or(0)
    }

    /// The parameter as it is now.
    pub fn parameter(&self, region: &str, name: &str) -> Option<ParameterInfo> {
        self.parameters
            .lock()
            .unwrap()
            .get(&(region.to_string(), name.to_string()))
            .cloned()
    }
}

#[async_trait]
impl Parameters for FakeParameters {
    async fn get(&self, region: &str, name: &str) -> AwsResult<Option<ParameterInfo>> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry("GetParameter")
            .or_insert(0) += 1;
        Ok(self.parameter(region, name))
    }

    async fn put_image_id(&self, region: &str, name: &str, image_id: &str) -> AwsResult<i64> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry("PutParameter")
            .or_insert(0) += 1;
        let registered = !self.validation_fails.load(Ordering::SeqCst)
            && self
                .ec2
                .images
                .lock()
                .unwrap()
                .get(region)
                .is_some_and(|all| all.iter().any(|i| i.image_id == image_id));
        let mut parameters = self.parameters.lock().unwrap();
        let key = (region.to_string(), name.to_string());
        let version = parameters.get(&key).map_or(1, |p| p.version + 1);
        if registered {
            parameters.insert(
                key,
                ParameterInfo {
                    value: image_id.into(),
                    version,
                    data_type: Some("aws:ec2:image".into()),
                },
            );
        }
        Ok(version)
    }
}

/// One instance in memory: as DescribeInstances and DescribeInstanceStatus would show it, and
/// its volumes.
#[derive(Debug, Clone, Default)]
pub struct FakeInstance {
    pub region: String,
    pub info: InstanceInfo,
    pub checks: Option<StatusChecks>,
    pub volumes: Vec<VolumeInfo>,
    pub request: Option<LaunchRequest>,
}

/// EC2 instances in memory. A launch makes one `pending` instance from an image of [`FakeEc2`],
/// one volume per device under its snapshot's key (as EBS does); a repeated ClientToken answers
/// the same instance (other parameters: `IdempotentParameterMismatch`). Tests move instances
/// along with [`FakeInstances::set_state`] and [`FakeInstances::set_checks`].
pub struct FakeInstances {
    pub ec2: Arc<FakeEc2>,
    pub instances: Mutex<Vec<FakeInstance>>,
    pub tokens: Mutex<BTreeMap<String, (LaunchRequest, String)>>,
    /// The next launch fails with this error.
    pub refuse_next: Mutex<Option<AwsError>>,
    pub calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl FakeInstances {
    pub fn new(ec2: Arc<FakeEc2>) -> Self {
        FakeInstances {
            ec2,
            instances: Mutex::default(),
            tokens: Mutex::default(),
            refuse_next: Mutex::default(),
            calls: Mutex::default(),
        }
    }

    fn count(&self, action: &'static str) {
        *self.calls.lock().unwrap().entry(action).or_insert(0) += 1;
    }

    pub fn calls_of(&self, action: &str) -> usize {
        self.calls.lock().unwrap().get(action).copied().unwrap_or(0)
    }

    pub fn instance(&self, instance_id: &str) -> Option<FakeInstance> {
        self.instances
            .lock()
            .unwrap()
            .iter()
            .find(|i| i.info.instance_id == instance_id)
            .cloned()
    }

    /// Instances neither `shutting-down` nor `terminated`.
    pub fn live(&self) -> Vec<FakeInstance> {
        self.instances
            .lock()
            .unwrap()
            .iter()
            .filter(|i| !matches!(i.info.state.as_str(), "shutting-down" | "terminated"))
            .cloned()
            .collect()
    }

    fn with_instance<T>(&self, instance_id: &str, f: impl FnOnce(&mut FakeInstance) -> T) -> T {
        let mut instances = self.instances.lock().unwrap();
        let instance = instances
            .iter_mut()
            .find(|i| i.info.instance_id == instance_id)
            .unwrap_or_else(|| panic!("no instance {instance_id}"));
        f(instance)
    }

    pub fn set_state(&self, instance_id: &str, state: &str, reason: Option<&str>) {
        self.with_instance(instance_id, |i| {
            i.info.state = state.into();
            i.info.state_reason = reason.map(str::to_string);
        });
    }

    pub fn set_checks(&self, instance_id: &str, system: &str, instance: &str) {
        self.with_instance(instance_id, |i| {
            i.checks = Some(StatusChecks {
                system: system.into(),
                instance: instance.into(),
                detail: (system == "impaired" || instance == "impaired")
                    .then(|| "reachability failed".to_string()),
            });
        });
    }

    /// Puts every volume of the instance under `key` (a launch that ignored the AMI's key).
    pub fn rekey_volumes(&self, instance_id: &str, key: &str) {
        self.with_instance(instance_id, |i| {
            for volume in &mut i.volumes {
                volume.encrypted = true;
                volume.kms_key_id = Some(key.into());
            }
        });
    }

    /// An instance someone else runs, with `tags`.
    pub fn add_instance(&self, region: &str, info: InstanceInfo) {
        self.instances.lock().unwrap().push(FakeInstance {
            region: region.into(),
            info,
            ..Default::default()
        });
    }
}

#[async_trait]
impl Instances for FakeInstances {
    async fn launch(&self, region: &str, request: &LaunchRequest) -> AwsResult<String> {
        self.count("RunInstances");
        if let Some(error) = self.refuse_next.lock().unwrap().take() {
            return Err(error);
        }
        if let Some((earlier, id)) = self.tokens.lock().unwrap().get(&request.client_token) {
            return if earlier == request {
                Ok(id.clone())
            } else {
                Err(AwsError::Service {
                    code: "IdempotentParameterMismatch".into(),
                    message: "the ClientToken was used with other parameters".into(),
                })
            };
        }
        let image = self
            .ec2
            .images
            .lock()
            .unwrap()
            .get(region)
            .and_then(|images| {
                images
                    .iter()
                    .find(|i| i.image_id == request.image_id)
                    .cloned()
            })
            .ok_or_else(|| AwsError::Service {
                code: "InvalidAMIID.NotFound".into(),
                message: format!("The image id '[{}]' does not exist", request.image_id),
            })?;
        let snapshots = self
            .ec2
            .snapshots
            .lock()
            .unwrap()
            .get(region)
            .cloned()
            .unwrap_or_default();
        let mut instances = self.instances.lock().unwrap();
        let instance_id = format!("i-{:017x}", instances.len() + 1);
        let volumes: Vec<(AttachedVolume, VolumeInfo)> = image
            .snapshots
            .iter()
            .enumerate()
            .map(|(n, device)| {
                let volume_id = format!("vol-{:08x}{:09x}", instances.len() + 1, n);
                let snapshot = snapshots
                    .iter()
                    .find(|s| s.snapshot_id == device.snapshot_id);
                (
                    AttachedVolume {
                        device_name: device.device_name.clone(),
                        volume_id: volume_id.clone(),
                    },
                    VolumeInfo {
                        volume_id,
                        encrypted: snapshot.is_some_and(|s| s.encrypted),
                        kms_key_id: snapshot.and_then(|s| s.kms_key_id.clone()),
                    },
                )
            })
            .collect();
        instances.push(FakeInstance {
            region: region.into(),
            info: InstanceInfo {
                instance_id: instance_id.clone(),
                state: "pending".into(),
                image_id: Some(request.image_id.clone()),
                tags: request.tags.clone(),
                volumes: volumes.iter().map(|(a, _)| a.clone()).collect(),
                ..Default::default()
            },
            checks: None,
            volumes: volumes.into_iter().map(|(_, v)| v).collect(),
            request: Some(request.clone()),
        });
        self.tokens.lock().unwrap().insert(
            request.client_token.clone(),
            (request.clone(), instance_id.clone()),
        );
        Ok(instance_id)
    }

    async fn describe_instance(
        &self,
        region: &str,
        instance_id: &str,
    ) -> AwsResult<Option<InstanceInfo>> {
        self.count("DescribeInstances");
        Ok(self
            .instance(instance_id)
            .filter(|i| i.region == region)
            .map(|i| i.info))
    }

    async fn status_checks(
        &self,
        region: &str,
        instance_id: &str,
    ) -> AwsResult<Option<StatusChecks>> {
        self.count("DescribeInstanceStatus");
        Ok(self
            .instance(instance_id)
            .filter(|i| i.region == region)
            .and_then(|i| i.checks))
    }

    async fn describe_volumes(
        &self,
        region: &str,
        volume_ids: &[String],
    ) -> AwsResult<Vec<VolumeInfo>> {
        self.count("DescribeVolumes");
        Ok(self
            .instances
            .lock()
            .unwrap()
            .iter()
            .filter(|i| i.region == region)
            .flat_map(|i| i.volumes.iter())
            .filter(|v| volume_ids.contains(&v.volume_id))
            .cloned()
            .collect())
    }

    async fn find_instances_tagged(
        &self,
        region: &str,
        tags: &[Tag],
    ) -> AwsResult<Vec<InstanceInfo>> {
        self.count("DescribeInstances");
        Ok(self
            .instances
            .lock()
            .unwrap()
            .iter()
            .filter(|i| i.region == region && i.info.state != "terminated")
            .filter(|i| carries(&i.info.tags, tags))
            .map(|i| i.info.clone())
            .collect())
    }

    async fn terminate(&self, region: &str, instance_ids: &[String]) -> AwsResult<()> {
        self.count("TerminateInstances");
        for id in instance_ids {
            let found = self.instance(id).filter(|i| i.region == region);
            if found.is_none() {
                return Err(AwsError::Service {
                    code: "InvalidInstanceID.NotFound".into(),
                    message: format!("The instance ID '{id}' does not exist"),
                });
            }
            self.with_instance(id, |i| {
                if i.info.state != "terminated" {
                    i.info.state = "shutting-down".into();
                    i.info.state_reason =
                        Some("Client.UserInitiatedShutdown: User initiated shutdown".into());
                }
            });
        }
        Ok(())
    }

    async fn instances_of_images(
        &self,
        region: &str,
        image_ids: &[String],
    ) -> AwsResult<Vec<InstanceInfo>> {
        self.count("DescribeInstances");
        Ok(self
            .instances
            .lock()
            .unwrap()
            .iter()
            .filter(|i| i.region == region)
            .filter(|i| !matches!(i.info.state.as_str(), "shutting-down" | "terminated"))
            .filter(|i| {
                i.info
                    .image_id
                    .as_ref()
                    .is_some_and(|id| image_ids.contains(id))
            })
            .map(|i| i.info.clone())
            .collect())
    }
}

/// The fakes behind one set of handler dependencies.
pub struct FakeWorld {
    pub ec2: Arc<FakeEc2>,
    pub keys: Arc<FakeKeys>,
    pub store: Arc<MemoryStore>,
    pub events: Arc<FakeEvents>,
    pub launch_templates: Arc<FakeLaunchTemplates>,
    pub parameters: Arc<FakeParameters>,
    pub instances: Arc<FakeInstances>,
    pub clock: Arc<FixedClock>,
    pub deps: Deps,
}

impl FakeWorld {
    /// Handlers over fresh fakes, with `config` (a work bucket is configured if it names none).
    pub fn new(config: Config) -> FakeWorld {
        let ec2 = Arc::new(FakeEc2::default());
        let keys = Arc::new(FakeKeys::default());
        let store = Arc::new(MemoryStore::default());
        let events = Arc::new(FakeEvents::default());
        let launch_templates = Arc::new(FakeLaunchTemplates::default());
        let parameters = Arc::new(FakeParameters::new(ec2.clone()));
        let instances = Arc::new(FakeInstances::new(ec2.clone()));
        let clock = Arc::new(FixedClock(AtomicU64::new(1_764_547_200)));
        let config = Config {
            work_bucket: config.work_bucket.or_else(|| Some("ferry-work".into())),
            ..config
        };
        let deps = Deps {
            config,
            keys: keys.clone(),
            images: ec2.clone(),
            snapshots: ec2.clone(),
            tagging: ec2.clone(),
            fast_restore: ec2.clone(),
            events: events.clone(),
            launch_templates: launch_templates.clone(),
            parameters: parameters.clone(),
            instances: instances.clone(),
            work: store.clone(),
            clock: clock.clone(),
        };
        FakeWorld {
            ec2,
            keys,
            store,
            events,
            launch_templates,
            parameters,
            instances,
            clock,
            deps,
        }
    }

    /// Sets the clock every handler reads (Unix seconds).
    pub fn set_clock(&self, now: u64) {
        self.clock.0.store(now, Ordering::SeqCst);
    }
}

/// A JSON fixture from the repository's `tests/fixtures/` (`path` relative to it).
pub fn fixture(path: &str) -> serde_json::Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

impl FakeEc2 {
    /// The replica a verified document describes, in its destination Region: its AMI (for an AMI
    /// replication) and every verified snapshot, completed and encrypted.
    pub fn add_verified_replica(&self, document: &serde_json::Value) {
        let region = document["destination"]["region"]
            .as_str()
            .unwrap_or_default();
        if document["source"]["imageId"].is_string() {
            self.add_image(
                region,
                ImageInfo {
                    image_id: document["copy"]["destinationId"]
                        .as_str()
                        .unwrap_or_default()
                        .into(),
                    state: "available".into(),
                    ..Default::default()
                },
            );
        }
        let verified = document["evidence"]["verification"]["snapshots"].as_array();
        for snapshot in verified.into_iter().flatten() {
            self.add_snapshot(
                region,
                SnapshotInfo {
                    snapshot_id: snapshot["snapshotId"].as_str().unwrap_or_default().into(),
                    state: "completed".into(),
                    encrypted: true,
                    ..Default::default()
                },
            );
        }
    }
}
