//! `ferry replicate`: in-process by default (the Lambdas' own logic, waiting here instead of in
//! a state machine), or through a deployed state machine with `--state-machine ARN`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sfn::types::ExecutionStatus;
use ferry_core::document::{Destination, FsrOptions, Options, Source};
use ferry_core::flow::{Flow, Pause};
use ferry_core::{Config, Deps, FerryError, Replication};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::report::{self, Progress};
use crate::AwsArgs;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["image", "snapshot"])))]
pub struct Args {
    /// The Region the source lives in.
    #[arg(long)]
    source_region: String,
    /// The AMI to replicate (EBS-backed).
    #[arg(long)]
    image: Option<String>,
    /// The EBS snapshot to replicate.
    #[arg(long)]
    snapshot: Option<String>,
    /// A destination: REGION=KEY, the key as id, ARN, alias or alias ARN in that Region. Repeatable.
    #[arg(long = "to", value_name = "REGION=KEY", required = true, value_parser = parse_destination)]
    destinations: Vec<(String, String)>,
    /// A label recorded in the lineage tags.
    #[arg(long)]
    batch: Option<String>,
    /// Enable Fast Snapshot Restore in this Availability Zone (of its destination Region). Repeatable.
    #[arg(long = "fsr-az", value_name = "AZ")]
    fsr_zones: Vec<String>,
    /// Disable FSR again after this many hours (state machine only).
    #[arg(long)]
    fsr_disable_after_hours: Option<f64>,
    /// Copy the source AMI's own tags too.
    #[arg(long)]
    copy_source_tags: bool,
    /// Ask for a time-based copy finishing within this many minutes (15-minute steps).
    #[arg(long, value_name = "MINUTES")]
    completion_minutes: Option<i64>,
    /// Rerun after a failed copy with the next attempt number.
    #[arg(long)]
    attempt: Option<u32>,
    /// Start (idempotently) and follow an execution of this state machine instead.
    #[arg(long, value_name = "ARN")]
    state_machine: Option<String>,
    /// Print the final documents as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_destination(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((region, key)) if !region.is_empty() && !key.is_empty() => {
            Ok((crate::report::region(region)?, key.to_string()))
        }
        _ => Err(format!(
            "{value:?}: give REGION=KEY, e.g. us-west-2=alias/prod-ebs-usw2"
        )),
    }
}

impl Args {
    /// One replication request per destination.
    pub fn requests(&self) -> Vec<Replication> {
        self.destinations
            .iter()
            .map(|(region, key)| {
                let zones: Vec<String> = self
                    .fsr_zones
                    .iter()
                    .filter(|zone| zone.starts_with(region.as_str()))
                    .cloned()
                    .collect();
                Replication::request(
                    Source {
                        region: self.source_region.clone(),
                        image_id: self.image.clone(),
                        snapshot_id: self.snapshot.clone(),
                    },
                    Destination {
                        region: region.clone(),
                        kms_key_id: key.clone(),
                        ..Default::default()
                    },
                    Options {
                        copy_source_tags: self.copy_source_tags.then_some(true),
                        completion_duration_minutes: self.completion_minutes,
                        batch: self.batch.clone(),
                        fsr: (!zones.is_empty()).then_some(FsrOptions {
                            availability_zones: zones,
                            disable_after_hours: self.fsr_disable_after_hours,
                            fail_when_quota_full: false,
                        }),
                        attempt: self.attempt,
                    },
                )
            })
            .collect()
    }
}

pub async fn run(aws: &AwsArgs, config: Config, args: Args) -> ExitCode {
    let sdk = aws.sdk_config(&config).await;
    if let Some(arn) = &args.state_machine {
        let inputs: Vec<Value> = args.requests().iter().map(document_json).collect();
        return via_state_machine(&sdk, arn, &inputs).await;
    }
    let deps = Arc::new(Deps::from_sdk(&sdk, config));
    let outcomes = in_process(deps, args.requests()).await;
    if args.json {
        let documents: Vec<Value> = outcomes
            .iter()
            .filter_map(|(_, outcome)| outcome.as_ref().ok())
            .map(document_json)
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&documents).unwrap_or_default()
        );
    }
    summarize(&outcomes, args.json)
}

fn document_json(document: &Replication) -> Value {
    serde_json::to_value(document).unwrap_or_default()
}

/// Lets real time pass: the state machine's Wait states and retry pauses, in a terminal.
struct Sleep;

#[async_trait]
impl Pause for Sleep {
    async fn pause(&self, seconds: f64) {
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    }
}

/// Runs every destination at once, each through the replication flow the state machine runs
/// (`ferry_core::flow`), waiting here between checks and before retries.
pub async fn in_process(
    deps: Arc<Deps>,
    requests: Vec<Replication>,
) -> Vec<(String, Result<Replication, FerryError>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, request) in requests.into_iter().enumerate() {
        let deps = deps.clone();
        tasks.spawn(async move {
            let label = request.destination.region.clone();
            let progress = Progress::new(&label);
            let flow = Flow {
                deps: &deps,
                pause: &Sleep,
                observe: &progress,
            };
            let outcome = flow.replicate(request).await;
            progress.finish(match &outcome {
                Ok(_) => "verified",
                Err(error) => error.name(),
            });
            (index, label, outcome)
        });
    }
    let mut outcomes: Vec<(usize, String, Result<Replication, FerryError>)> =
        tasks.join_all().await;
    outcomes.sort_by_key(|(index, _, _)| *index);
    outcomes
        .into_iter()
        .map(|(_, label, outcome)| (label, outcome))
        .collect()
}

