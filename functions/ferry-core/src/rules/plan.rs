//! Planning decisions as pure functions over what EC2 listed: which sources are replicated,
//! to which Regions, under which names, and how many run at once per Region.
//!
//! Facts relied on (../shared/AWS-FACTS.md): at most 20 snapshot copies in flight per
//! destination Region (`ResourceLimitExceeded` beyond it); CopyImage copies an AMI's snapshots
//! itself, so a snapshot that backs a selected AMI never needs a copy of its own; Step Functions
//! execution names are at most 80 characters of `[A-Za-z0-9_-]`, unique per state machine.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::document::{Destination, Options, Replication, Source, SourceKind};
use crate::error::FerryError;
use crate::policy::Policy;
use crate::ports::{ImageInfo, SnapshotInfo, Tag};
use crate::rules::lineage::{self, hex_digest};

/// How many skip reasons the plan's output shows; all of them are in `plan.json`.
pub const SKIPPED_SHOWN: usize = 10;

/// A selected source, with the number of snapshot copies replicating it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub region: String,
    pub kind: SourceKind,
    pub id: String,
    pub snapshot_copies: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub source: String,
    pub reason: String,
}

/// What the policy decides for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspection {
    Selected(Candidate),
    Skipped(Skipped),
}

/// One source as EC2 listed it: its tags, and each of its snapshots with whether it is encrypted.
pub struct Listed<'a> {
    pub region: &'a str,
    pub kind: SourceKind,
    pub id: &'a str,
    pub tags: &'a [Tag],
    pub snapshots: Vec<(&'a str, bool)>,
}

impl<'a> Listed<'a> {
    /// An image with the snapshots of its block-device mappings.
    pub fn image(region: &'a str, image: &'a ImageInfo) -> Self {
        Listed {
            region,
            kind: SourceKind::Image,
            id: &image.image_id,
            tags: &image.tags,
            snapshots: image
                .snapshots
                .iter()
                .map(|s| (s.snapshot_id.as_str(), s.encrypted))
                .collect(),
        }
    }

    /// A snapshot on its own.
    pub fn snapshot(region: &'a str, snapshot: &'a SnapshotInfo) -> Self {
        Listed {
            region,
            kind: SourceKind::Snapshot,
            id: &snapshot.snapshot_id,
            tags: &snapshot.tags,
            snapshots: vec![(snapshot.snapshot_id.as_str(), snapshot.encrypted)],
        }
    }
}

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

/// Applies the policy to one listed source: no copies of copies, selection by tag, and (when
/// the policy requires it) encrypted snapshots only, which is a named error.
pub fn inspect(policy: &Policy, source: &Listed) -> Result<Inspection, FerryError> {
    let skip = |reason: String| {
        Ok(Inspection::Skipped(Skipped {
            source: format!("{}/{}", source.region, source.id),
            reason,
        }))
    };
    if tag(source.tags, lineage::MANAGED_BY) == Some("ferry") {
        let origin = tag(source.tags, lineage::SOURCE_ID).unwrap_or("?");
        return skip(format!(
            "a copy ferry made (of {origin}): copies are never replicated again"
        ));
    }
    if !policy.selects(source.tags) {
        let values = &policy.selection.tag_values;
        let accepted = if values.is_empty() {
            String::new()
        } else {
            format!(" with a value in [{}]", values.join(", "))
        };
        return skip(format!(
            "not selected: it lacks the tag {}{accepted}",
            policy.selection.tag_key
        ));
    }
    let unencrypted: Vec<&str> = source
        .snapshots
        .iter()
        .filter(|(_, encrypted)| !encrypted)
        .map(|(id, _)| *id)
        .collect();
    if policy.require_encrypted_source && !unencrypted.is_empty() {
        return Err(FerryError::SourceNotEncrypted {
            id: source.id.into(),
            snapshots: unencrypted.join(", "),
        });
    }
    Ok(Inspection::Selected(Candidate {
        region: source.region.into(),
        kind: source.kind,
        id: source.id.into(),
        snapshot_copies: source.snapshots.len().max(1),
    }))
}

/// The snapshots behind `images`' block-device mappings: CopyImage copies them, so they are
/// never replicated on their own.
pub fn backing_snapshots(images: &[ImageInfo]) -> BTreeSet<String> {
    images
        .iter()
        .flat_map(|image| image.snapshots.iter().map(|s| s.snapshot_id.clone()))
        .collect()
}

