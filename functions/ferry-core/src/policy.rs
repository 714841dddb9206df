//! The replication policy: which sources are replicated (by tag) and where. Deployed as JSON
//! through the template's `ReplicationPolicy` parameter (`FERRY_POLICY`); see infra/README.md.

use serde::{Deserialize, Serialize};

use crate::document::FsrOptions;
use crate::rules::request::is_region;

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
}

impl Policy {
    /// Parses and checks a policy document; the error says what to fix.
    pub fn parse(json: &str) -> Result<Policy, String> {
        let policy: Policy =
            serde_json::from_str(json).map_err(|e| format!("not a ferry policy: {e}"))?;
        if policy.selection.tag_key.is_empty() {
            return Err("selection.tagKey must name the tag that selects sources".into());
        }
        if policy.destinations.is_empty() {
            return Err("destinations must list at least one {region, kmsKeyId}".into());
        }
        if policy.destinations.len() > MAX_DESTINATIONS {
            return Err(format!(
                "{} destinations; at most {MAX_DESTINATIONS}",
                policy.destinations.len()
            ));
        }
        if let Some(bad) = policy
            .destinations
            .iter()
            .map(|d| &d.region)
            .chain(&policy.source_regions)
            .find(|r| !is_region(r))
        {
            return Err(format!("{bad:?} is not an AWS Region"));
        }
        if !(1..=AWS_COPIES_IN_FLIGHT_PER_REGION).contains(&policy.max_copies_in_flight_per_region)
        {
            return Err(format!("maxCopiesInFlightPerRegion must be 1..={AWS_COPIES_IN_FLIGHT_PER_REGION} (the AWS quota)"));
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
    fn a_broken_policy_says_what_to_fix() {
        assert!(Policy::parse("{}")
            .unwrap_err()
            .contains("not a ferry policy"));
        assert!(
            Policy::parse(r#"{"selection": {"tagKey": "dr"}, "destinations": []}"#)
                .unwrap_err()
                .contains("destinations")
        );
        let over_quota = r#"{"selection": {"tagKey": "dr"}, "maxCopiesInFlightPerRegion": 50, "destinations": [{"region": "us-west-2", "kmsKeyId": "k"}]}"#;
        assert!(Policy::parse(over_quota).unwrap_err().contains("quota"));
        assert!(Policy::parse(r#"{"selection": {"tagKey": "dr"}, "destinations": [{"region": "mars-1", "kmsKeyId": "k"}]}"#).unwrap_err().contains("mars-1"));
    }
}
