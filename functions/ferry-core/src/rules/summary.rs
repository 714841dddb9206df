//! A run's outcome, read from the result files the fan-out's `ResultWriter` left in S3.
//!
//! Each Distributed Map writes `<prefix>/<map run id>/manifest.json` and, per status,
//! `SUCCEEDED_n.json`, `FAILED_n.json` and `PENDING_n.json`: JSON arrays of child results with
//! `Input`, `Output` (strings of JSON), `Error`, `Cause` and `ExecutionArn` (Step Functions
//! developer guide, "ResultWriter"). A replication that failed ends its own execution in a Fail
//! state; the `.sync:2` task that ran it then fails with `States.TaskFailed` and the child's
//! description as its cause, from which the replication's own error name is recovered.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many failures the summary's output shows; all of them are in `summary.json`.
pub const FAILURES_SHOWN: usize = 10;
/// Longest cause the output carries (the manifest keeps the whole cause).
pub const CAUSE_SHOWN_CHARS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutcomeStatus {
    Succeeded,
    Failed,
    /// The fan-out stopped before running it.
    NotRun,
}

/// One replication in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationOutcome {
    pub name: String,
    pub status: OutcomeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub source: Value,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub destination: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// `summary.json`: the run manifest `ferry status` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunManifest {
    pub run: String,
    pub replications: Vec<ReplicationOutcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureShown {
    pub name: String,
    pub error: String,
    pub cause: String,
}

/// The summary step's answer: counts and the manifest's key, O(1) in the fleet's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub run: String,
    /// Where `summary_key` is: the stack's work bucket.
    pub bucket: String,
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub not_run: usize,
    pub summary_key: String,
    /// The first failure, whose name the execution fails with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<FailureShown>,
    pub failures: Vec<FailureShown>,
}

fn parse_string(value: &Value) -> Value {
    match value {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
        other => other.clone(),
    }
}

fn field<'a>(value: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| value.get(*n).filter(|v| !v.is_null()))
}

