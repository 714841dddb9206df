//! Validation of a replication request before anything talks to AWS.

use crate::document::{Replication, SourceKind};
use crate::error::FerryError;
use crate::rules::boot_check::check_boot_check;
use crate::rules::key::arn_region;
use crate::rules::lineage::check_tag_value;
use crate::rules::retention::check_retention;
use crate::rules::wiring::check_wiring;

/// The Regions AWS has (commercial, GovCloud, China), as of 2026-11. A code that looks like a
/// Region but is not one would otherwise fail late, on an endpoint that does not resolve.
pub const AWS_REGIONS: [&str; 38] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "ap-southeast-6",
];

/// Most Availability Zones one request may ask FSR for.
pub const MAX_FSR_ZONES: usize = 8;

/// An AWS Region code of a Region that exists.
pub fn is_region(region: &str) -> bool {
    is_region_code(region) && AWS_REGIONS.contains(&region)
}

/// AWS Region codes: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-5`, …
pub fn is_region_code(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    (3..=4).contains(&parts.len())
        && first.len() == 2
        && first.chars().all(|c| c.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && !last.is_empty()
        && last.len() <= 2
        && last.chars().all(|c| c.is_ascii_digit())
}

/// `ami-`/`snap-` followed by 8 or 17 lowercase hex digits.
pub fn is_resource_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|hex| hex.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
}

/// Key id, key ARN, alias name, alias ARN, or `mrk-` multi-Region key id.
fn check_key_reference(key: &str, destination_region: &str) -> Result<(), FerryError> {
    let field = "destination.kmsKeyId";
    if key.is_empty()
        || key.len() > 2048
        || key.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(FerryError::invalid(
            field,
            "give a key id, key ARN, alias name (alias/…) or alias ARN without spaces",
        ));
    }
    if key.starts_with("arn:") {
        let region = arn_region(key).ok_or_else(|| {
            FerryError::invalid(
                field,
                "not a KMS key or alias ARN (arn:aws:kms:REGION:ACCOUNT:key/… or :alias/…)",
            )
        })?;
        if region != destination_region {
            return Err(FerryError::KeyNotInDestinationRegion {
                key: key.into(),
                key_region: region.into(),
                region: destination_region.into(),
            });
        }
        return Ok(());
    }
    if key == "alias/" || key.starts_with("alias/aws/") && key != "alias/aws/ebs" {
        return Err(FerryError::invalid(
            field,
            "name a customer managed key alias or alias/aws/ebs",
        ));
    }
    let plain_id = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if key.starts_with("alias/") || plain_id {
        return Ok(());
    }
    Err(FerryError::invalid(
        field,
        "give a key id, key ARN, alias name (alias/…) or alias ARN",
    ))
}

