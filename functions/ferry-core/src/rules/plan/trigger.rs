//! What the planner is asked: to summarize a finished run, to replicate one requested source,
//! to replicate sources an EC2 event says are ready, or to sweep. Which events are triggers is
//! decided here: an AMI that became `available`, and snapshots whose creation `succeeded`
//! (`createSnapshot`, or `createSnapshots` for a multi-volume set); the schedule is the sweep.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;

use crate::document::{Replication, SourceKind};
use crate::error::FerryError;
use crate::plan::{Plan, Skipped};
use crate::rules::plan::run_tag;
use crate::rules::request::validate;

/// The planner's input, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannerInput {
    /// `{"summarize": <plan>}`, once the run's replications have ended.
    Summarize(Box<Plan>),
    /// A trigger, as the state machine sends it (`{"trigger": …, "executionId": …}`) or bare.
    Plan {
        asked: Asked,
        /// The run's tag, from the execution (or, bare, from the trigger itself).
        run: String,
        execution_id: Option<String>,
    },
}

/// What a trigger asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    /// A console request for one replication, validated.
    Request(Box<Replication>),
    /// Sources an EC2 event names as ready in `region`.
    Sources {
        region: String,
        kind: SourceKind,
        ids: Vec<String>,
    },
    /// An EC2 event about a source that is not ready: nothing to replicate, for this reason.
    NotReady(Skipped),
    /// The DR-sweep schedule. `attempt` is the schedule's day number (Unix days).
    Sweep { attempt: Option<u32> },
}

impl PlannerInput {
    /// Parses the planner's input; `now` (Unix seconds) dates a schedule that carries no time.
    pub fn parse(payload: Value, now: u64) -> Result<PlannerInput, FerryError> {
        if let Some(plan) = payload.get("summarize") {
            let plan: Plan = serde_json::from_value(plan.clone())
                .map_err(|e| FerryError::invalid("summarize", format!("not a plan: {e}")))?;
            return Ok(PlannerInput::Summarize(Box::new(plan)));
        }
        let (trigger, execution_id) = match (
            payload.get("trigger"),
            payload.get("executionId").and_then(Value::as_str),
        ) {
            (Some(trigger), Some(execution_id)) => {
                (trigger.clone(), Some(execution_id.to_string()))
            }
            _ => (payload, None),
        };
        let run = run_tag(execution_id.as_deref().unwrap_or(&trigger.to_string()));
        Ok(PlannerInput::Plan {
            asked: Asked::parse(trigger, now)?,
            run,
            execution_id,
        })
    }
}

impl Asked {
    fn parse(trigger: Value, now: u64) -> Result<Asked, FerryError> {
        if trigger.get("detail-type").is_some() {
            let event: EventBridgeEvent<Value> = serde_json::from_value(trigger).map_err(|e| {
                FerryError::invalid("event", format!("not an EventBridge event: {e}"))
            })?;
            return Asked::from_event(&event, now);
        }
        if trigger.get("source").is_some_and(Value::is_object) {
            let document = Replication::from_json(trigger)?;
            validate(&document)?;
            return Ok(Asked::Request(Box::new(document)));
        }
        Err(FerryError::invalid(
            "input",
            "expected a replication request {source, destination}, an EventBridge event, or a schedule",
        ))
    }

