//! Destination wiring as pure rules: the names a request may give, the launch-template version
//! ferry derives from `$Latest` (the replica as `ImageId`, every EBS mapping encrypted under
//! the destination key), and how a retried step recognises the version it already made.

use crate::document::LaunchTemplateRef;
use crate::error::FerryError;
use crate::ports::TemplateMapping;
use crate::rules::lineage::hex_digest;

/// Most launch templates one destination may name.
pub const MAX_LAUNCH_TEMPLATES: usize = 10;

/// AWS's launch-template name rule: 3 to 128 characters of letters, digits and `( ) . - / _`.
pub fn check_template_name(name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if !(3..=128).contains(&length) {
        return Err(format!("{name:?} must be 3 to 128 characters"));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "().-/_".contains(*c)))
    {
        Some(c) => Err(format!(
            "{name:?} has {c:?}: a launch template name has letters, digits and ( ) . - / _"
        )),
        None => Ok(()),
    }
}

/// Every template named once, each name valid, at most [`MAX_LAUNCH_TEMPLATES`].
pub fn check_templates(templates: &[LaunchTemplateRef]) -> Result<(), String> {
    if templates.len() > MAX_LAUNCH_TEMPLATES {
        return Err(format!("at most {MAX_LAUNCH_TEMPLATES} launch templates"));
    }
    for (i, template) in templates.iter().enumerate() {
        check_template_name(&template.name)?;
        if templates[..i].iter().any(|t| t.name == template.name) {
            return Err(format!("{:?} is named twice", template.name));
        }
    }
    Ok(())
}

/// Most characters of a parameter name (AWS: 1011 including the parameter's ARN prefix; ferry
/// keeps a margin for the longest partition, account and Region).
pub const MAX_PARAMETER_NAME_CHARS: usize = 900;

/// AWS's SSM parameter name rules: letters, digits and `_ . - /`; a name with a `/` is a path
/// that starts with `/` and has at most 15 levels; no `aws` or `ssm` prefix (reserved).
pub fn check_parameter_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_PARAMETER_NAME_CHARS {
        return Err(format!(
            "give a parameter name of 1 to {MAX_PARAMETER_NAME_CHARS} characters, such as /golden/web/ami"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        return Err(format!(
            "{name:?} has {c:?}: a parameter name has letters, digits and _ . - /"
        ));
    }
    if name.contains('/') && !name.starts_with('/') {
        return Err(format!("{name:?}: a parameter path starts with /"));
    }
    let levels: Vec<&str> = name.strip_prefix('/').unwrap_or(name).split('/').collect();
    if levels.iter().any(|level| level.is_empty()) {
        return Err(format!("{name:?} has an empty path level"));
    }
    if levels.len() > 15 {
        return Err(format!("{name:?} has {} levels; at most 15", levels.len()));
    }
    let first = levels[0].to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(format!(
            "{name:?}: names beginning with aws or ssm are reserved"
        ));
    }
    Ok(())
}

/// The request's wiring options, checked; `image` is whether the source is an AMI (wiring
/// points launch templates and parameters at AMIs only).
pub fn check_wiring(
    launch_templates: &[LaunchTemplateRef],
    ssm_parameter: Option<&str>,
    image: bool,
) -> Result<(), FerryError> {
    if !image {
        let field = if launch_templates.is_empty() {
            "destination.ssmParameter"
        } else {
            "destination.launchTemplates"
        };
        if !launch_templates.is_empty() || ssm_parameter.is_some() {
            return Err(FerryError::invalid(
                field,
                "wiring points launch templates and parameters at an AMI: replicate an imageId, or drop it",
            ));
        }
    }
    check_templates(launch_templates)
        .map_err(|reason| FerryError::invalid("destination.launchTemplates", reason))?;
    if let Some(name) = ssm_parameter {
        check_parameter_name(name)
            .map_err(|reason| FerryError::invalid("destination.ssmParameter", reason))?;
    }
    Ok(())
}

/// CreateLaunchTemplateVersion's `ClientToken` (at most 128 ASCII characters): one per
/// replication, template and replica, so a retried step gets its own version back, and a
/// rerun with a new copy (`options.attempt`) gets a version of its own.
pub fn version_token(replication_id: &str, template: &str, replica_id: &str) -> String {
    format!(
        "ferry-lt-{}",
        &hex_digest(&["ferry-lt-v1", replication_id, template, replica_id])[..40]
    )
}

/// The new version's description (at most 255 characters): it names the replication, so a
/// retried step finds its version among those whose `ImageId` is the replica.
pub fn version_description(replication_id: &str, replica_id: &str, key_arn: &str) -> String {
    let description = format!("{} {replica_id} under {key_arn}", marker(replication_id));
    description.chars().take(255).collect()
}

fn marker(replication_id: &str) -> String {
    format!("ferry {replication_id}:")
}

/// Whether a version's description says this replication made it.
pub fn is_own_version(description: Option<&str>, replication_id: &str) -> bool {
    description.is_some_and(|d| d.starts_with(&marker(replication_id)))
}