/// Checks everything a request can be checked for without AWS. Nothing is copied on failure.
pub fn validate(request: &Replication) -> Result<SourceKind, FerryError> {
    let source_region = &request.source.region;
    let destination_region = &request.destination.region;
    if !is_region(source_region) {
        return Err(FerryError::invalid(
            "source.region",
            format!("{source_region:?} is not an AWS Region such as us-east-1"),
        ));
    }
    if !is_region(destination_region) {
        return Err(FerryError::invalid(
            "destination.region",
            format!("{destination_region:?} is not an AWS Region such as us-west-2"),
        ));
    }
    if source_region == destination_region {
        return Err(FerryError::invalid(
            "destination.region",
            "must differ from source.region: ferry copies across Regions",
        ));
    }
    let (kind, id) = request.source_ref()?;
    match kind {
        SourceKind::Image if !is_resource_id(id, "ami") => {
            return Err(FerryError::invalid(
                "source.imageId",
                format!("{id:?} is not an AMI id (ami- and 8 or 17 hex digits)"),
            ))
        }
        SourceKind::Snapshot if !is_resource_id(id, "snap") => {
            return Err(FerryError::invalid(
                "source.snapshotId",
                format!("{id:?} is not a snapshot id (snap- and 8 or 17 hex digits)"),
            ))
        }
        _ => {}
    }
    check_key_reference(&request.destination.kms_key_id, destination_region)?;
    check_wiring(
        &request.destination.launch_templates,
        request.destination.ssm_parameter.as_deref(),
        kind == SourceKind::Image,
    )?;
    check_boot_check(
        request.destination.boot_check.as_ref(),
        kind == SourceKind::Image,
    )?;
    if let Some(retention) = &request.destination.retention {
        if kind != SourceKind::Image {
            return Err(FerryError::invalid(
                "destination.retention",
                "retention keeps and retires AMI replicas: replicate an imageId, or drop it",
            ));
        }
        check_retention(retention).map_err(|(field, reason)| {
            FerryError::invalid(format!("destination.retention.{field}"), reason)
        })?;
    }
    let options = &request.options;
    if let Some(minutes) = options.completion_duration_minutes {
        if !(15..=2880).contains(&minutes) || minutes % 15 != 0 {
            return Err(FerryError::invalid(
                "options.completionDurationMinutes",
                format!("{minutes} must be a multiple of 15 from 15 to 2880"),
            ));
        }
    }
    if options.attempt == Some(0) {
        return Err(FerryError::invalid(
            "options.attempt",
            "attempts count from 1",
        ));
    }
    if let Some(batch) = &options.batch {
        check_tag_value(batch)
            .map_err(|error| FerryError::invalid("options.batch", error.to_string()))?;
    }
    if let Some(fsr) = &options.fsr {
        if fsr.availability_zones.len() > MAX_FSR_ZONES {
            return Err(FerryError::invalid(
                "options.fsr.availabilityZones",
                format!("at most {MAX_FSR_ZONES} zones"),
            ));
        }
        if fsr.availability_zones.is_empty() {
            return Err(FerryError::invalid(
                "options.fsr.availabilityZones",
                "name at least one Availability Zone, or leave fsr out",
            ));
        }
        if let Some(zone) = fsr
            .availability_zones
            .iter()
            .find(|zone| !is_zone_of(zone, destination_region))
        {
            return Err(FerryError::invalid(
                "options.fsr.availabilityZones",
                format!("{zone:?} is not an Availability Zone of {destination_region}"),
            ));
        }
        if let Some(hours) = fsr.disable_after_hours {
            if !(hours.is_finite() && hours > 0.0 && hours <= 8760.0) {
                return Err(FerryError::invalid(
                    "options.fsr.disableAfterHours",
                    format!("{hours} must be more than 0 and at most 8760 hours"),
                ));
            }
        }
    }
    Ok(kind)
}