/// What was proved, per destination, on stdout (stderr when stdout carries JSON); failures on
/// stderr with their hint.
pub fn summarize(
    outcomes: &[(String, Result<Replication, FerryError>)],
    stdout_is_json: bool,
) -> ExitCode {
    let mut failed = false;
    for (region, outcome) in outcomes {
        match outcome {
            Ok(document) if stdout_is_json => eprintln!("{}", proof(&document_json(document))),
            Ok(document) => println!("{}", proof(&document_json(document))),
            Err(error) => {
                failed = true;
                report::error(region, error);
            }
        }
    }
    if failed {
        ExitCode::from(report::FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The summary of one verified replication.
pub fn proof(document: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let verification = &document["evidence"]["verification"];
    let mut lines = vec![format!(
        "✔ {}: {} → {} verified at {} under {}{}",
        text(&document["destination"]["region"]),
        text(&document["source"]["imageId"]) + &text(&document["source"]["snapshotId"]),
        text(&document["copy"]["destinationId"]),
        ferry_core::rules::lineage::rfc3339(verification["verifiedAt"].as_u64().unwrap_or(0)),
        text(&verification["keyArn"]),
        document["key"]["alias"]
            .as_str()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default()
    )];
    for snapshot in verification["snapshots"].as_array().into_iter().flatten() {
        lines.push(format!(
            "    {} encrypted={} key={}  ← {} (source key {})",
            text(&snapshot["snapshotId"]),
            snapshot["encrypted"],
            text(&snapshot["kmsKeyArn"]),
            text(&snapshot["sourceSnapshotId"]),
            snapshot["sourceKmsKeyArn"].as_str().unwrap_or("none")
        ));
    }
    let aws = &verification["awsLineage"];
    if aws.is_object() {
        lines.push(format!(
            "    AWS records it as a copy of {}/{} (DescribeImages SourceImageRegion/SourceImageId)",
            text(&aws["sourceImageRegion"]),
            text(&aws["sourceImageId"])
        ));
    }
    let lineage = &document["evidence"]["lineage"];
    lines.push(format!(
        "    lineage: {} tags on {} resources (replication {}); evidence published: {}",
        lineage["tags"].as_object().map(|t| t.len()).unwrap_or(0),
        lineage["taggedResources"]
            .as_array()
            .map(|r| r.len())
            .unwrap_or(0),
        text(&document["replicationId"]),
        lineage["eventPublished"]
    ));
    let fsr = &document["evidence"]["fsr"];
    let states: Vec<String> = fsr["states"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            format!(
                "{} {} {}",
                text(&s["snapshotId"]),
                text(&s["availabilityZone"]),
                text(&s["state"])
            )
        })
        .collect();
    lines.push(format!(
        "    fast snapshot restore: {}{}",
        text(&fsr["outcome"]),
        if states.is_empty() {
            String::new()
        } else {
            format!(" ({})", states.join(", "))
        }
    ));
    lines.join("\n")
}

/// Execution names are derived from the request: the same request starts (or finds) the same execution.
pub fn execution_name(request: &Value) -> String {
    let digest = Sha256::digest(request.to_string().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("ferry-{hex}")
}

async fn via_state_machine(sdk: &aws_config::SdkConfig, arn: &str, requests: &[Value]) -> ExitCode {
    let region = arn.split(':').nth(3).unwrap_or_default().to_string();
    let client = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(sdk)
            .region(aws_config::Region::new(region))
            .build(),
    );
    let mut failed = false;
    for request in requests {
        let label = request["destination"]["region"].as_str().unwrap_or("?");
        let progress = Progress::new(label);
        let name = execution_name(request);
        let started = client
            .start_execution()
            .state_machine_arn(arn)
            .name(&name)
            .input(request.to_string())
            .send()
            .await;
        let execution_arn = match started {
            Ok(output) => output.execution_arn().to_string(),
            // The same request ran before and has finished (names are unique for 90 days): report it.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_execution_already_exists()) =>
            {
                format!(
                    "{}:{name}",
                    arn.replacen(":stateMachine:", ":execution:", 1)
                )
            }
            Err(error) => {
                progress.finish("could not start");
                eprintln!(
                    "error[AwsError]: StartExecution: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&error)
                );
                return ExitCode::from(4);
            }
        };
        progress.update(&format!("execution {execution_arn}"));
        loop {
            let described = match client
                .describe_execution()
                .execution_arn(&execution_arn)
                .send()
                .await
            {
                Ok(described) => described,
                Err(error) => {
                    eprintln!(
                        "error[AwsError]: DescribeExecution: {}",
                        aws_sdk_sfn::error::DisplayErrorContext(&error)
                    );
                    return ExitCode::from(4);
                }
            };
            match described.status() {
                ExecutionStatus::Running => {
                    progress.update(&format!(
                        "running: {}",
                        crate::status::current_state(&client, &execution_arn).await
                    ));
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                ExecutionStatus::Succeeded => {
                    progress.finish("succeeded");
                    println!(
                        "✔ {label}: {execution_arn} succeeded: {}",
                        described.output().unwrap_or("{}")
                    );
                    break;
                }
                other => {
                    progress.finish(other.as_str());
                    failed = true;
                    eprintln!(
                        "error[{}]: {label}: {}",
                        described.error().unwrap_or("ExecutionFailed"),
                        described.cause().unwrap_or("no cause given")
                    );
                    break;
                }
            }
        }
    }
    if failed {
        ExitCode::from(report::FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
