//! The `Instances` port over the EC2 client: the boot check's one instance.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, Instance,
    InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification, InstanceType,
    ResourceType, ShutdownBehavior,
};

use super::ec2::{domain_tags, tag_filters, tag_specification, Ec2Adapter, PAGE_SIZE};
use super::sdk::aws_error;
use crate::ports::{
    AttachedVolume, AwsError, AwsResult, InstanceInfo, Instances, LaunchRequest, StatusChecks, Tag,
    VolumeInfo,
};

fn instance_info(instance: &Instance) -> InstanceInfo {
    InstanceInfo {
        instance_id: instance.instance_id().unwrap_or_default().to_string(),
        state: instance
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        state_reason: instance
            .state_reason()
            .map(|r| format!("{}: {}", r.code().unwrap_or("?"), r.message().unwrap_or(""))),
        launched_at_ms: instance.launch_time().and_then(|t| t.to_millis().ok()),
        image_id: instance.image_id().map(str::to_string),
        tags: domain_tags(instance.tags()),
        volumes: instance
            .block_device_mappings()
            .iter()
            .filter_map(|m| {
                Some(AttachedVolume {
                    device_name: m.device_name().unwrap_or_default().to_string(),
                    volume_id: m.ebs()?.volume_id()?.to_string(),
                })
            })
            .collect(),
    }
}

#[async_trait]
impl Instances for Ec2Adapter {
    async fn launch(&self, region: &str, request: &LaunchRequest) -> AwsResult<String> {
        // No public address: the interface is given explicitly (its subnet and groups with it).
        let interface = InstanceNetworkInterfaceSpecification::builder()
            .device_index(0)
            .subnet_id(&request.subnet_id)
            .set_groups(
                (!request.security_group_ids.is_empty())
                    .then(|| request.security_group_ids.clone()),
            )
            .associate_public_ip_address(false)
            .delete_on_termination(true)
            .build();
        let mappings = request
            .delete_on_termination
            .iter()
            .map(|device| {
                BlockDeviceMapping::builder()
                    .device_name(device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build()
            })
            .collect();
        let output = self
            .clients
            .get(region)
            .run_instances()
            .image_id(&request.image_id)
            .instance_type(InstanceType::from(request.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(&request.client_token)
            .network_interfaces(interface)
            .set_block_device_mappings(Some(mappings))
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .build(),
            )
            .tag_specifications(tag_specification(ResourceType::Instance, &request.tags))
            .tag_specifications(tag_specification(ResourceType::Volume, &request.tags))
            .tag_specifications(tag_specification(
                ResourceType::NetworkInterface,
                &request.tags,
            ))
            .send()
            .await
            .map_err(aws_error)?;
        output
            .instances()
            .first()
            .and_then(Instance::instance_id)
            .map(str::to_string)
            .ok_or_else(|| AwsError::Transport("RunInstances answered no instance".into()))
    }

    async fn describe_instance(
        &self,
        region: &str,
        instance_id: &str,
    ) -> AwsResult<Option<InstanceInfo>> {
        match self
            .clients
            .get(region)
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(aws_error)
        {
            Ok(output) => Ok(output
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(instance_id))
                .map(instance_info)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn status_checks(
        &self,
        region: &str,
        instance_id: &str,
    ) -> AwsResult<Option<StatusChecks>> {
        let output = self
            .clients
            .get(region)
            .describe_instance_status()
            .instance_ids(instance_id)
            .include_all_instances(true)
            .send()
            .await
            .map_err(aws_error)?;
        Ok(output.instance_statuses().first().map(|status| {
            let summary = |s: Option<&aws_sdk_ec2::types::InstanceStatusSummary>| {
                s.and_then(|s| s.status())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default()
            };
            let detail = [status.system_status(), status.instance_status()]
                .into_iter()
                .flatten()
                .flat_map(|s| s.details())
                .filter(|d| d.status().is_some_and(|s| s.as_str() == "failed"))
                .map(|d| {
                    format!(
                        "{} {}{}",
                        d.name().map(|n| n.as_str()).unwrap_or("check"),
                        d.status().map(|s| s.as_str()).unwrap_or(""),
                        d.impaired_since()
                            .map(|t| format!(" since {t}"))
                            .unwrap_or_default()
                    )
                })
                .next();
            StatusChecks {
                system: summary(status.system_status()),
                instance: summary(status.instance_status()),
                detail,
            }
        }))
    }

    async fn describe_volumes(
        &self,
        region: &str,
        volume_ids: &[String],
    ) -> AwsResult<Vec<VolumeInfo>> {
        if volume_ids.is_empty() {
            return Ok(vec![]);
        }
        let output = self
            .clients
            .get(region)
            .describe_volumes()
            .set_volume_ids(Some(volume_ids.to_vec()))
            .send()
            .await
            .map_err(aws_error)?;
        Ok(output
            .volumes()
            .iter()
            .map(|v| VolumeInfo {
                volume_id: v.volume_id().unwrap_or_default().to_string(),
                encrypted: v.encrypted().unwrap_or(false),
                kms_key_id: v.kms_key_id().map(str::to_string),
            })
            .collect())
    }

    async fn find_instances_tagged(
        &self,
        region: &str,
        tags: &[Tag],
    ) -> AwsResult<Vec<InstanceInfo>> {
        let mut filters = tag_filters(tags);
        // shutting-down too: the sweep and `end` see an instance still ending.
        filters.push(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("shutting-down")
                .values("stopping")
                .values("stopped")
                .build(),
        );
        self.describe_instances_filtered(region, filters).await
    }

    async fn terminate(&self, region: &str, instance_ids: &[String]) -> AwsResult<()> {
        if instance_ids.is_empty() {
            return Ok(());
        }
        self.clients
            .get(region)
            .terminate_instances()
            .set_instance_ids(Some(instance_ids.to_vec()))
            .send()
            .await
            .map_err(aws_error)?;
        Ok(())
    }

    async fn instances_of_images(
        &self,
        region: &str,
        image_ids: &[String],
    ) -> AwsResult<Vec<InstanceInfo>> {
        if image_ids.is_empty() {
            return Ok(vec![]);
        }
        let filters = vec![
            Filter::builder()
                .name("image-id")
                .set_values(Some(image_ids.to_vec()))
                .build(),
            live_states(),
        ];
        self.describe_instances_filtered(region, filters).await
    }
}

/// Every state but `shutting-down` and `terminated`.
fn live_states() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .values("stopping")
        .values("stopped")
        .build()
}

impl Ec2Adapter {
    async fn describe_instances_filtered(
        &self,
        region: &str,
        filters: Vec<Filter>,
    ) -> AwsResult<Vec<InstanceInfo>> {
        let mut pages = self
            .clients
            .get(region)
            .describe_instances()
            .set_filters(Some(filters))
            .max_results(PAGE_SIZE)
            .into_paginator()
            .send();
        let mut found = vec![];
        while let Some(page) = pages.next().await {
            let page = page.map_err(aws_error)?;
            found.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .map(instance_info),
            );
        }
        Ok(found)
    }
}
