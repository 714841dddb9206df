//! How a run's work is packed: one work list per destination Region of the sources that lack
//! a verified replica there, how many replications run at once in each, and where each list
//! and the plan are stored (`runs/<run>/…` in the stack's bucket).

use crate::document::{Destination, Options, Replication, Source, SourceKind};
use crate::plan::{Plan, PlanRecord, RegionWork, Skipped, WorkItem};
use crate::policy::Policy;
use crate::rules::plan::select::{Candidate, VerifiedReplicas};
use crate::rules::plan::{execution_name, Decision};

/// How many skip reasons the plan's output shows; all of them are in `plan.json`.
pub const SKIPPED_SHOWN: usize = 10;

/// The work of one destination Region.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionWorkList {
    pub region: String,
    pub items: Vec<WorkItem>,
    pub snapshot_copies: usize,
}

/// How many replications run at once in a Region: the policy's snapshot-copy budget divided by
/// the mean number of snapshot copies a replication there takes, at least one.
pub fn region_concurrency(budget: usize, items: usize, snapshot_copies: usize) -> usize {
    if items == 0 || snapshot_copies == 0 {
        return budget.max(1);
    }
    (budget * items / snapshot_copies).clamp(1, budget.max(1))
}

/// One request per (candidate, destination) not yet verified, per destination Region, in
/// the policy's order. A candidate in its own Region is skipped with that reason.
/// `attempt` is the sweep's day number: a copy that failed (and was cleaned up) gets a fresh
/// CopyImage token at the next day's sweep, while duplicate sweeps of one day still dedupe.
pub fn work_lists(
    policy: &Policy,
    candidates: &[Candidate],
    verified: &VerifiedReplicas,
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
                        // Wiring points templates and parameters at AMIs only.
                        launch_templates: match candidate.kind {
                            SourceKind::Image => destination.launch_templates.clone(),
                            SourceKind::Snapshot => vec![],
                        },
                        ssm_parameter: match candidate.kind {
                            SourceKind::Image => destination.ssm_parameter.clone(),
                            SourceKind::Snapshot => None,
                        },
                        boot_check: match candidate.kind {
                            SourceKind::Image => destination.boot_check.clone(),
                            SourceKind::Snapshot => None,
                        },
                        retention: match candidate.kind {
                            SourceKind::Image => destination.retention.clone(),
                            SourceKind::Snapshot => None,
                        },
                    },
                    options: Options {
                        copy_source_tags: Some(policy.copy_source_tags),
                        completion_duration_minutes: destination.completion_duration_minutes,
                        batch: None,
                        fsr: destination.fsr.clone(),
                        attempt,
                    },
                    key: None,
                    group: None,
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
    verified: &VerifiedReplicas,
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

/// A decided run as it is stored: each Region's work list under its key, in the plan's order,
/// and `plan.json`, whose plan is the planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub work_lists: Vec<(String, Vec<WorkItem>)>,
    pub record: PlanRecord,
}

/// Where `decision` goes in `bucket`: `runs/<run>/work/<Region>.json` per Region,
/// `runs/<run>/plan.json`, and `runs/<run>/results` for the fan-out. Every request carries
/// the execution that planned it.
pub fn lay_out(
    decision: Decision,
    run: &str,
    bucket: &str,
    execution_id: Option<String>,
) -> Layout {
    let prefix = format!("runs/{run}");
    let (mut regions, mut work_lists) = (vec![], vec![]);
    for mut list in decision.lists {
        for item in &mut list.items {
            item.replication.execution_id = execution_id.clone();
        }
        let key = format!("{prefix}/work/{}.json", list.region);
        regions.push(RegionWork {
            region: list.region,
            count: list.items.len(),
            key: key.clone(),
            max_concurrency: region_concurrency(
                decision.budget,
                list.items.len(),
                list.snapshot_copies,
            ),
        });
        work_lists.push((key, list.items));
    }
    let plan = Plan {
        trigger: decision.trigger,
        run: run.to_string(),
        replication_count: regions.iter().map(|r| r.count).sum(),
        already_replicated: decision.already,
        backing_snapshots_dropped: decision.backing_dropped,
        skipped_count: decision.skipped.len(),
        skipped: decision
            .skipped
            .iter()
            .take(SKIPPED_SHOWN)
            .cloned()
            .collect(),
        bucket: bucket.to_string(),
        plan_key: format!("{prefix}/plan.json"),
        results_prefix: format!("{prefix}/results"),
        regions,
        sweep_regions: decision.sweep_regions,
        retention: decision.retention,
    };
    Layout {
        work_lists,
        record: PlanRecord {
            plan,
            execution_id,
            skipped: decision.skipped,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::plan::Trigger;
    use crate::rules::plan::select::tests::{candidate, policy};

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
    fn a_destination_wires_its_ami_replications_and_never_its_snapshot_replications() {
        let mut wired = policy(20);
        for destination in &mut wired.destinations {
            destination.launch_templates = vec![crate::document::LaunchTemplateRef {
                name: "web".into(),
                set_default: true,
            }];
            destination.ssm_parameter = Some("/golden/web/ami".into());
        }
        let snapshot = Candidate {
            kind: SourceKind::Snapshot,
            id: "snap-00000001".into(),
            ..candidate("snap-00000001", 1)
        };
        let candidates = [candidate("ami-00000001", 1), snapshot];
        let lists = work_lists(
            &wired,
            &candidates,
            &BTreeSet::new(),
            None,
            "r",
            &mut vec![],
        );
        let destinations: Vec<_> = lists[0]
            .items
            .iter()
            .map(|w| {
                let d = &w.replication.destination;
                (d.launch_templates.len(), d.ssm_parameter.is_some())
            })
            .collect();
        assert_eq!(destinations, [(1, true), (0, false)]);
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

    #[test]
    fn a_run_is_laid_out_under_its_tag_with_every_request_naming_its_execution_and_few_skips_shown()
    {
        let mut skipped = (0..12)
            .map(|i| Skipped {
                source: format!("us-east-1/snap-{i}"),
                reason: "not selected".into(),
            })
            .collect();
        let candidates = [candidate("ami-1", 2), candidate("ami-2", 2)];
        let lists = work_lists(
            &policy(20),
            &candidates,
            &BTreeSet::new(),
            None,
            "run1",
            &mut skipped,
        );
        let decision = Decision {
            lists,
            budget: 20,
            ..Decision::nothing(Trigger::Sweep, skipped)
        };
        let layout = lay_out(decision, "run1", "bucket", Some("arn:execution".into()));
        let keys: Vec<&str> = layout.work_lists.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["runs/run1/work/us-west-2.json"]);
        assert!(layout.work_lists[0]
            .1
            .iter()
            .all(|item| item.replication.execution_id.as_deref() == Some("arn:execution")));
        let plan = &layout.record.plan;
        assert_eq!(
            (plan.plan_key.as_str(), plan.results_prefix.as_str()),
            ("runs/run1/plan.json", "runs/run1/results")
        );
        assert_eq!(plan.replication_count, 2);
        assert_eq!(
            plan.regions[0].max_concurrency, 10,
            "AMIs of two snapshots each"
        );
        assert_eq!(
            (plan.skipped_count, plan.skipped.len()),
            (14, SKIPPED_SHOWN),
            "12 unselected and 2 in their own Region"
        );
        assert_eq!(layout.record.skipped.len(), 14, "plan.json keeps every one");
    }
}
