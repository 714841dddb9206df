//! The replication policy: which sources are replicated (by tag) and where. Deployed as JSON
//! through the template's `ReplicationPolicy` parameter (`FERRY_POLICY`); see infra/README.md.

use serde::{Deserialize, Serialize};

use crate::document::{BootCheckRequest, FsrOptions, LaunchTemplateRef, RetentionRequest};
use crate::error::FerryError;
use crate::rules::boot_check::check_boot_check;
use crate::rules::request::is_region;
use crate::rules::retention::{check_retention, RetentionTarget};
use crate::rules::wiring::{check_parameter_name, check_templates};

/// Most destination Regions one policy may name.
pub const MAX_DESTINATIONS: usize = 16;

/// At most this many snapshot copies run at once per destination Region (AWS quota).
pub const AWS_COPIES_IN_FLIGHT_PER_REGION: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    pub selection: Selection,
    #[serde(default)]
    pub require_encrypted_source: bool,
    /// Regions the DR sweep scans for selected sources.
    #[serde(default)]
    pub source_regions: Vec<String>,
    #[serde(default)]
    pub copy_source_tags: bool,
    #[serde(default = "default_in_flight")]
    pub max_copies_in_flight_per_region: usize,
    pub destinations: Vec<PolicyDestination>,
}

