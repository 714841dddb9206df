//! The planner's documents: what plan-replication answers (a [`Plan`] of counts and keys, or a
//! run's summary) and what it writes to the stack's bucket (each Region's work list of
//! [`WorkItem`]s and `plan.json`). Field names are camelCase and fixed: the state machine reads
//! them by path.

use serde::{Deserialize, Serialize};

use crate::document::Replication;
use crate::rules::summary::RunSummary;

/// What started the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    Request,
    Event,
    Sweep,
}

/// The planner's answer: counts, the bucket and keys; never the work itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub trigger: Trigger,
    /// The run's tag: every key of this run is under `runs/<run>/`.
    pub run: String,
    pub replication_count: usize,
    /// Sources the sweep found already replicated and verified, per destination Region.
    pub already_replicated: usize,
    /// Selected snapshots left out because they back a selected AMI (CopyImage copies them).
    pub backing_snapshots_dropped: usize,
    pub skipped_count: usize,
    /// The first few skip reasons; every one is in `plan.json`.
    pub skipped: Vec<Skipped>,
    pub bucket: String,
    pub plan_key: String,
    /// Where the fan-out writes each Region's results (`ResultWriter`).
    pub results_prefix: String,
    /// One entry per destination Region with work (at most the policy's 16 destinations).
    pub regions: Vec<RegionWork>,
    /// Destination Regions the scheduled step sweeps: FSR due to be disabled, boot-check
    /// instances past their limit.
    pub sweep_regions: Vec<String>,
    /// The destinations whose replicas the scheduled step retires (retire-replicas).
    #[serde(default)]
    pub retention: Vec<crate::rules::retention::RetentionTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionWork {
    pub region: String,
    pub count: usize,
    /// The work list: a JSON array of `{name, replication}` items.
    pub key: String,
    /// Replications at once in this Region (the Distributed Map's `MaxConcurrency`).
    pub max_concurrency: usize,
}

/// `plan.json`: everything the run decided, for operators and `ferry status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRecord {
    pub plan: Plan,
    pub execution_id: Option<String>,
    pub skipped: Vec<Skipped>,
}

/// What the planner Lambda answers: a plan, or a run's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PlannerOutput {
    Plan(Plan),
    Summary(RunSummary),
}

/// A source the run leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub source: String,
    pub reason: String,
}

/// One item of a work list: a replication request and the name of the execution that runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkItem {
    pub name: String,
    pub replication: Replication,
}
