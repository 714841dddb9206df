//! Planning decisions as pure functions over what EC2 listed: what a trigger asks
//! ([`trigger`]), which sources are replicated ([`select`](mod@select)), and how the work is
//! packed per destination Region, under which names, and how many run at once ([`pack`]).
//!
//! Facts relied on (../shared/AWS-FACTS.md): at most 20 snapshot copies in flight per
//! destination Region (`ResourceLimitExceeded` beyond it); CopyImage copies an AMI's snapshots
//! itself, so a snapshot that backs a selected AMI never needs a copy of its own; Step Functions
//! execution names are at most 80 characters of `[A-Za-z0-9_-]`, unique per state machine.

pub mod pack;
pub mod select;
pub mod trigger;

use std::collections::BTreeSet;

use crate::document::Replication;
use crate::error::FerryError;
use crate::plan::{Skipped, Trigger, WorkItem};
use crate::policy::Policy;
use crate::ports::{ImageInfo, SnapshotInfo};
use crate::rules::lineage::hex_digest;
use pack::{already_replicated, work_lists, RegionWorkList};
use select::{select, Listed, Selection, SourceListing, VerifiedReplicas};

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

/// What a trigger decides, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub trigger: Trigger,
    pub lists: Vec<RegionWorkList>,
    pub skipped: Vec<Skipped>,
    /// (source, destination) pairs that already have a verified replica.
    pub already: usize,
    pub backing_dropped: usize,
    /// Snapshot copies at once per destination Region.
    pub budget: usize,
    pub sweep_regions: Vec<String>,
    /// The policy destinations with retention (a sweep's scheduled step retires their replicas).
    pub retention: Vec<crate::rules::retention::RetentionTarget>,
}

impl Decision {
    /// No work: only `skipped`, with their reasons.
    pub fn nothing(trigger: Trigger, skipped: Vec<Skipped>) -> Decision {
        Decision {
            trigger,
            lists: vec![],
            skipped,
            already: 0,
            backing_dropped: 0,
            budget: 1,
            sweep_regions: vec![],
            retention: vec![],
        }
    }

    /// A console request: exactly that replication, whatever the policy says.
    pub fn request(document: Replication, run: &str) -> Decision {
        let item = WorkItem {
            name: execution_name(run, document.source_id(), &document.destination.region),
            replication: document,
        };
        Decision {
            lists: vec![RegionWorkList {
                region: item.replication.destination.region.clone(),
                items: vec![item],
                snapshot_copies: 1,
            }],
            ..Decision::nothing(Trigger::Request, vec![])
        }
    }

    /// Sources an event named, as EC2 describes them in `region`, to every destination of the
    /// policy. One the policy refuses as unencrypted fails the plan with `SourceNotEncrypted`.
    pub fn event(
        policy: &Policy,
        region: &str,
        images: &[ImageInfo],
        snapshots: &[SnapshotInfo],
        run: &str,
    ) -> Result<Decision, FerryError> {
        let mut selection = select(policy, Listed::all(region, images, snapshots));
        if let Some(refused) = selection.not_encrypted {
            return Err(refused.into());
        }
        let lists = work_lists(
            policy,
            &selection.candidates,
            &BTreeSet::new(),
            None,
            run,
            &mut selection.skipped,
        );
        Ok(Decision {
            lists,
            budget: policy.max_copies_in_flight_per_region,
            ..Decision::nothing(Trigger::Event, selection.skipped)
        })
    }

    /// The DR sweep: every selected source of `sources` that lacks a verified replica in a
    /// destination Region is planned for that Region only; one the policy refuses as
    /// unencrypted is skipped with that reason. `attempt` is the sweep's day number.
    pub fn sweep(
        policy: &Policy,
        sources: &[SourceListing],
        verified: &VerifiedReplicas,
        attempt: Option<u32>,
        run: &str,
    ) -> Decision {
        let Selection {
            candidates,
            mut skipped,
            ..
        } = select(policy, sources.iter().flat_map(SourceListing::listed));
        let already = already_replicated(policy, &candidates, verified);
        Decision {
            trigger: Trigger::Sweep,
            lists: work_lists(policy, &candidates, verified, attempt, run, &mut skipped),
            skipped,
            already,
            backing_dropped: sources.iter().map(|s| s.backing_dropped).sum(),
            budget: policy.max_copies_in_flight_per_region,
            sweep_regions: policy
                .destinations
                .iter()
                .map(|d| d.region.clone())
                .collect(),
            retention: policy.retention_targets(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