fn text(value: Option<&Value>) -> Option<String> {
    value.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The replication's own error and cause inside a `.sync` task's failure.
fn replication_error(error: Option<String>, cause: Option<String>) -> (String, String) {
    let description = cause
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .unwrap_or(Value::Null);
    match (
        text(field(&description, &["Error", "error"])),
        text(field(&description, &["Cause", "cause"])),
    ) {
        (Some(inner), inner_cause) => (inner, inner_cause.unwrap_or_default()),
        (None, _) => (
            error.unwrap_or_else(|| "States.TaskFailed".into()),
            cause.unwrap_or_default(),
        ),
    }
}

fn outcome(status: OutcomeStatus, entry: &Value) -> ReplicationOutcome {
    let input = parse_string(entry.get("Input").unwrap_or(&Value::Null));
    let output = parse_string(entry.get("Output").unwrap_or(&Value::Null));
    let replication = &input["replication"];
    let result = field(&output, &["outcome"]).cloned().unwrap_or(Value::Null);
    let execution_arn =
        text(field(&output, &["executionArn"])).or_else(|| text(field(entry, &["ExecutionArn"])));
    let (error, cause) = match status {
        OutcomeStatus::Failed => {
            let (error, cause) = replication_error(
                text(field(entry, &["Error"])),
                text(field(entry, &["Cause"])),
            );
            (Some(error), Some(cause))
        }
        _ => (None, None),
    };
    ReplicationOutcome {
        name: text(field(&input, &["name"])).unwrap_or_default(),
        status,
        execution_arn,
        source: replication["source"].clone(),
        destination: replication["destination"].clone(),
        destination_id: text(field(&result, &["destinationId"])),
        error,
        cause,
    }
}

/// Builds the run's summary and manifest from `(key, body)` of every result file.
pub fn summarize(
    run: &str,
    bucket: &str,
    summary_key: String,
    files: &[(String, Vec<u8>)],
) -> (RunSummary, RunManifest) {
    let mut replications = vec![];
    for (key, body) in files {
        let file = key.rsplit('/').next().unwrap_or(key);
        let status = if file.starts_with("SUCCEEDED_") {
            OutcomeStatus::Succeeded
        } else if file.starts_with("FAILED_") {
            OutcomeStatus::Failed
        } else if file.starts_with("PENDING_") {
            OutcomeStatus::NotRun
        } else {
            continue;
        };
        let entries: Vec<Value> = serde_json::from_slice(body).unwrap_or_default();
        replications.extend(entries.iter().map(|e| outcome(status, e)));
    }
    replications.sort_by(|a, b| a.name.cmp(&b.name));
    let count = |s: OutcomeStatus| replications.iter().filter(|r| r.status == s).count();
    let failures: Vec<FailureShown> = replications
        .iter()
        .filter(|r| r.status == OutcomeStatus::Failed)
        .take(FAILURES_SHOWN)
        .map(|r| FailureShown {
            name: r.name.clone(),
            error: r.error.clone().unwrap_or_default(),
            cause: r
                .cause
                .clone()
                .unwrap_or_default()
                .chars()
                .take(CAUSE_SHOWN_CHARS)
                .collect(),
        })
        .collect();
    let summary = RunSummary {
        run: run.to_string(),
        bucket: bucket.to_string(),
        total: replications.len(),
        succeeded: count(OutcomeStatus::Succeeded),
        failed: count(OutcomeStatus::Failed),
        not_run: count(OutcomeStatus::NotRun),
        summary_key,
        first_failure: failures.first().cloned(),
        failures,
    };
    let manifest = RunManifest {
        run: run.to_string(),
        replications,
    };
    (summary, manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(name: &str) -> String {
        json!({"name": name, "replication": {"source": {"region": "us-east-1", "imageId": name}, "destination": {"region": "us-west-2", "kmsKeyId": "alias/k"}}}).to_string()
    }

    #[test]
    fn succeeded_failed_and_unrun_replications_are_counted_and_the_replications_own_error_is_named()
    {
        let succeeded = json!([{
            "Input": item("ami-1"),
            "Output": json!({"executionArn": "arn:x:1", "outcome": {"status": "succeeded", "destinationId": "ami-9"}}).to_string(),
            "Status": "SUCCEEDED"
        }]);
        let child = json!({"ExecutionArn": "arn:x:2", "Status": "FAILED", "Error": "KeyNotFound", "Cause": "alias/k is not a key in us-west-2"});
        let failed = json!([{
            "Input": item("ami-2"),
            "Error": "States.TaskFailed",
            "Cause": child.to_string(),
            "Status": "FAILED"
        }]);
        let files = vec![
            (
                "runs/r/results/us-west-2/m/manifest.json".to_string(),
                b"{}".to_vec(),
            ),
            (
                "runs/r/results/us-west-2/m/SUCCEEDED_0.json".to_string(),
                succeeded.to_string().into_bytes(),
            ),
            (
                "runs/r/results/us-west-2/m/FAILED_0.json".to_string(),
                failed.to_string().into_bytes(),
            ),
            (
                "runs/r/results/us-west-2/m/PENDING_0.json".to_string(),
                json!([{"Input": item("ami-3")}]).to_string().into_bytes(),
            ),
        ];
        let (summary, manifest) = summarize("r", "work", "runs/r/summary.json".into(), &files);
        assert_eq!(
            (
                summary.total,
                summary.succeeded,
                summary.failed,
                summary.not_run
            ),
            (3, 1, 1, 1)
        );
        let first = summary.first_failure.unwrap();
        assert_eq!(
            (first.name.as_str(), first.error.as_str()),
            ("ami-2", "KeyNotFound")
        );
        assert_eq!(first.cause, "alias/k is not a key in us-west-2");
        assert_eq!(
            manifest.replications[0].destination_id.as_deref(),
            Some("ami-9")
        );
        assert_eq!(
            manifest.replications[0].execution_arn.as_deref(),
            Some("arn:x:1")
        );
        assert_eq!(manifest.replications[1].execution_arn, None);
        assert_eq!(manifest.replications[0].source["imageId"], "ami-1");
    }

    #[test]
    fn a_failure_without_a_child_description_keeps_the_task_error() {
        let (error, cause) =
            replication_error(Some("States.Timeout".into()), Some("took too long".into()));
        assert_eq!(
            (error.as_str(), cause.as_str()),
            ("States.Timeout", "took too long")
        );
    }

    #[test]
    fn nothing_ran_is_an_empty_summary() {
        let (summary, manifest) = summarize("r", "work", "k".into(), &[]);
        assert_eq!((summary.total, summary.failed), (0, 0));
        assert!(summary.first_failure.is_none() && manifest.replications.is_empty());
    }
}