fn default_in_flight() -> usize {
    AWS_COPIES_IN_FLIGHT_PER_REGION
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selection {
    pub tag_key: String,
    /// Accepted values; empty means any value of `tag_key`.
    #[serde(default)]
    pub tag_values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyDestination {
    pub region: String,
    pub kms_key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsr: Option<FsrOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_duration_minutes: Option<i64>,
    /// AMI replications only: launch templates wire-destination versions for the replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_templates: Vec<LaunchTemplateRef>,
    /// AMI replications only: the `aws:ec2:image` SSM parameter set to the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm_parameter: Option<String>,
    /// AMI replications only: boot one instance from each verified replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_check: Option<BootCheckRequest>,
    /// AMI replications only: which replicas of each image family the scheduled step keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionRequest>,
}

/// Why a policy document is refused; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("not a ferry policy: {0}")]
    NotAPolicy(#[from] serde_json::Error),
    #[error("selection.tagKey must name the tag that selects sources")]
    NoSelectionTag,
    #[error("destinations must list at least one {{region, kmsKeyId}}")]
    NoDestinations,
    #[error("{count} destinations; at most {MAX_DESTINATIONS}")]
    TooManyDestinations { count: usize },
    #[error("{region:?} is not an AWS Region")]
    NotARegion { region: String },
    #[error("maxCopiesInFlightPerRegion {value} must be 1..={AWS_COPIES_IN_FLIGHT_PER_REGION} (the AWS quota)")]
    CopiesInFlightOutOfRange { value: usize },
    #[error("destination {region}: {field}: {reason}")]
    InvalidWiring {
        region: String,
        field: &'static str,
        reason: String,
    },
}

impl Policy {
    /// The destinations that ask for retention, as the scheduled step and `ferry prune` apply it.
    pub fn retention_targets(&self) -> Vec<RetentionTarget> {
        self.destinations
            .iter()
            .filter_map(|d| {
                Some(RetentionTarget {
                    region: d.region.clone(),
                    retention: d.retention.clone()?,
                    ssm_parameter: d.ssm_parameter.clone(),
                })
            })
            .collect()
    }

    /// Parses and checks a policy document.
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = serde_json::from_str(json)?;
        if policy.selection.tag_key.is_empty() {
            return Err(PolicyError::NoSelectionTag);
        }
        if policy.destinations.is_empty() {
            return Err(PolicyError::NoDestinations);
        }
        if policy.destinations.len() > MAX_DESTINATIONS {
            return Err(PolicyError::TooManyDestinations {
                count: policy.destinations.len(),
            });
        }
        if let Some(bad) = policy
            .destinations
            .iter()
            .map(|d| &d.region)
            .chain(&policy.source_regions)
            .find(|r| !is_region(r))
        {
            return Err(PolicyError::NotARegion {
                region: bad.clone(),
            });
        }
        if !(1..=AWS_COPIES_IN_FLIGHT_PER_REGION).contains(&policy.max_copies_in_flight_per_region)
        {
            return Err(PolicyError::CopiesInFlightOutOfRange {
                value: policy.max_copies_in_flight_per_region,
            });
        }
        for destination in &policy.destinations {
            let invalid = |field, reason| PolicyError::InvalidWiring {
                region: destination.region.clone(),
                field,
                reason,
            };
            check_templates(&destination.launch_templates)
                .map_err(|reason| invalid("launchTemplates", reason))?;
            if let Some(name) = &destination.ssm_parameter {
                check_parameter_name(name).map_err(|reason| invalid("ssmParameter", reason))?;
            }
            check_boot_check(destination.boot_check.as_ref(), true).map_err(|error| {
                invalid(
                    "bootCheck",
                    match error {
                        FerryError::InvalidRequest { field, reason } => {
                            format!("{field}: {reason}")
                        }
                        other => other.to_string(),
                    },
                )
            })?;
            if let Some(retention) = &destination.retention {
                check_retention(retention).map_err(|(field, reason)| {
                    invalid("retention", format!("{field}: {reason}"))
                })?;
            }
        }
        Ok(policy)
    }

    /// Whether a source carrying `tags` is selected.
    pub fn selects(&self, tags: &[crate::ports::Tag]) -> bool {
        tags.iter().any(|t| {
            t.key == self.selection.tag_key
                && (self.selection.tag_values.is_empty()
                    || self.selection.tag_values.contains(&t.value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Tag;

    const EXAMPLE: &str = include_str!("../../../infra/policy.example.json");

    #[test]
    fn the_documented_example_policy_parses() {
        let policy = Policy::parse(EXAMPLE).unwrap();
        assert_eq!(policy.max_copies_in_flight_per_region, 20);
        assert!(!policy.destinations.is_empty());
    }

    #[test]
    fn sources_are_selected_by_tag_key_and_value() {
        let policy = Policy::parse(r#"{"selection": {"tagKey": "dr", "tagValues": ["yes"]}, "destinations": [{"region": "us-west-2", "kmsKeyId": "alias/k"}]}"#).unwrap();
        assert!(policy.selects(&[Tag::new("dr", "yes")]));
        assert!(!policy.selects(&[Tag::new("dr", "no")]));
        assert!(!policy.selects(&[]));
        let any = Policy {
            selection: Selection {
                tag_key: "dr".into(),
                tag_values: vec![],
            },
            ..policy
        };
        assert!(any.selects(&[Tag::new("dr", "whatever")]));
    }

    #[test]
    fn a_broken_policy_is_refused_naming_what_to_fix() {
        let parse = |json: &str| Policy::parse(json).unwrap_err();
        let not_a_policy = parse("{}");
        assert!(matches!(not_a_policy, PolicyError::NotAPolicy(_)));
        assert!(not_a_policy.to_string().starts_with("not a ferry policy: "));
        assert!(matches!(
            parse(
                r#"{"selection": {"tagKey": ""}, "destinations": [{"region": "us-west-2", "kmsKeyId": "k"}]}"#
            ),
            PolicyError::NoSelectionTag
        ));
        assert!(matches!(
            parse(r#"{"selection": {"tagKey": "dr"}, "destinations": []}"#),
            PolicyError::NoDestinations
        ));
        let seventeen: Vec<String> = (0..17)
            .map(|_| r#"{"region": "us-west-2", "kmsKeyId": "k"}"#.to_string())
            .collect();
        let too_many = format!(
            r#"{{"selection": {{"tagKey": "dr"}}, "destinations": [{}]}}"#,
            seventeen.join(",")
        );
        assert!(matches!(
            parse(&too_many),
            PolicyError::TooManyDestinations { count: 17 }
        ));
        let over_quota = r#"{"selection": {"tagKey": "dr"}, "maxCopiesInFlightPerRegion": 50, "destinations": [{"region": "us-west-2", "kmsKeyId": "k"}]}"#;
        let error = parse(over_quota);
        assert!(matches!(
            error,
            PolicyError::CopiesInFlightOutOfRange { value: 50 }
        ));
        assert!(error.to_string().contains("the AWS quota"), "{error}");
        assert!(matches!(
            parse(r#"{"selection": {"tagKey": "dr"}, "sourceRegions": ["mars-1"], "destinations": [{"region": "us-west-2", "kmsKeyId": "k"}]}"#),
            PolicyError::NotARegion { region } if region == "mars-1"
        ));
        let bad_parameter = parse(
            r#"{"selection": {"tagKey": "dr"}, "destinations": [{"region": "us-west-2", "kmsKeyId": "k", "ssmParameter": "/aws/x"}]}"#,
        );
        assert!(
            matches!(
                bad_parameter,
                PolicyError::InvalidWiring {
                    field: "ssmParameter",
                    ..
                }
            ),
            "{bad_parameter}"
        );
        assert!(matches!(
            parse(
                r#"{"selection": {"tagKey": "dr"}, "destinations": [{"region": "us-west-2", "kmsKeyId": "k", "launchTemplates": [{"name": "a b"}]}]}"#
            ),
            PolicyError::InvalidWiring {
                field: "launchTemplates",
                ..
            }
        ));
    }

    #[test]
    fn a_destination_may_wire_launch_templates_and_a_parameter() {
        let policy = Policy::parse(r#"{"selection": {"tagKey": "dr"}, "destinations": [{"region": "us-west-2", "kmsKeyId": "k", "launchTemplates": [{"name": "web", "setDefault": true}], "ssmParameter": "/golden/web/ami"}]}"#).unwrap();
        let destination = &policy.destinations[0];
        assert_eq!(destination.launch_templates[0].name, "web");
        assert!(destination.launch_templates[0].set_default);
        assert_eq!(
            destination.ssm_parameter.as_deref(),
            Some("/golden/web/ami")
        );
    }
}