    fn from_event(event: &EventBridgeEvent<Value>, now: u64) -> Result<Asked, FerryError> {
        let detail = &event.detail;
        let not_ready = |source: &str, reason: String| {
            Ok(Asked::NotReady(Skipped {
                source: source.into(),
                reason,
            }))
        };
        let (kind, ids) = match event.detail_type.as_str() {
            "Scheduled Event" => {
                let day = event.time.map(|t| t.timestamp()).unwrap_or(now as i64) / 86_400;
                return Ok(Asked::Sweep {
                    attempt: u32::try_from(day).ok(),
                });
            }
            "EC2 AMI State Change" => match detail["State"].as_str() {
                Some("available") => (
                    SourceKind::Image,
                    vec![detail["ImageId"].as_str().unwrap_or_default().to_string()],
                ),
                other => {
                    return not_ready(
                        detail["ImageId"].as_str().unwrap_or("?"),
                        format!("AMI state {other:?}, not available"),
                    )
                }
            },
            "EBS Snapshot Notification" | "EBS Multi-Volume Snapshots Completion Status" => {
                let (action, result) = (
                    detail["event"].as_str().unwrap_or_default(),
                    detail["result"].as_str().unwrap_or_default(),
                );
                if !matches!(action, "createSnapshot" | "createSnapshots") || result != "succeeded"
                {
                    return not_ready(
                        detail["snapshot_id"].as_str().unwrap_or("?"),
                        format!("{action} {result}: only created snapshots are replicated"),
                    );
                }
                let arns: Vec<&str> = match detail["snapshots"].as_array() {
                    Some(many) => many
                        .iter()
                        .filter_map(|s| s["snapshot_id"].as_str())
                        .collect(),
                    None => detail["snapshot_id"].as_str().into_iter().collect(),
                };
                (
                    SourceKind::Snapshot,
                    arns.into_iter()
                        .map(|arn| arn.rsplit('/').next().unwrap_or(arn).to_string())
                        .collect(),
                )
            }
            other => {
                return Err(FerryError::invalid(
                    "detail-type",
                    format!("{other:?} is not a trigger ferry handles"),
                ))
            }
        };
        Ok(Asked::Sources {
            region: event.region.clone().unwrap_or_default(),
            kind,
            ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_764_547_200;

    fn event(fixture: &str) -> Value {
        serde_json::from_str(fixture).unwrap()
    }

    fn asked(payload: Value) -> Asked {
        match PlannerInput::parse(payload, NOW).unwrap() {
            PlannerInput::Plan { asked, .. } => asked,
            other => panic!("not a trigger: {other:?}"),
        }
    }

    #[test]
    fn an_available_ami_and_created_snapshots_name_their_sources_by_id() {
        assert_eq!(
            asked(event(include_str!(
                "../../../../../tests/fixtures/events/ami-available.json"
            ))),
            Asked::Sources {
                region: "us-east-1".into(),
                kind: SourceKind::Image,
                ids: vec!["ami-0123456789abcdef0".into()],
            }
        );
        assert_eq!(
            asked(event(include_str!(
                "../../../../../tests/fixtures/events/snapshots-created.json"
            ))),
            Asked::Sources {
                region: "us-east-1".into(),
                kind: SourceKind::Snapshot,
                ids: vec![
                    "snap-0123456789abcdef1".into(),
                    "snap-0123456789abcdef2".into()
                ],
            },
            "a multi-volume set names every snapshot, by id rather than ARN"
        );
    }

    #[test]
    fn an_ami_that_is_not_available_and_a_snapshot_that_was_not_created_are_not_ready() {
        for (fixture, reason) in [
            (
                include_str!("../../../../../tests/fixtures/events/ami-failed.json"),
                "AMI state Some(\"failed\"), not available",
            ),
            (
                include_str!("../../../../../tests/fixtures/events/snapshot-create-failed.json"),
                "createSnapshot failed: only created snapshots are replicated",
            ),
            (
                include_str!("../../../../../tests/fixtures/events/snapshot-copied.json"),
                "copySnapshot succeeded: only created snapshots are replicated",
            ),
        ] {
            assert!(
                matches!(asked(event(fixture)), Asked::NotReady(skipped) if skipped.reason == reason),
                "{reason}"
            );
        }
    }

    #[test]
    fn the_schedule_is_a_sweep_numbered_by_its_day() {
        let schedule = event(include_str!(
            "../../../../../tests/fixtures/events/scheduled-event.json"
        ));
        // 2026-11-22T00:00:00Z is Unix day 20,779.
        assert_eq!(
            asked(schedule.clone()),
            Asked::Sweep {
                attempt: Some(20_779)
            }
        );
        let mut undated = schedule;
        undated.as_object_mut().unwrap().remove("time");
        assert_eq!(
            asked(undated),
            Asked::Sweep {
                attempt: Some((NOW / 86_400) as u32)
            },
            "a schedule without a time is dated now"
        );
    }

    #[test]
    fn the_run_is_tagged_by_the_execution_when_the_state_machine_sends_one() {
        let schedule = event(include_str!(
            "../../../../../tests/fixtures/events/scheduled-event.json"
        ));
        let execution = "arn:aws:states:us-east-1:123456789012:execution:ferry-run:x";
        let wrapped = json!({"trigger": schedule, "executionId": execution});
        let PlannerInput::Plan {
            run, execution_id, ..
        } = PlannerInput::parse(wrapped, NOW).unwrap()
        else {
            panic!("a trigger")
        };
        assert_eq!(
            (run.as_str(), execution_id.as_deref()),
            (run_tag(execution).as_str(), Some(execution))
        );
        let PlannerInput::Plan {
            run, execution_id, ..
        } = PlannerInput::parse(schedule.clone(), NOW).unwrap()
        else {
            panic!("a trigger")
        };
        assert_eq!(
            (run, execution_id),
            (run_tag(&schedule.to_string()), None),
            "bare, the trigger itself tags the run"
        );
    }

    #[test]
    fn unknown_events_and_shapeless_input_are_refused_naming_the_field() {
        let field = |payload: Value| match PlannerInput::parse(payload, NOW).unwrap_err() {
            FerryError::InvalidRequest { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(
            field(
                json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}})
            ),
            "detail-type"
        );
        assert_eq!(field(json!({"hello": "world"})), "input");
        assert_eq!(field(json!({"summarize": {"run": 1}})), "summarize");
    }
}