/// `(destination Region, source Region, source id)` of every verified replica ferry made,
/// read from the lineage tags of what a destination lists.
pub fn verified_replicas<'a>(
    destination: &str,
    replica_tags: impl IntoIterator<Item = &'a [Tag]>,
) -> BTreeSet<(String, String, String)> {
    replica_tags
        .into_iter()
        .filter_map(|tags| {
            Some((
                destination.to_string(),
                tag(tags, lineage::SOURCE_REGION)?.to_string(),
                tag(tags, lineage::SOURCE_ID)?.to_string(),
            ))
        })
        .collect()
}

/// One unit of work: a replication request and the name of the execution that runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkItem {
    pub name: String,
    pub replication: Replication,
}

/// A run's tag: 16 hex characters derived from the execution (or request) it plans for.
pub fn run_tag(execution: &str) -> String {
    hex_digest(&["ferry-run-v1", execution])[..16].to_string()
}

/// The name of the execution that replicates `source_id` to `destination_region` in a run:
/// `<run tag>-<source id>-<destination Region>`, at most 80 characters as Step Functions allows.
pub fn execution_name(run: &str, source_id: &str, destination_region: &str) -> String {
    let name = format!("{run}-{source_id}-{destination_region}");
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect()
}

/// How many replications run at once in a Region: the policy's snapshot-copy budget divided by
/// the mean number of snapshot copies a replication there takes, at least one.
pub fn region_concurrency(budget: usize, items: usize, snapshot_copies: usize) -> usize {
    if items == 0 || snapshot_copies == 0 {
        return budget.max(1);
    }
    (budget * items / snapshot_copies).clamp(1, budget.max(1))
}

/// The work of one destination Region.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionWorkList {
    pub region: String,
    pub items: Vec<WorkItem>,
    pub snapshot_copies: usize,
}

/// One request per (candidate, destination) not yet verified, per destination Region, in
/// the policy's order. A candidate in its own Region is skipped with that reason.
/// `attempt` is the sweep's day number: a copy that failed (and was cleaned up) gets a fresh
/// CopyImage token at the next day's sweep, while duplicate sweeps of one day still dedupe.
pub fn work_lists(
    policy: &Policy,
    candidates: &[Candidate],
    verified: &BTreeSet<(String, String, String)>,
    attempt: Option<u32>,
    run: &str,
    skipped: &mut Vec<Skipped>,
) -> Vec<RegionWorkList> {
    let mut lists = vec![];
    for destination in &policy.destinations {
        let mut list = RegionWorkList {
            region: destination.region.clone(),
            items: vec![],
            snapshot_copies: 0,
        };
        for candidate in candidates {
            if destination.region == candidate.region {
                skipped.push(Skipped {
                    source: format!("{}/{}", candidate.region, candidate.id),
                    reason: format!("{} is its own Region", destination.region),
                });
                continue;
            }
            let key = (
                destination.region.clone(),
                candidate.region.clone(),
                candidate.id.clone(),
            );
            if verified.contains(&key) {
                continue;
            }
            list.snapshot_copies += candidate.snapshot_copies;
            list.items.push(WorkItem {
                name: execution_name(run, &candidate.id, &destination.region),
                replication: Replication {
                    replication_id: None,
                    execution_id: None,
                    source: Source {
                        region: candidate.region.clone(),
                        image_id: (candidate.kind == SourceKind::Image)
                            .then(|| candidate.id.clone()),
                        snapshot_id: (candidate.kind == SourceKind::Snapshot)
                            .then(|| candidate.id.clone()),
                    },
                    destination: Destination {
                        region: destination.region.clone(),
                        kms_key_id: destination.kms_key_id.clone(),
                    },
                    options: Options {
                        copy_source_tags: Some(policy.copy_source_tags),
                        completion_duration_minutes: destination.completion_duration_minutes,
                        batch: None,
                        fsr: destination.fsr.clone(),
                        attempt,
                    },
                    key: None,
                    source_snapshots: vec![],
                    copy: None,
                    evidence: Default::default(),
                },
            });
        }
        if !list.items.is_empty() {
            lists.push(list);
        }
    }
    lists
}

