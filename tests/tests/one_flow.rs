//! One replication flow. The in-process driver (`ferry_core::flow`, which `ferry replicate` and
//! these suites run) and the deployed definition (statemachine/replication.asl.json, executed on
//! moto's Step Functions engine with the real Lambda binaries) retry the same error names with
//! the same attempts and backoff, and bring the same scenarios to the same outcome, error name
//! and "Replication Failed" event.

use std::sync::atomic::{AtomicU32, Ordering};

use ferry_core::document::BootStatus;
use ferry_core::flow::{Flow, Observe, Retry, Stage, REPORT_RETRY, RETRIES};
use ferry_core::{Config, FerryError, Replication};
use ferry_tests::state_machine::definition;
use ferry_tests::world::{ferry_events, policy, World, SOURCE};
use ferry_tests::{figure, Advance};
use serde_json::{json, Value};

const WEST: &str = "us-west-2";

/// `block` as the definition writes a Retry block.
fn as_written(block: &Retry) -> Value {
    let mut written = json!({
        "ErrorEquals": block.errors,
        "IntervalSeconds": block.interval_seconds,
        "MaxAttempts": block.max_attempts,
        "BackoffRate": block.backoff_rate,
        "JitterStrategy": "FULL",
    });
    if let Some(max) = block.max_delay_seconds {
        written["MaxDelaySeconds"] = json!(max);
    }
    written
}

/// `block` without its comment (2 and 2.0 are the same rate).
fn normalized(block: &Value) -> Value {
    let mut block = block.clone();
    block.as_object_mut().map(|b| b.remove("Comment"));
    block["BackoffRate"] = json!(block["BackoffRate"].as_f64());
    block
}

/// The Retry blocks of `state` for ferry's own error names.
fn ferry_retries(state: &Value) -> Vec<Value> {
    state["Retry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|block| {
            block["ErrorEquals"].as_array().is_some_and(|names| {
                names
                    .iter()
                    .all(|n| FerryError::NAMES.contains(&n.as_str().unwrap_or_default()))
            })
        })
        .map(normalized)
        .collect()
}

#[test]
fn the_flow_retries_what_the_definition_retries_with_the_same_attempts_and_backoff() {
    let definition = definition("replication.asl.json");
    let states = definition["States"].as_object().unwrap();
    let tasks: Vec<(&String, &Value)> = states
        .iter()
        .filter(|(_, s)| {
            s["Type"] == "Task"
                && s["Resource"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("arn:aws:lambda:"))
        })
        .collect();
    assert_eq!(
        tasks.len(),
        8,
        "the six steps, the boot check and its end after a failure"
    );
    let expected: Vec<Value> = RETRIES.iter().map(as_written).collect();
    for (name, state) in tasks {
        assert_eq!(ferry_retries(state), expected, "{name}");
    }
    let report: Vec<Value> = states["ReportFailure"]["Retry"]
        .as_array()
        .unwrap()
        .iter()
        .map(normalized)
        .collect();
    assert_eq!(report, [as_written(&REPORT_RETRY)], "ReportFailure");
}

/// Counts the retries the flow makes.
#[derive(Default)]
struct Retries(AtomicU32);

