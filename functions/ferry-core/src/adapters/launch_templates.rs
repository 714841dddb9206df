//! The `LaunchTemplates` port over the EC2 client.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    Filter, LaunchTemplateBlockDeviceMapping, LaunchTemplateBlockDeviceMappingRequest,
    LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateVersion, RequestLaunchTemplateData,
    VolumeType,
};

use super::ec2::Ec2Adapter;
use super::sdk::aws_error;
use crate::ports::{
    AwsError, AwsResult, LaunchTemplateInfo, LaunchTemplates, NewTemplateVersion, TemplateEbs,
    TemplateImage, TemplateMapping, TemplateVersionInfo,
};
use crate::rules::wiring::is_template_not_found;

fn domain_mapping(mapping: &LaunchTemplateBlockDeviceMapping) -> TemplateMapping {
    TemplateMapping {
        device_name: mapping.device_name().map(str::to_string),
        virtual_name: mapping.virtual_name().map(str::to_string),
        no_device: mapping.no_device().map(str::to_string),
        ebs: mapping.ebs().map(|ebs| TemplateEbs {
            encrypted: ebs.encrypted(),
            kms_key_id: ebs.kms_key_id().map(str::to_string),
            delete_on_termination: ebs.delete_on_termination(),
            iops: ebs.iops(),
            snapshot_id: ebs.snapshot_id().map(str::to_string),
            volume_size: ebs.volume_size(),
            volume_type: ebs.volume_type().map(|t| t.as_str().to_string()),
            throughput: ebs.throughput(),
            volume_initialization_rate: ebs.volume_initialization_rate(),
            ebs_card_index: ebs.ebs_card_index(),
        }),
    }
}

fn sdk_mapping(mapping: &TemplateMapping) -> LaunchTemplateBlockDeviceMappingRequest {
    LaunchTemplateBlockDeviceMappingRequest::builder()
        .set_device_name(mapping.device_name.clone())
        .set_virtual_name(mapping.virtual_name.clone())
        .set_no_device(mapping.no_device.clone())
        .set_ebs(mapping.ebs.as_ref().map(|ebs| {
            LaunchTemplateEbsBlockDeviceRequest::builder()
                .set_encrypted(ebs.encrypted)
                .set_kms_key_id(ebs.kms_key_id.clone())
                .set_delete_on_termination(ebs.delete_on_termination)
                .set_iops(ebs.iops)
                .set_snapshot_id(ebs.snapshot_id.clone())
                .set_volume_size(ebs.volume_size)
                .set_volume_type(ebs.volume_type.as_deref().map(VolumeType::from))
                .set_throughput(ebs.throughput)
                .set_volume_initialization_rate(ebs.volume_initialization_rate)
                .set_ebs_card_index(ebs.ebs_card_index)
                .build()
        }))
        .build()
}