/// How many (source, destination) pairs among `candidates` already have a verified replica.
pub fn already_replicated(
    policy: &Policy,
    candidates: &[Candidate],
    verified: &BTreeSet<(String, String, String)>,
) -> usize {
    candidates
        .iter()
        .map(|c| {
            policy
                .destinations
                .iter()
                .filter(|d| verified.contains(&(d.region.clone(), c.region.clone(), c.id.clone())))
                .count()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::DeviceSnapshot;

    fn policy(max: usize) -> Policy {
        Policy::parse(&format!(
            r#"{{"selection": {{"tagKey": "dr"}}, "requireEncryptedSource": true, "maxCopiesInFlightPerRegion": {max},
               "destinations": [{{"region": "us-west-2", "kmsKeyId": "alias/a"}}, {{"region": "us-east-1", "kmsKeyId": "alias/b"}}]}}"#
        ))
        .unwrap()
    }

    fn candidate(id: &str, copies: usize) -> Candidate {
        Candidate {
            region: "us-east-1".into(),
            kind: SourceKind::Image,
            id: id.into(),
            snapshot_copies: copies,
        }
    }

    fn image(id: &str, tags: &[(&str, &str)], snapshots: &[(&str, bool)]) -> ImageInfo {
        ImageInfo {
            image_id: id.into(),
            state: "available".into(),
            tags: tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
            snapshots: snapshots
                .iter()
                .map(|(s, encrypted)| DeviceSnapshot {
                    device_name: "/dev/xvda".into(),
                    snapshot_id: (*s).into(),
                    encrypted: *encrypted,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_source_region_is_never_a_destination_and_verified_replicas_are_not_planned() {
        let verified = BTreeSet::from([(
            "us-west-2".to_string(),
            "us-east-1".to_string(),
            "ami-00000001".to_string(),
        )]);
        let candidates = [candidate("ami-00000001", 1), candidate("ami-00000002", 1)];
        let mut skipped = vec![];
        let lists = work_lists(&policy(20), &candidates, &verified, None, "r", &mut skipped);
        assert_eq!(lists.len(), 1);
        let planned: Vec<_> = lists[0]
            .items
            .iter()
            .map(|w| w.replication.source.image_id.clone().unwrap())
            .collect();
        assert_eq!(planned, ["ami-00000002"]);
        assert_eq!(skipped.len(), 2, "both are skipped for their own Region");
        assert_eq!(already_replicated(&policy(20), &candidates, &verified), 1);
    }

    #[test]
    fn copies_ferry_made_and_unselected_sources_are_skipped_and_unencrypted_ones_are_named() {
        let policy = policy(20);
        let copy = image(
            "ami-1",
            &[("dr", "x"), (lineage::MANAGED_BY, "ferry")],
            &[("snap-1", true)],
        );
        let plain = image("ami-2", &[], &[("snap-2", true)]);
        let unencrypted = image(
            "ami-3",
            &[("dr", "x")],
            &[("snap-3", false), ("snap-4", true)],
        );
        let good = image(
            "ami-4",
            &[("dr", "x")],
            &[("snap-5", true), ("snap-6", true)],
        );
        let decide = |i: &ImageInfo| inspect(&policy, &Listed::image("us-east-1", i));
        assert!(
            matches!(decide(&copy), Ok(Inspection::Skipped(s)) if s.reason.contains("copies are never replicated"))
        );
        assert!(
            matches!(decide(&plain), Ok(Inspection::Skipped(s)) if s.reason.contains("lacks the tag dr"))
        );
        assert!(
            matches!(decide(&unencrypted), Err(FerryError::SourceNotEncrypted { snapshots, .. }) if snapshots == "snap-3")
        );
        assert_eq!(
            decide(&good).unwrap(),
            Inspection::Selected(candidate("ami-4", 2))
        );
    }

    #[test]
    fn snapshots_behind_images_are_the_backing_set() {
        let images = [
            image("ami-1", &[], &[("snap-1", true), ("snap-2", true)]),
            image("ami-2", &[], &[("snap-3", true)]),
        ];
        assert_eq!(
            backing_snapshots(&images),
            BTreeSet::from(["snap-1".into(), "snap-2".into(), "snap-3".into()])
        );
    }

    #[test]
    fn execution_names_are_unique_per_run_source_and_destination_and_fit_step_functions() {
        let run = run_tag("arn:aws:states:us-east-1:1:execution:ferry:abc");
        assert_eq!(run.len(), 16);
        let name = execution_name(&run, "snap-0123456789abcdef0", "ap-southeast-2");
        assert_eq!(name, format!("{run}-snap-0123456789abcdef0-ap-southeast-2"));
        assert!(name.len() <= 80);
        assert_ne!(
            name,
            execution_name(&run, "snap-0123456789abcdef0", "us-west-2")
        );
        assert_ne!(
            run,
            run_tag("arn:aws:states:us-east-1:1:execution:ferry:abd")
        );
        assert!(execution_name(&"x".repeat(90), "ami-1", "us-west-2").len() <= 80);
    }

    #[test]
    fn region_concurrency_divides_the_copy_budget_by_the_mean_snapshots_per_replication() {
        assert_eq!(
            region_concurrency(20, 300, 300),
            20,
            "snapshots: one copy each"
        );
        assert_eq!(
            region_concurrency(20, 100, 200),
            10,
            "AMIs of two snapshots"
        );
        assert_eq!(region_concurrency(20, 1, 30), 1, "never below one");
        assert_eq!(region_concurrency(5, 0, 0), 5);
    }
}
