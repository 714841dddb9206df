//! Seeds the local AWS through the real SDK clients: keys, aliases, encrypted volumes and
//! snapshots, and EBS-backed images.

use aws_config::{Region, SdkConfig};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, ResourceType, TagSpecification, VolumeType,
};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};

pub struct Seeder {
    config: SdkConfig,
}

/// A seeded KMS key: its id and ARN.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub arn: String,
}

impl Seeder {
    pub fn new(config: &SdkConfig) -> Self {
        Seeder {
            config: config.clone(),
        }
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&self.config)
                .region(Region::new(region.to_string()))
                .build(),
        )
    }

    pub fn kms(&self, region: &str) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&self.config)
                .region(Region::new(region.to_string()))
                .build(),
        )
    }

    pub async fn key_with(
        &self,
        region: &str,
        spec: KeySpec,
        usage: KeyUsageType,
        multi_region: bool,
    ) -> Key {
        let output = self
            .kms(region)
            .create_key()
            .key_spec(spec)
            .key_usage(usage)
            .multi_region(multi_region)
            .send()
            .await
            .expect("CreateKey");
        let metadata = output.key_metadata().expect("key metadata");
        Key {
            id: metadata.key_id().to_string(),
            arn: metadata.arn().unwrap_or_default().to_string(),
        }
    }

    /// An S3 bucket in the default Region (the stack's work bucket).
    pub async fn bucket(&self, name: &str) {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.config)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("CreateBucket");
    }

    pub async fn key(&self, region: &str) -> Key {
        self.key_with(
            region,
            KeySpec::SymmetricDefault,
            KeyUsageType::EncryptDecrypt,
            false,
        )
        .await
    }

    pub async fn alias(&self, region: &str, alias: &str, key: &Key) {
        self.kms(region)
            .create_alias()
            .alias_name(alias)
            .target_key_id(&key.id)
            .send()
            .await
            .expect("CreateAlias");
    }

    /// A multi-Region primary in `primary_region` and its replica in `replica_region`.
    pub async fn multi_region_replica(&self, primary_region: &str, replica_region: &str) -> Key {
        let primary = self
            .key_with(
                primary_region,
                KeySpec::SymmetricDefault,
                KeyUsageType::EncryptDecrypt,
                true,
            )
            .await;
        let output = self
            .kms(primary_region)
            .replicate_key()
            .key_id(&primary.id)
            .replica_region(replica_region)
            .send()
            .await
            .expect("ReplicateKey");
        let metadata = output.replica_key_metadata().expect("replica metadata");
        Key {
            id: metadata.key_id().to_string(),
            arn: metadata.arn().unwrap_or_default().to_string(),
        }
    }

    pub async fn disable_key(&self, region: &str, key: &Key) {
        self.kms(region)
            .disable_key()
            .key_id(&key.id)
            .send()
            .await
            .expect("DisableKey");
    }

    pub async fn schedule_deletion(&self, region: &str, key: &Key) {
        self.kms(region)
            .schedule_key_deletion()
            .key_id(&key.id)
            .pending_window_in_days(7)
            .send()
            .await
            .expect("ScheduleKeyDeletion");
    }

    /// A completed snapshot of a volume encrypted under `key` (unencrypted when `None`).
    pub async fn snapshot(&self, region: &str, key: Option<&Key>, size_gib: i32) -> String {
        let ec2 = self.ec2(region);
        let volume = ec2
            .create_volume()
            .availability_zone(format!("{region}a"))
            .size(size_gib)
            .volume_type(VolumeType::Gp3)
            .encrypted(key.is_some())
            .set_kms_key_id(key.map(|k| k.arn.clone()))
            .send()
            .await
            .expect("CreateVolume");
        let snapshot = ec2
            .create_snapshot()
            .volume_id(volume.volume_id().unwrap_or_default())
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Snapshot)
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("team")
                            .value("platform")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("CreateSnapshot");
        snapshot.snapshot_id().unwrap_or_default().to_string()
    }

    /// An EBS-backed AMI with an 8 GiB root snapshot under `root_key` and a 20 GiB data snapshot
    /// under `data_key`. Returns the image and its two snapshots.
    pub async fn golden_image(
        &self,
        region: &str,
        root_key: &Key,
        data_key: &Key,
    ) -> (String, [String; 2]) {
        let root = self.snapshot(region, Some(root_key), 8).await;
        let data = self.snapshot(region, Some(data_key), 20).await;
        let image = self
            .image(
                region,
                "web-golden",
                &[("/dev/xvda", &root), ("/dev/xvdb", &data)],
            )
            .await;
        (image, [root, data])
    }

    /// An EBS-backed image whose devices map to `snapshots` (the first is the root).
    pub async fn image(&self, region: &str, name: &str, snapshots: &[(&str, &str)]) -> String {
        let mappings = snapshots
            .iter()
            .map(|(device, snapshot)| {
                BlockDeviceMapping::builder()
                    .device_name(*device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .snapshot_id(*snapshot)
                            .volume_type(VolumeType::Gp3)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build()
            })
            .collect();
        let output = self
            .ec2(region)
            .register_image()
            .name(name)
            .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664)
            .virtualization_type("hvm")
            .root_device_name(snapshots[0].0)
            .set_block_device_mappings(Some(mappings))
            .send()
            .await
            .expect("RegisterImage");
        self.ec2(region)
            .create_tags()
            .resources(output.image_id().unwrap_or_default())
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("app")
                    .value("web")
                    .build(),
            )
            .send()
            .await
            .expect("CreateTags");
        output.image_id().unwrap_or_default().to_string()
    }

    /// A subnet of `region`'s default VPC (the local AWS has one per Availability Zone).
    pub async fn subnet(&self, region: &str) -> String {
        let output = self
            .ec2(region)
            .describe_subnets()
            .send()
            .await
            .expect("DescribeSubnets");
        let mut subnets: Vec<String> = output
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id().map(str::to_string))
            .collect();
        subnets.sort();
        subnets.into_iter().next().expect("a default subnet")
    }

    /// Every instance in `region` as (id, state), whatever its state.
    pub async fn instances(&self, region: &str) -> Vec<(String, String)> {
        let output = self
            .ec2(region)
            .describe_instances()
            .send()
            .await
            .expect("DescribeInstances");
        output
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                (
                    i.instance_id().unwrap_or_default().to_string(),
                    i.state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    /// An instance-store AMI: no EBS snapshots at all.
    /// A launch template `name` in `region` whose data names only a placeholder image.
    pub async fn launch_template(&self, region: &str, name: &str) {
        self.launch_template_of(region, name, "ami-0aaaaaaaaaaaaaaa0")
            .await;
    }

    /// A launch template `name` in `region` whose (default) version launches `image_id`.
    pub async fn launch_template_of(&self, region: &str, name: &str, image_id: &str) {
        self.ec2(region)
            .create_launch_template()
            .launch_template_name(name)
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id(image_id)
                    .build(),
            )
            .send()
            .await
            .expect("CreateLaunchTemplate");
    }

    pub async fn instance_store_image(&self, region: &str, name: &str) -> String {
        let output = self
            .ec2(region)
            .register_image()
            .name(name)
            .image_location(format!("ferry-test-bucket/{name}/image.manifest.xml"))
            .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664)
            .send()
            .await
            .expect("RegisterImage");
        output.image_id().unwrap_or_default().to_string()
    }

    /// A snapshot copy into `region` that is still pending (for a source that is not ready).
    pub async fn pending_copy(&self, from_region: &str, snapshot: &str, region: &str) -> String {
        let output = self
            .ec2(region)
            .copy_snapshot()
            .source_region(from_region)
            .source_snapshot_id(snapshot)
            .send()
            .await
            .expect("CopySnapshot");
        output.snapshot_id().unwrap_or_default().to_string()
    }

    pub async fn describe_snapshots(
        &self,
        region: &str,
        ids: &[String],
    ) -> Vec<aws_sdk_ec2::types::Snapshot> {
        let output = self
            .ec2(region)
            .describe_snapshots()
            .set_snapshot_ids(Some(ids.to_vec()))
            .send()
            .await
            .expect("DescribeSnapshots");
        output.snapshots().to_vec()
    }

    pub async fn describe_image(&self, region: &str, id: &str) -> aws_sdk_ec2::types::Image {
        let output = self
            .ec2(region)
            .describe_images()
            .image_ids(id)
            .send()
            .await
            .expect("DescribeImages");
        output.images().first().cloned().expect("the image exists")
    }

    /// Images in `region` owned by this account (moto also lists its public catalogue, so filter).
    pub async fn owned_images(&self, region: &str) -> Vec<aws_sdk_ec2::types::Image> {
        let output = self
            .ec2(region)
            .describe_images()
            .owners("self")
            .send()
            .await
            .expect("DescribeImages");
        output.images().to_vec()
    }

    /// Snapshots in `region` carrying tag `key`=`value`.
    pub async fn snapshots_tagged(
        &self,
        region: &str,
        key: &str,
        value: &str,
    ) -> Vec<aws_sdk_ec2::types::Snapshot> {
        let filter = Filter::builder()
            .name(format!("tag:{key}"))
            .values(value)
            .build();
        let output = self
            .ec2(region)
            .describe_snapshots()
            .owner_ids("self")
            .filters(filter)
            .send()
            .await
            .expect("DescribeSnapshots");
        output.snapshots().to_vec()
    }
}

/// The value of tag `key` among `tags`.
pub fn tag_value(tags: &[aws_sdk_ec2::types::Tag], key: &str) -> Option<String> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
        .map(str::to_string)
}
