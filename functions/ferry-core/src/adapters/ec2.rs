use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::types::{Filter, ResourceType, TagSpecification};
use aws_sdk_ec2::Client;
use aws_smithy_types::date_time::Format;

use super::associated_keys::{AssociatedKeys, AssociatedKeysReader};
use super::sdk::{aws_error, Regional};
use crate::ports::{
    AwsError, AwsResult, CopyImageRequest, CopySnapshotRequest, DeviceSnapshot, FastRestore,
    FsrChange, FsrFailure, FsrState, ImageInfo, Images, SnapshotInfo, Snapshots, Tag, Tagging,
};

pub struct Ec2Adapter {
    pub(super) clients: Regional<Client>,
}

impl Ec2Adapter {
    pub fn new(config: &SdkConfig) -> Self {
        let config = config.clone();
        Self::with_clients(move |region| {
            Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&config)
                    .region(Region::new(region.to_string()))
                    .build(),
            )
        })
    }

    /// Builds the adapter over any client factory (a mocked client in adapter tests).
    pub fn with_clients(make: impl Fn(&str) -> Client + Send + Sync + 'static) -> Self {
        Ec2Adapter {
            clients: Regional::new(make),
        }
    }
}

pub(super) fn sdk_tags(tags: &[Tag]) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter()
        .map(|t| {
            aws_sdk_ec2::types::Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build()
        })
        .collect()
}

