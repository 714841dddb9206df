//! wire-destination: points the destination Region at a verified replica AMI, never before
//! verification. Each launch template the request names gets a new version from `$Latest` with
//! `ImageId` the replica and every EBS mapping encrypted under the destination key (optionally
//! made the default); the SSM parameter (`aws:ec2:image`) is set to the replica id.
//!
//! The replica must still be `available` (else `ReplicaIncomplete`). Idempotent: a retried step finds its own version (its `ImageId` is the replica and its
//! description names the replication), and CreateLaunchTemplateVersion's ClientToken answers
//! the same version if a retry gets that far; the parameter is written only if it holds
//! another value. SSM validates `aws:ec2:image` values asynchronously (a value it rejects
//! answers success and changes nothing), so the parameter is read back: `ParameterNotWritten`
//! if it does not hold the replica, which the state machine retries.

use tracing::{info, warn};

use crate::deps::Deps;
use crate::document::{
    LaunchTemplateRef, Replication, SourceKind, WiredParameter, WiredTemplate, WiringEvidence,
};
use crate::error::FerryError;
use crate::handlers::{aws_failure, still_available, verified_replica, VerifiedReplica as Replica};
use crate::ports::{AwsError, NewTemplateVersion};
use crate::rules::wiring::{
    check_wiring, encrypt_mappings, is_own_version, is_template_not_found, version_description,
    version_token,
};

pub async fn handle(deps: &Deps, payload: serde_json::Value) -> Result<Replication, FerryError> {
    let mut document = Replication::from_json(payload)?;
    let destination = document.destination.clone();
    if !destination.wants_wiring() {
        return Ok(document);
    }
    let (kind, _) = document.source_ref()?;
    check_wiring(
        &destination.launch_templates,
        destination.ssm_parameter.as_deref(),
        kind == SourceKind::Image,
    )?;
    let replica = verified_replica(&document)?;
    still_available(deps, &replica).await?;

    let mut evidence = WiringEvidence::default();
    for template in &destination.launch_templates {
        evidence
            .launch_templates
            .push(wire_template(deps, &replica, template).await?);
    }
    if let Some(name) = &destination.ssm_parameter {
        evidence.ssm_parameter = Some(wire_parameter(deps, &replica, name).await?);
    }
    info!(
        replication_id = %replica.replication_id,
        replica = %replica.image_id,
        templates = evidence.launch_templates.len(),
        parameter = evidence.ssm_parameter.is_some(),
        "destination wired"
    );
    document.evidence.wiring = Some(evidence);
    Ok(document)
}

async fn wire_template(
    deps: &Deps,
    replica: &Replica,
    template: &LaunchTemplateRef,
) -> Result<WiredTemplate, FerryError> {
    let region = &replica.region;
    let not_found = || FerryError::LaunchTemplateNotFound {
        name: template.name.clone(),
        region: region.clone(),
    };
    // A template deleted between two calls answers its not-found code: the same named error.
    let failure = |operation: &str, error: AwsError| {
        if is_template_not_found(error.code()) {
            not_found()
        } else {
            aws_failure(operation, error)
        }
    };
    let info = deps
        .launch_templates
        .describe_template(region, &template.name)
        .await
        .map_err(|e| failure("ec2:DescribeLaunchTemplates", e))?
        .ok_or_else(not_found)?;
    let id = &info.template_id;
    let own = deps
        .launch_templates
        .versions_with_image(region, id, &replica.image_id)
        .await
        .map_err(|e| failure("ec2:DescribeLaunchTemplateVersions", e))?
        .into_iter()
        .filter(|v| is_own_version(v.description.as_deref(), &replica.replication_id))
        .map(|v| v.version)
        .min();
    let (version, created) = match own {
        Some(version) => (version, false),
        None => {
            let latest = deps
                .launch_templates
                .latest_version(region, id)
                .await
                .map_err(|e| failure("ec2:DescribeLaunchTemplateVersions", e))?;
            let request = NewTemplateVersion {
                template_id: id.clone(),
                source_version: "$Latest".into(),
                client_token: version_token(
                    &replica.replication_id,
                    &template.name,
                    &replica.image_id,
                ),
                description: version_description(
                    &replica.replication_id,
                    &replica.image_id,
                    &replica.key_arn,
                ),
                image_id: replica.image_id.clone(),
                block_device_mappings: encrypt_mappings(
                    &latest.block_device_mappings,
                    &replica.key_arn,
                ),
            };
            let version = deps
                .launch_templates
                .create_version(region, &request)
                .await
                .map_err(|e| failure("ec2:CreateLaunchTemplateVersion", e))?;
            (version, true)
        }
    };
    let mut is_default = info.default_version == version;
    if template.set_default && !is_default {
        deps.launch_templates
            .set_default_version(region, id, version)
            .await
            .map_err(|e| failure("ec2:ModifyLaunchTemplate", e))?;
        is_default = true;
    }
    info!(template = %template.name, template_id = %id, version, is_default, created, "launch template points at the replica");
    Ok(WiredTemplate {
        name: template.name.clone(),
        template_id: id.clone(),
        version,
        is_default,
        created,
    })
}

async fn wire_parameter(
    deps: &Deps,
    replica: &Replica,
    name: &str,
) -> Result<WiredParameter, FerryError> {
    let region = &replica.region;
    let read = || async {
        deps.parameters
            .get(region, name)
            .await
            .map_err(|e| aws_failure("ssm:GetParameter", e))
    };
    if let Some(current) = read().await? {
        if current.value == replica.image_id {
            return Ok(WiredParameter {
                name: name.into(),
                version: current.version,
                written: false,
            });
        }
    }
    deps.parameters
        .put_image_id(region, name, &replica.image_id)
        .await
        .map_err(|e| aws_failure("ssm:PutParameter", e))?;
    match read().await? {
        Some(stored) if stored.value == replica.image_id => {
            info!(parameter = %name, version = stored.version, "parameter holds the replica");
            Ok(WiredParameter {
                name: name.into(),
                version: stored.version,
                written: true,
            })
        }
        other => {
            let found = other.map_or_else(|| "no such parameter".to_string(), |p| p.value);
            warn!(parameter = %name, found = %found, "parameter does not hold the replica after PutParameter");
            Err(FerryError::ParameterNotWritten {
                name: name.into(),
                region: region.clone(),
                image_id: replica.image_id.clone(),
                found,
            })
        }
    }
}