pub fn is_zone_of(zone: &str, region: &str) -> bool {
    zone.strip_prefix(region)
        .is_some_and(|suffix| suffix.len() == 1 && suffix.chars().all(|c| c.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(overrides: serde_json::Value) -> Replication {
        let mut base = json!({
            "source": {"region": "us-east-1", "imageId": "ami-0123456789abcdef0"},
            "destination": {"region": "us-west-2", "kmsKeyId": "alias/prod-ebs-usw2"}
        });
        merge(&mut base, overrides);
        Replication::from_json(base).unwrap()
    }

    fn merge(base: &mut serde_json::Value, overrides: serde_json::Value) {
        if let (Some(base), serde_json::Value::Object(overrides)) =
            (base.as_object_mut(), overrides)
        {
            for (key, value) in overrides {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
    }

    fn rejected_field(overrides: serde_json::Value) -> String {
        match validate(&request(overrides)).unwrap_err() {
            FerryError::InvalidRequest { field, .. } => field,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_image_request_is_valid() {
        assert_eq!(validate(&request(json!({}))).unwrap(), SourceKind::Image);
    }

    #[test]
    fn every_listed_region_is_a_region_code() {
        assert!(AWS_REGIONS.iter().all(|r| is_region_code(r)));
    }

    #[test]
    fn region_codes_are_recognised() {
        for good in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-5",
            "il-central-1",
        ] {
            assert!(is_region_code(good), "{good}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "moon-base-1",
            "us--1",
            "us-east-100",
        ] {
            assert!(!is_region_code(bad), "{bad}");
        }
    }

    #[test]
    fn malformed_ids_and_regions_name_their_field() {
        assert_eq!(
            rejected_field(json!({"source": {"region": "nowhere"}})),
            "source.region"
        );
        assert_eq!(
            rejected_field(json!({"source": {"region": "us-east-9"}})),
            "source.region",
            "looks like a Region, is none"
        );
        assert_eq!(
            rejected_field(json!({"destination": {"region": "us-west"}})),
            "destination.region"
        );
        assert_eq!(
            rejected_field(json!({"destination": {"region": "us-east-1"}})),
            "destination.region"
        );
        assert_eq!(
            rejected_field(json!({"source": {"imageId": "snap-0123456789abcdef0"}})),
            "source.imageId"
        );
        assert_eq!(
            rejected_field(json!({"source": {"imageId": "ami-XYZ"}})),
            "source.imageId"
        );
    }

    #[test]
    fn key_arn_in_another_region_is_refused_before_any_call() {
        let error = validate(&request(json!({"destination": {"kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}}))).unwrap_err();
        assert_eq!(error.name(), "KeyNotInDestinationRegion");
        assert!(error.to_string().contains("eu-west-1"));
    }

    #[test]
    fn key_references_of_every_form_are_accepted() {
        for key in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "alias/prod-ebs-usw2",
            "alias/aws/ebs",
            "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-west-2:111122223333:alias/prod-ebs-usw2",
        ] {
            assert!(
                validate(&request(json!({"destination": {"kmsKeyId": key}}))).is_ok(),
                "{key}"
            );
        }
        assert_eq!(
            rejected_field(json!({"destination": {"kmsKeyId": ""}})),
            "destination.kmsKeyId"
        );
        assert_eq!(
            rejected_field(json!({"destination": {"kmsKeyId": "alias/aws/s3"}})),
            "destination.kmsKeyId"
        );
        assert_eq!(
            rejected_field(json!({"destination": {"kmsKeyId": "key with spaces"}})),
            "destination.kmsKeyId"
        );
    }

    #[test]
    fn completion_duration_must_be_a_quarter_hour_step() {
        assert!(validate(&request(
            json!({"options": {"completionDurationMinutes": 45}})
        ))
        .is_ok());
        for bad in [0, 10, 20, 2895] {
            assert_eq!(
                rejected_field(json!({"options": {"completionDurationMinutes": bad}})),
                "options.completionDurationMinutes"
            );
        }
    }

    #[test]
    fn hostile_batch_labels_are_refused() {
        for bad in [
            "aws:reserved",
            "line\nbreak",
            "bell\u{7}",
            &"x".repeat(257),
            "semi;colon",
        ] {
            assert_eq!(
                rejected_field(json!({"options": {"batch": bad}})),
                "options.batch",
                "{bad:?}"
            );
        }
        assert!(validate(&request(
            json!({"options": {"batch": "dr-2026-11 nightly/eu@ops"}})
        ))
        .is_ok());
    }

    #[test]
    fn wiring_names_are_checked_and_only_amis_are_wired() {
        assert!(validate(&request(json!({"destination": {
            "launchTemplates": [{"name": "web", "setDefault": true}],
            "ssmParameter": "/golden/web/ami"
        }})))
        .is_ok());
        assert_eq!(
            rejected_field(json!({"destination": {"launchTemplates": [{"name": "w"}]}})),
            "destination.launchTemplates"
        );
        assert_eq!(
            rejected_field(json!({"destination": {"ssmParameter": "/aws/service/x"}})),
            "destination.ssmParameter"
        );
        assert_eq!(
            rejected_field(json!({
                "source": {"imageId": null, "snapshotId": "snap-0123456789abcdef0"},
                "destination": {"ssmParameter": "/golden/web/ami"}
            })),
            "destination.ssmParameter"
        );
        let unknown = Replication::from_json(json!({
            "source": {"region": "us-east-1", "imageId": "ami-0123456789abcdef0"},
            "destination": {"region": "us-west-2", "kmsKeyId": "alias/k",
                            "launchTemplates": [{"name": "web", "default": true}]}
        }))
        .unwrap_err();
        assert!(unknown.to_string().contains("default"), "{unknown}");
    }

    #[test]
    fn fsr_zones_must_belong_to_the_destination_region() {
        assert!(validate(&request(
            json!({"options": {"fsr": {"availabilityZones": ["us-west-2a", "us-west-2b"]}}})
        ))
        .is_ok());
        assert_eq!(
            rejected_field(json!({"options": {"fsr": {"availabilityZones": ["us-east-1a"]}}})),
            "options.fsr.availabilityZones"
        );
        assert_eq!(
            rejected_field(json!({"options": {"fsr": {"availabilityZones": []}}})),
            "options.fsr.availabilityZones"
        );
        assert_eq!(
            rejected_field(
                json!({"options": {"fsr": {"availabilityZones": ["us-west-2a"], "disableAfterHours": -1}}})
            ),
            "options.fsr.disableAfterHours"
        );
    }
}