fn version_info(version: &LaunchTemplateVersion) -> TemplateVersionInfo {
    let data = version.launch_template_data();
    TemplateVersionInfo {
        version: version.version_number().unwrap_or_default(),
        description: version.version_description().map(str::to_string),
        image_id: data.and_then(|d| d.image_id()).map(str::to_string),
        is_default: version.default_version().unwrap_or(false),
        block_device_mappings: data
            .map(|d| {
                d.block_device_mappings()
                    .iter()
                    .map(domain_mapping)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[async_trait]
impl LaunchTemplates for Ec2Adapter {
    async fn describe_template(
        &self,
        region: &str,
        name: &str,
    ) -> AwsResult<Option<LaunchTemplateInfo>> {
        let answer = self
            .clients
            .get(region)
            .describe_launch_templates()
            .launch_template_names(name)
            .send()
            .await
            .map_err(aws_error);
        let output = match answer {
            Ok(output) => output,
            Err(error) if is_template_not_found(error.code()) => return Ok(None),
            Err(error) => return Err(error),
        };
        Ok(output
            .launch_templates()
            .first()
            .map(|t| LaunchTemplateInfo {
                template_id: t.launch_template_id().unwrap_or_default().to_string(),
                name: t.launch_template_name().unwrap_or_default().to_string(),
                default_version: t.default_version_number().unwrap_or_default(),
                latest_version: t.latest_version_number().unwrap_or_default(),
            }))
    }

    async fn versions_with_image(
        &self,
        region: &str,
        template_id: &str,
        image_id: &str,
    ) -> AwsResult<Vec<TemplateVersionInfo>> {
        let mut pages = self
            .clients
            .get(region)
            .describe_launch_template_versions()
            .launch_template_id(template_id)
            .filters(Filter::builder().name("image-id").values(image_id).build())
            .into_paginator()
            .send();
        let mut versions = vec![];
        while let Some(page) = pages.next().await {
            let page = page.map_err(aws_error)?;
            versions.extend(page.launch_template_versions().iter().map(version_info));
        }
        Ok(versions)
    }

    async fn latest_version(
        &self,
        region: &str,
        template_id: &str,
    ) -> AwsResult<TemplateVersionInfo> {
        let output = self
            .clients
            .get(region)
            .describe_launch_template_versions()
            .launch_template_id(template_id)
            .versions("$Latest")
            .send()
            .await
            .map_err(aws_error)?;
        output
            .launch_template_versions()
            .first()
            .map(version_info)
            .ok_or_else(|| AwsError::Service {
                code: "InvalidLaunchTemplateId.VersionNotFound".into(),
                message: format!("{template_id} answered no $Latest version"),
            })
    }

    async fn create_version(&self, region: &str, request: &NewTemplateVersion) -> AwsResult<i64> {
        let mappings: Vec<_> = request
            .block_device_mappings
            .iter()
            .map(sdk_mapping)
            .collect();
        let data = RequestLaunchTemplateData::builder()
            .image_id(&request.image_id)
            .set_block_device_mappings((!mappings.is_empty()).then_some(mappings))
            .build();
        let output = self
            .clients
            .get(region)
            .create_launch_template_version()
            .launch_template_id(&request.template_id)
            .source_version(&request.source_version)
            .client_token(&request.client_token)
            .version_description(&request.description)
            .launch_template_data(data)
            .send()
            .await
            .map_err(aws_error)?;
        output
            .launch_template_version()
            .and_then(LaunchTemplateVersion::version_number)
            .ok_or_else(|| {
                AwsError::Transport("CreateLaunchTemplateVersion answered no version".into())
            })
    }

    async fn set_default_version(
        &self,
        region: &str,
        template_id: &str,
        version: i64,
    ) -> AwsResult<()> {
        self.clients
            .get(region)
            .modify_launch_template()
            .launch_template_id(template_id)
            .default_version(version.to_string())
            .send()
            .await
            .map_err(aws_error)?;
        Ok(())
    }

    async fn template_images(&self, region: &str) -> AwsResult<Vec<TemplateImage>> {
        let client = self.clients.get(region);
        let mut pages = client.describe_launch_templates().into_paginator().send();
        let mut templates = vec![];
        while let Some(page) = pages.next().await {
            let page = page.map_err(aws_error)?;
            templates.extend(page.launch_templates().iter().filter_map(|t| {
                Some((
                    t.launch_template_id()?.to_string(),
                    t.launch_template_name().unwrap_or_default().to_string(),
                ))
            }));
        }
        let mut images = vec![];
        for (id, name) in templates {
            let output = client
                .describe_launch_template_versions()
                .launch_template_id(&id)
                .versions("$Default")
                .versions("$Latest")
                .send()
                .await
                .map_err(aws_error)?;
            for version in output.launch_template_versions() {
                let info = version_info(version);
                if let Some(image_id) = info.image_id {
                    images.push(TemplateImage {
                        template_name: name.clone(),
                        version: info.version,
                        is_default: info.is_default,
                        image_id,
                    });
                }
            }
        }
        Ok(images)
    }
}