/// `$Latest`'s block-device mappings with every EBS mapping `Encrypted=true` under `key_arn`
/// (a version's mappings replace the source's whole list, so every mapping is given back);
/// instance-store and `NoDevice` mappings are kept as they are.
pub fn encrypt_mappings(mappings: &[TemplateMapping], key_arn: &str) -> Vec<TemplateMapping> {
    mappings
        .iter()
        .cloned()
        .map(|mut mapping| {
            if let Some(ebs) = mapping.ebs.as_mut() {
                ebs.encrypted = Some(true);
                ebs.kms_key_id = Some(key_arn.to_string());
            }
            mapping
        })
        .collect()
}

/// Every EBS mapping of `mappings` is encrypted under `key_arn`.
pub fn all_under_key(mappings: &[TemplateMapping], key_arn: &str) -> bool {
    mappings
        .iter()
        .filter_map(|m| m.ebs.as_ref())
        .all(|ebs| ebs.encrypted == Some(true) && ebs.kms_key_id.as_deref() == Some(key_arn))
}

/// AWS's codes for a launch template that does not exist, by name or by id.
pub fn is_template_not_found(code: &str) -> bool {
    code.starts_with("InvalidLaunchTemplateName.NotFound")
        || code.starts_with("InvalidLaunchTemplateId.NotFound")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::TemplateEbs;

    const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn template(name: &str) -> LaunchTemplateRef {
        LaunchTemplateRef {
            name: name.into(),
            set_default: false,
        }
    }

    #[test]
    fn every_ebs_mapping_is_encrypted_under_the_destination_key_and_others_are_kept() {
        let mappings = vec![
            TemplateMapping {
                device_name: Some("/dev/xvda".into()),
                ebs: Some(TemplateEbs {
                    volume_size: Some(30),
                    volume_type: Some("gp3".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            TemplateMapping {
                device_name: Some("/dev/xvdb".into()),
                ebs: Some(TemplateEbs {
                    encrypted: Some(false),
                    kms_key_id: Some("alias/old".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            TemplateMapping {
                device_name: Some("/dev/sdc".into()),
                virtual_name: Some("ephemeral0".into()),
                ..Default::default()
            },
        ];
        let encrypted = encrypt_mappings(&mappings, KEY);
        assert!(all_under_key(&encrypted, KEY));
        assert!(!all_under_key(&mappings, KEY));
        assert_eq!(encrypted[0].ebs.as_ref().unwrap().volume_size, Some(30));
        assert_eq!(encrypted[2], mappings[2]);
        assert_eq!(encrypt_mappings(&encrypted, KEY), encrypted, "idempotent");
    }

    #[test]
    fn the_token_is_stable_per_replication_template_and_replica() {
        let token = version_token("fr-1", "web", "ami-1");
        assert_eq!(token, version_token("fr-1", "web", "ami-1"));
        assert_ne!(token, version_token("fr-1", "api", "ami-1"));
        assert_ne!(token, version_token("fr-1", "web", "ami-2"));
        assert!(token.len() <= 64 && token.is_ascii());
    }

    #[test]
    fn a_version_is_recognised_by_its_replication() {
        let description = version_description("fr-1", "ami-1", KEY);
        assert!(is_own_version(Some(&description), "fr-1"));
        assert!(!is_own_version(Some(&description), "fr-10"));
        assert!(!is_own_version(None, "fr-1"));
        assert!(description.len() <= 255);
    }

    #[test]
    fn template_names_follow_aws_rules() {
        assert!(check_templates(&[template("web"), template("api-(v2)/x_y.z")]).is_ok());
        for bad in ["ab", "has space", "semi;colon", &"x".repeat(129)] {
            assert!(check_templates(&[template(bad)]).is_err(), "{bad:?}");
        }
        assert!(check_templates(&[template("web"), template("web")]).is_err());
        let many: Vec<_> = (0..11).map(|i| template(&format!("web-{i}"))).collect();
        assert!(check_templates(&many).is_err());
    }

    #[test]
    fn parameter_names_follow_aws_rules() {
        for good in ["/golden/web/ami", "golden-ami", "/a.b_c-d"] {
            assert!(check_parameter_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "golden/web",
            "/aws/service/ami",
            "/SSM/x",
            "awsami",
            "/has space",
            "//double",
            &format!("/{}", vec!["l"; 16].join("/")),
        ] {
            assert!(check_parameter_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn snapshot_replications_take_no_wiring() {
        let error = check_wiring(&[template("web")], None, false).unwrap_err();
        assert!(
            matches!(error, FerryError::InvalidRequest { ref field, .. } if field == "destination.launchTemplates")
        );
        let error = check_wiring(&[], Some("/golden/ami"), false).unwrap_err();
        assert!(
            matches!(error, FerryError::InvalidRequest { ref field, .. } if field == "destination.ssmParameter")
        );
        assert!(check_wiring(&[], None, false).is_ok());
        assert!(check_wiring(&[template("web")], Some("/golden/ami"), true).is_ok());
    }

    #[test]
    fn launch_template_not_found_codes_by_name_and_id() {
        assert!(is_template_not_found(
            "InvalidLaunchTemplateName.NotFoundException"
        ));
        assert!(is_template_not_found("InvalidLaunchTemplateId.NotFound"));
        assert!(!is_template_not_found(
            "InvalidLaunchTemplateId.VersionNotFound"
        ));
    }
}