pub(super) fn domain_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Vec<Tag> {
    tags.iter()
        .map(|t| Tag::new(t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect()
}

/// `tag:KEY=VALUE` filters; an empty value asks only for the key (`tag-key`).
pub(super) fn tag_filters(tags: &[Tag]) -> Vec<Filter> {
    tags.iter()
        .map(|t| match t.value.as_str() {
            "" => Filter::builder().name("tag-key").values(&t.key).build(),
            value => Filter::builder()
                .name(format!("tag:{}", t.key))
                .values(value)
                .build(),
        })
        .collect()
}

pub(super) fn tag_specification(resource_type: ResourceType, tags: &[Tag]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(sdk_tags(tags)))
        .build()
}

/// Items per Describe* page when listing by tag: EC2's maximum for DescribeImages and
/// DescribeSnapshots, so a 10,000-source Region is listed in 10 calls.
pub const PAGE_SIZE: i32 = 1000;

/// An RFC 3339 time EC2 printed (`CreationDate`), as Unix milliseconds.
fn unix_millis(date: &str) -> Option<i64> {
    aws_smithy_types::DateTime::from_str(date, Format::DateTime)
        .ok()?
        .to_millis()
        .ok()
}
fn image_info(image: &aws_sdk_ec2::types::Image) -> ImageInfo {
    ImageInfo {
        image_id: image.image_id().unwrap_or_default().to_string(),
        state: image
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        state_reason: image
            .state_reason()
            .map(|r| format!("{}: {}", r.code().unwrap_or("?"), r.message().unwrap_or(""))),
        root_device_type: image
            .root_device_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        snapshots: image
            .block_device_mappings()
            .iter()
            .filter_map(|m| {
                let ebs = m.ebs()?;
                Some(DeviceSnapshot {
                    device_name: m.device_name().unwrap_or_default().to_string(),
                    snapshot_id: ebs.snapshot_id()?.to_string(),
                    encrypted: ebs.encrypted().unwrap_or(false),
                })
            })
            .collect(),
        tags: domain_tags(image.tags()),
        created_at_ms: image.creation_date().and_then(unix_millis),
        source_image_id: image.source_image_id().map(str::to_string),
        source_image_region: image.source_image_region().map(str::to_string),
    }
}

fn snapshot_info(
    snapshot: &aws_sdk_ec2::types::Snapshot,
    associated: &AssociatedKeys,
) -> SnapshotInfo {
    SnapshotInfo {
        snapshot_id: snapshot.snapshot_id().unwrap_or_default().to_string(),
        state: snapshot
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        state_message: snapshot
            .state_message()
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        progress: snapshot.progress().map(str::to_string),
        encrypted: snapshot.encrypted().unwrap_or(false),
        kms_key_id: snapshot.kms_key_id().map(str::to_string),
        associated_kms_key_ids: snapshot
            .snapshot_id()
            .and_then(|id| associated.get(id))
            .cloned()
            .unwrap_or_default(),
        tags: domain_tags(snapshot.tags()),
        created_at_ms: snapshot.start_time().and_then(|t| t.to_millis().ok()),
        full_size_bytes: snapshot
            .full_snapshot_size_in_bytes()
            .and_then(|bytes| u64::try_from(bytes).ok()),
        completed_at: snapshot
            .completion_time()
            .and_then(|t| u64::try_from(t.secs()).ok()),
    }
}

/// One DescribeSnapshots call: its snapshots, with the associated keys its raw response lists
/// (the SDK does not model them: see [`super::associated_keys`]), and the next page's token.
async fn describe_snapshots_page(
    request: aws_sdk_ec2::operation::describe_snapshots::builders::DescribeSnapshotsFluentBuilder,
) -> AwsResult<(Vec<SnapshotInfo>, Option<String>)> {
    let reader = AssociatedKeysReader::default();
    let output = request
        .customize()
        .interceptor(reader.clone())
        .send()
        .await
        .map_err(aws_error)?;
    let associated = reader.take().ok_or_else(|| {
        AwsError::Transport(
            "DescribeSnapshots answered, but its associatedKmsKeySet could not be read".into(),
        )
    })?;
    Ok((
        output
            .snapshots()
            .iter()
            .map(|s| snapshot_info(s, &associated))
            .collect(),
        output
            .next_token()
            .filter(|token| !token.is_empty())
            .map(str::to_string),
    ))
}

/// Both FSR answers (enable, disable) have the same shape under different SDK types.
macro_rules! fsr_change {
    ($output:expr) => {{
        let output = $output;
        FsrChange {
            succeeded: output
                .successful()
                .iter()
                .map(|item| FsrState {
                    snapshot_id: item.snapshot_id().unwrap_or_default().to_string(),
                    availability_zone: item.availability_zone().unwrap_or_default().to_string(),
                    state: item
                        .state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                })
                .collect(),
            failed: output
                .unsuccessful()
                .iter()
                .flat_map(|item| {
                    item.fast_snapshot_restore_state_errors()
                        .iter()
                        .map(move |zone| FsrFailure {
                            snapshot_id: item.snapshot_id().unwrap_or_default().to_string(),
                            availability_zone: zone
                                .availability_zone()
                                .unwrap_or_default()
                                .to_string(),
                            code: zone
                                .error()
                                .and_then(|e| e.code())
                                .unwrap_or("Unknown")
                                .to_string(),
                            message: zone
                                .error()
                                .and_then(|e| e.message())
                                .unwrap_or_default()
                                .to_string(),
                        })
                })
                .collect(),
        }
    }};
}

/// Enable and disable take the same request under different operations.
macro_rules! fsr_call {
    ($adapter:ident, $region:expr, $operation:ident, $snapshot_ids:expr, $zones:expr) => {{
        let output = $adapter
            .clients
            .get($region)
            .$operation()
            .set_source_snapshot_ids(Some($snapshot_ids.to_vec()))
            .set_availability_zones(Some($zones.to_vec()))
            .send()
            .await
            .map_err(aws_error)?;
        Ok(fsr_change!(output))
    }};
}

#[async_trait]
impl Images for Ec2Adapter {
    async fn describe_image(&self, region: &str, image_id: &str) -> AwsResult<Option<ImageInfo>> {
        match self
            .clients
            .get(region)
            .describe_images()
            .image_ids(image_id)
            .send()
            .await
            .map_err(aws_error)
        {
            Ok(output) => Ok(output
                .images()
                .iter()
                .find(|i| i.image_id() == Some(image_id))
                .map(image_info)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn copy_image(&self, region: &str, request: &CopyImageRequest) -> AwsResult<String> {
        let output = self
            .clients
            .get(region)
            .copy_image()
            .source_region(&request.source_region)
            .source_image_id(&request.source_image_id)
            .name(&request.name)
            .description(&request.description)
            .encrypted(true)
            .kms_key_id(&request.kms_key_arn)
            .client_token(&request.client_token)
            .copy_image_tags(request.copy_source_tags)
            .set_snapshot_copy_completion_duration_minutes(request.completion_duration_minutes)
            .tag_specifications(tag_specification(ResourceType::Image, &request.image_tags))
            .tag_specifications(tag_specification(
                ResourceType::Snapshot,
                &request.snapshot_tags,
            ))
            .send()
            .await
            .map_err(aws_error)?;
        Ok(output.image_id().unwrap_or_default().to_string())
    }

    async fn deregister_image(&self, region: &str, image_id: &str) -> AwsResult<()> {
        self.clients
            .get(region)
            .deregister_image()
            .image_id(image_id)
            .send()
            .await
            .map_err(aws_error)?;
        Ok(())
    }

    async fn deprecate_image(&self, region: &str, image_id: &str, at: u64) -> AwsResult<()> {
        let at = i64::try_from(at).unwrap_or(i64::MAX);
        self.clients
            .get(region)
            .enable_image_deprecation()
            .image_id(image_id)
            .deprecate_at(aws_smithy_types::DateTime::from_secs(at))
            .send()
            .await
            .map_err(aws_error)?;
        Ok(())
    }

    async fn find_images_tagged(&self, region: &str, tags: &[Tag]) -> AwsResult<Vec<ImageInfo>> {
        let mut pages = self
            .clients
            .get(region)
            .describe_images()
            .owners("self")
            .set_filters(Some(tag_filters(tags)))
            .max_results(PAGE_SIZE)
            .into_paginator()
            .send();
        let mut found = vec![];
        while let Some(page) = pages.next().await {
            found.extend(page.map_err(aws_error)?.images().iter().map(image_info));
        }
        Ok(found)
    }
}

#[async_trait]
impl Snapshots for Ec2Adapter {
    async fn describe_snapshots(
        &self,
        region: &str,
        snapshot_ids: &[String],
    ) -> AwsResult<Vec<SnapshotInfo>> {
        if snapshot_ids.is_empty() {
            return Ok(vec![]);
        }
        let client = self.clients.get(region);
        match describe_snapshots_page(
            client
                .describe_snapshots()
                .set_snapshot_ids(Some(snapshot_ids.to_vec())),
        )
        .await
        {
            Ok((snapshots, _)) => Ok(snapshots),
            // One unknown id fails the whole call; ask one by one to learn which exist.
            Err(error) if error.is_not_found() && snapshot_ids.len() > 1 => {
                let mut found = vec![];
                for id in snapshot_ids {
                    found.extend(
                        self.describe_snapshots(region, std::slice::from_ref(id))
                            .await?,
                    );
                }
                Ok(found)
            }
            Err(error) if error.is_not_found() => Ok(vec![]),
            Err(error) => Err(error),
        }
    }

    async fn find_snapshots_tagged(
        &self,
        region: &str,
        tags: &[Tag],
    ) -> AwsResult<Vec<SnapshotInfo>> {
        // Paged by hand: each page's call needs its own associated-keys reader.
        let client = self.clients.get(region);
        let (mut found, mut next_token) = (vec![], None);
        loop {
            let (page, next) = describe_snapshots_page(
                client
                    .describe_snapshots()
                    .owner_ids("self")
                    .set_filters(Some(tag_filters(tags)))
                    .max_results(PAGE_SIZE)
                    .set_next_token(next_token),
            )
            .await?;
            found.extend(page);
            match next {
                Some(token) => next_token = Some(token),
                None => return Ok(found),
            }
        }
    }

    async fn copy_snapshot(
        &self,
        region: &str,
        request: &CopySnapshotRequest,
    ) -> AwsResult<String> {
        let output = self
            .clients
            .get(region)
            .copy_snapshot()
            .source_region(&request.source_region)
            .source_snapshot_id(&request.source_snapshot_id)
            .description(&request.description)
            .encrypted(true)
            .kms_key_id(&request.kms_key_arn)
            .set_completion_duration_minutes(
                request
                    .completion_duration_minutes
                    .and_then(|m| i32::try_from(m).ok()),
            )
            .tag_specifications(tag_specification(ResourceType::Snapshot, &request.tags))
            .send()
            .await
            .map_err(aws_error)?;
        Ok(output.snapshot_id().unwrap_or_default().to_string())
    }

    async fn delete_snapshot(&self, region: &str, snapshot_id: &str) -> AwsResult<()> {
        self.clients
            .get(region)
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
            .map_err(aws_error)?;
        Ok(())
    }
}

#[async_trait]
impl Tagging for Ec2Adapter {
    async fn create_tags(
        &self,
        region: &str,
        resource_ids: &[String],
        tags: &[Tag],
    ) -> AwsResult<()> {
        self.clients
            .get(region)
            .create_tags()
            .set_resources(Some(resource_ids.to_vec()))
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(aws_error)?;
        Ok(())
    }
}

#[async_trait]
impl FastRestore for Ec2Adapter {
    async fn availability_zones(&self, region: &str) -> AwsResult<Vec<String>> {
        let output = self
            .clients
            .get(region)
            .describe_availability_zones()
            .send()
            .await
            .map_err(aws_error)?;
        Ok(output
            .availability_zones()
            .iter()
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect())
    }

    async fn enable(
        &self,
        region: &str,
        snapshot_ids: &[String],
        zones: &[String],
    ) -> AwsResult<FsrChange> {
        fsr_call!(
            self,
            region,
            enable_fast_snapshot_restores,
            snapshot_ids,
            zones
        )
    }

    async fn disable(
        &self,
        region: &str,
        snapshot_ids: &[String],
        zones: &[String],
    ) -> AwsResult<FsrChange> {
        fsr_call!(
            self,
            region,
            disable_fast_snapshot_restores,
            snapshot_ids,
            zones
        )
    }

    async fn describe(&self, region: &str, snapshot_ids: &[String]) -> AwsResult<Vec<FsrState>> {
        let filters = (!snapshot_ids.is_empty()).then(|| {
            vec![Filter::builder()
                .name("snapshot-id")
                .set_values(Some(snapshot_ids.to_vec()))
                .build()]
        });
        let mut pages = self
            .clients
            .get(region)
            .describe_fast_snapshot_restores()
            .set_filters(filters)
            .into_paginator()
            .send();
        let mut states = vec![];
        while let Some(page) = pages.next().await {
            states.extend(
                page.map_err(aws_error)?
                    .fast_snapshot_restores()
                    .iter()
                    .map(|item| FsrState {
                        snapshot_id: item.snapshot_id().unwrap_or_default().to_string(),
                        availability_zone: item.availability_zone().unwrap_or_default().to_string(),
                        state: item
                            .state()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                    }),
            );
        }
        Ok(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::copy_image::CopyImageOutput;
    use aws_sdk_ec2::operation::copy_snapshot::CopySnapshotOutput;
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    #[test]
    fn creation_times_are_read_as_instants_whatever_their_printed_precision() {
        let at = |date| unix_millis(date).unwrap();
        assert!(at("2026-12-02T00:45:06.5Z") < at("2026-12-02T00:45:06.51Z"));
        assert_eq!(at("2026-12-02T00:45:06.000Z"), at("2026-12-02T00:45:06Z"));
        assert_eq!(unix_millis("yesterday"), None);
    }

    fn tags_of(spec: &TagSpecification) -> Vec<(String, String)> {
        spec.tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect()
    }

    fn copy_image_request() -> CopyImageRequest {
        CopyImageRequest {
            source_region: "us-east-1".into(),
            source_image_id: "ami-0123456789abcdef0".into(),
            name: "ferry-copy".into(),
            description: "copied by ferry".into(),
            kms_key_arn: "arn:aws:kms:us-west-2:111122223333:key/k1".into(),
            client_token: "ferry-token".into(),
            copy_source_tags: true,
            completion_duration_minutes: Some(30),
            image_tags: vec![Tag::new("ferry:source-id", "ami-0123456789abcdef0")],
            snapshot_tags: vec![Tag::new("ferry:managed-by", "ferry")],
        }
    }

    #[tokio::test]
    async fn copy_image_encrypts_under_the_key_arn_with_a_token_and_tags_on_create() {
        let rule = mock!(Client::copy_image)
            .match_requests(|req| {
                let specs = req.tag_specifications();
                let image = specs
                    .iter()
                    .find(|s| s.resource_type() == Some(&ResourceType::Image));
                let snapshot = specs
                    .iter()
                    .find(|s| s.resource_type() == Some(&ResourceType::Snapshot));
                req.encrypted() == Some(true)
                    && req.kms_key_id() == Some("arn:aws:kms:us-west-2:111122223333:key/k1")
                    && req.client_token() == Some("ferry-token")
                    && req.source_region() == Some("us-east-1")
                    && req.copy_image_tags() == Some(true)
                    && req.snapshot_copy_completion_duration_minutes() == Some(30)
                    && image.map(tags_of)
                        == Some(vec![(
                            "ferry:source-id".into(),
                            "ami-0123456789abcdef0".into(),
                        )])
                    && snapshot.map(tags_of)
                        == Some(vec![("ferry:managed-by".into(), "ferry".into())])
            })
            .then_output(|| {
                CopyImageOutput::builder()
                    .image_id("ami-0fedcba9876543210")
                    .build()
            });
        let client = mock_client!(aws_sdk_ec2, [&rule]);
        let adapter = Ec2Adapter::with_clients(move |_| client.clone());
        assert_eq!(
            adapter
                .copy_image("us-west-2", &copy_image_request())
                .await
                .unwrap(),
            "ami-0fedcba9876543210"
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn copy_snapshot_encrypts_under_the_key_arn_and_tags_on_create() {
        let rule = mock!(Client::copy_snapshot)
            .match_requests(|req| {
                let specs = req.tag_specifications();
                req.encrypted() == Some(true)
                    && req.kms_key_id() == Some("arn:aws:kms:us-west-2:111122223333:key/k1")
                    && req.source_snapshot_id() == Some("snap-0123456789abcdef0")
                    && req.completion_duration_minutes() == Some(15)
                    && specs.len() == 1
                    && specs[0].resource_type() == Some(&ResourceType::Snapshot)
                    && tags_of(&specs[0])
                        == vec![("ferry:managed-by".to_string(), "ferry".to_string())]
            })
            .then_output(|| {
                CopySnapshotOutput::builder()
                    .snapshot_id("snap-0fedcba9876543210")
                    .build()
            });
        let client = mock_client!(aws_sdk_ec2, [&rule]);
        let adapter = Ec2Adapter::with_clients(move |_| client.clone());
        let request = CopySnapshotRequest {
            source_region: "us-east-1".into(),
            source_snapshot_id: "snap-0123456789abcdef0".into(),
            description: "copied by ferry".into(),
            kms_key_arn: "arn:aws:kms:us-west-2:111122223333:key/k1".into(),
            completion_duration_minutes: Some(15),
            tags: vec![Tag::new("ferry:managed-by", "ferry")],
        };
        assert_eq!(
            adapter.copy_snapshot("us-west-2", &request).await.unwrap(),
            "snap-0fedcba9876543210"
        );
    }

    #[tokio::test]
    async fn an_unknown_image_is_none_and_throttling_is_reported_as_such() {
        let missing = mock!(Client::describe_images)
            .match_requests(|req| req.image_ids() == ["ami-00000000"])
            .then_error(|| {
                aws_sdk_ec2::operation::describe_images::DescribeImagesError::generic(
                    ErrorMetadata::builder()
                        .code("InvalidAMIID.NotFound")
                        .message("The image id '[ami-00000000]' does not exist")
                        .build(),
                )
            });
        let throttled = mock!(Client::describe_images).then_error(|| {
            aws_sdk_ec2::operation::describe_images::DescribeImagesError::generic(
                ErrorMetadata::builder()
                    .code("RequestLimitExceeded")
                    .message("Request limit exceeded.")
                    .build(),
            )
        });
        let found =
            mock!(Client::describe_images).then_output(|| DescribeImagesOutput::builder().build());
        let client = mock_client!(
            aws_sdk_ec2,
            RuleMode::MatchAny,
            [&missing, &throttled, &found]
        );
        let adapter = Ec2Adapter::with_clients(move |_| client.clone());
        assert_eq!(
            adapter
                .describe_image("us-east-1", "ami-00000000")
                .await
                .unwrap(),
            None
        );
        let error = adapter
            .describe_image("us-east-1", "ami-11111111")
            .await
            .unwrap_err();
        assert!(
            matches!(error, crate::ports::AwsError::Throttled { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn enable_fsr_asks_per_snapshot_and_zone_and_reads_each_zone_failure() {
        use aws_sdk_ec2::operation::enable_fast_snapshot_restores::EnableFastSnapshotRestoresOutput;
        use aws_sdk_ec2::types::{
            EnableFastSnapshotRestoreErrorItem, EnableFastSnapshotRestoreStateError,
            EnableFastSnapshotRestoreStateErrorItem, EnableFastSnapshotRestoreSuccessItem,
            FastSnapshotRestoreStateCode,
        };
        let rule = mock!(Client::enable_fast_snapshot_restores)
            .match_requests(|req| {
                req.source_snapshot_ids() == ["snap-1", "snap-2"]
                    && req.availability_zones() == ["us-west-2a"]
            })
            .then_output(|| {
                EnableFastSnapshotRestoresOutput::builder()
                    .successful(
                        EnableFastSnapshotRestoreSuccessItem::builder()
                            .snapshot_id("snap-1")
                            .availability_zone("us-west-2a")
                            .state(FastSnapshotRestoreStateCode::Enabling)
                            .build(),
                    )
                    .unsuccessful(
                        EnableFastSnapshotRestoreErrorItem::builder()
                            .snapshot_id("snap-2")
                            .fast_snapshot_restore_state_errors(
                                EnableFastSnapshotRestoreStateErrorItem::builder()
                                    .availability_zone("us-west-2a")
                                    .error(
                                        EnableFastSnapshotRestoreStateError::builder()
                                            .code("FastSnapshotRestoreLimitExceeded")
                                            .message("quota")
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            });
        let client = mock_client!(aws_sdk_ec2, [&rule]);
        let adapter = Ec2Adapter::with_clients(move |_| client.clone());
        let change = adapter
            .enable(
                "us-west-2",
                &["snap-1".into(), "snap-2".into()],
                &["us-west-2a".into()],
            )
            .await
            .unwrap();
        assert_eq!(
            change.succeeded,
            vec![FsrState {
                snapshot_id: "snap-1".into(),
                availability_zone: "us-west-2a".into(),
                state: "enabling".into()
            }]
        );
        assert_eq!(change.failed.len(), 1);
        assert_eq!(
            (
                change.failed[0].snapshot_id.as_str(),
                change.failed[0].code.as_str()
            ),
            ("snap-2", "FastSnapshotRestoreLimitExceeded")
        );
    }
}