impl Observe for Retries {
    fn stage(&self, stage: Stage<'_>) {
        if matches!(stage, Stage::Retrying { .. }) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// What one path made of a scenario: the error name (None: verified) and the retries made.
#[derive(Debug, PartialEq)]
struct Outcome {
    error: Option<String>,
    retried: bool,
    /// The `failure.Error` of the "Replication Failed" event it published, if any.
    reported: Option<String>,
}

fn reported(world: &World, source_id: &str) -> Option<String> {
    ferry_events(world)
        .into_iter()
        .find(|(kind, detail)| {
            kind == "Replication Failed"
                && (detail["source"]["imageId"] == source_id
                    || detail["source"]["snapshotId"] == source_id)
        })
        .and_then(|(_, detail)| detail["failure"]["Error"].as_str().map(str::to_string))
}

fn source_id(request: &Value) -> String {
    request["source"]["imageId"]
        .as_str()
        .or(request["source"]["snapshotId"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn through_the_flow(world: &World, request: &Value) -> Outcome {
    let deps = world.aws.deps_as_deployed(Config::default()).await;
    let retries = Retries::default();
    let flow = Flow {
        deps: &deps,
        pause: &Advance(&world.aws),
        observe: &retries,
    };
    let outcome = flow
        .replicate(Replication::from_json(request.clone()).unwrap())
        .await;
    if let Ok(done) = &outcome {
        let verification = done.evidence.verification.as_ref().expect("verified");
        assert_eq!(
            Some(&verification.key_arn),
            done.key.as_ref().map(|k| &k.arn)
        );
        assert_eq!(
            done.evidence.wiring.is_some(),
            done.destination.wants_wiring(),
            "wired exactly when asked"
        );
        assert_eq!(
            done.evidence.boot_check.as_ref().map(|c| c.status),
            done.destination
                .boot_check
                .as_ref()
                .map(|_| BootStatus::Passed),
            "boot-checked exactly when asked"
        );
    }
    Outcome {
        error: outcome.err().map(|e| e.name().to_string()),
        retried: retries.0.load(Ordering::SeqCst) > 0,
        reported: reported(world, &source_id(request)),
    }
}

async fn through_the_definition(world: &World, request: &Value) -> Outcome {
    let record = world.sfn.replicate(request).await;
    assert_eq!(
        record.status == "SUCCEEDED",
        record.error.is_none(),
        "{record:?}"
    );
    assert!(
        world
            .seed
            .instances(WEST)
            .await
            .iter()
            .all(|(_, state)| state == "shutting-down" || state == "terminated"),
        "no boot-check instance left running"
    );
    Outcome {
        error: record.error.clone(),
        retried: record.states.iter().any(|e| e["type"] == "StateRetried"),
        reported: reported(world, &source_id(request)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_and_the_deployed_definition_bring_the_same_scenarios_to_the_same_end() {
    let destinations = json!([{"region": WEST, "kmsKeyId": "alias/dr"}]);
    let world = World::start(policy(destinations, 20), 1.0).await;
    let key = world.aliased_key(WEST, "alias/dr").await;
    let source_key = world.seed.key(SOURCE).await;
    world.seed.launch_template(WEST, "web").await;
    let request = |source: Value, key: &str| json!({"source": source, "destination": {"region": WEST, "kmsKeyId": key}});
    let wired = |source: Value, template: &str| {
        json!({"source": source, "destination": {"region": WEST, "kmsKeyId": "alias/dr",
               "launchTemplates": [{"name": template, "setDefault": true}], "ssmParameter": "/golden/web/ami"}})
    };
    let subnet = world.seed.subnet(WEST).await;
    let booted = |source: Value| {
        json!({"source": source, "destination": {"region": WEST, "kmsKeyId": "alias/dr",
               "bootCheck": {"subnetId": subnet, "instanceType": "t3.micro"}}})
    };
    let other_key = world.seed.key(WEST).await;
    let mut rows = vec![];
    // Each scenario runs on sources of its own per path, so neither reuses the other's copy.
    for scenario in [
        "an encrypted AMI",
        "an encrypted snapshot",
        "an encrypted AMI wired to a launch template and a parameter",
        "a launch template that does not exist",
        "an encrypted AMI boot-checked",
        "a boot check whose volume comes up under another key",
        "a boot check whose status checks fail",
        "a destination key that does not exist",
        "a source that does not exist",
        "a copy AWS fails",
        "KMS throttled past the SDK's retries",
    ] {
        let mut outcomes = vec![];
        for path in ["flow", "definition"] {
            let image = || async {
                let (image, _) = world
                    .seed
                    .golden_image(SOURCE, &source_key, &source_key)
                    .await;
                json!({"region": SOURCE, "imageId": image})
            };
            let input = match scenario {
                "an encrypted snapshot" => {
                    let snapshot = world.seed.snapshot(SOURCE, Some(&source_key), 8).await;
                    request(json!({"region": SOURCE, "snapshotId": snapshot}), &key.arn)
                }
                "an encrypted AMI wired to a launch template and a parameter" => {
                    wired(image().await, "web")
                }
                "a launch template that does not exist" => wired(image().await, "no-such-template"),
                "an encrypted AMI boot-checked" => booted(image().await),
                "a boot check whose volume comes up under another key" => {
                    world.aws.configure(
                        json!({"launchVolumeKey": {"kmsKeyId": other_key.arn, "region": WEST}}),
                    );
                    booted(image().await)
                }
                "a boot check whose status checks fail" => {
                    world
                        .aws
                        .configure(json!({"impairStatusChecks": {"times": 1, "check": "system"}}));
                    booted(image().await)
                }
                "a destination key that does not exist" => {
                    request(image().await, "alias/does-not-exist")
                }
                "a source that does not exist" => {
                    let missing = if path == "flow" {
                        "ami-0dead00000000f10a"
                    } else {
                        "ami-0dead00000000def1"
                    };
                    request(json!({"region": SOURCE, "imageId": missing}), &key.arn)
                }
                "a copy AWS fails" => {
                    world.aws.configure(json!({"failNextCopies": {"count": 1, "code": "Server.InternalError", "message": "simulated EBS failure", "region": WEST}}));
                    request(image().await, &key.arn)
                }
                "KMS throttled past the SDK's retries" => {
                    let input = request(image().await, &key.arn);
                    world
                        .aws
                        .configure(json!({"throttle": {"actions": ["DescribeKey"], "times": 12}}));
                    input
                }
                _ => request(image().await, &key.arn),
            };
            outcomes.push(match path {
                "flow" => through_the_flow(&world, &input).await,
                _ => through_the_definition(&world, &input).await,
            });
        }
        assert_eq!(
            outcomes[0], outcomes[1],
            "{scenario}: flow, then definition"
        );
        rows.push(format!(
            "{scenario}: {}{}",
            outcomes[0].error.as_deref().unwrap_or("verified"),
            if outcomes[0].retried {
                " after retries"
            } else {
                ""
            }
        ));
    }
    let expected = [
        "an encrypted AMI: verified",
        "an encrypted snapshot: verified",
        "an encrypted AMI wired to a launch template and a parameter: verified",
        "a launch template that does not exist: LaunchTemplateNotFound",
        "an encrypted AMI boot-checked: verified",
        "a boot check whose volume comes up under another key: BootCheckWrongKey",
        "a boot check whose status checks fail: BootCheckStatusFailed",
        "a destination key that does not exist: KeyNotFound",
        "a source that does not exist: SourceNotFound",
        "a copy AWS fails: CopyFailed",
        "KMS throttled past the SDK's retries: verified after retries",
    ];
    assert_eq!(rows, expected);
    let web = world
        .seed
        .ec2(WEST)
        .describe_launch_templates()
        .launch_template_names("web")
        .send()
        .await
        .expect("DescribeLaunchTemplates");
    let web = &web.launch_templates()[0];
    assert_eq!(
        (web.latest_version_number(), web.default_version_number()),
        (Some(3), Some(3)),
        "one version per path, each made the default"
    );
    figure(
        "one flow",
        &format!(
            "{} scenarios through the in-process flow and the deployed definition: same outcome, error name, retries and failure event ({})",
            rows.len(),
            rows.join("; ")
        ),
    );
}
