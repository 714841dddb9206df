//! `ferry replicate`: in-process by default (the Lambdas' own logic, waiting here instead of in
//! a state machine), or through a deployed state machine with `--state-machine ARN`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use ferry_core::handlers::{run_step, Step};
use ferry_core::{Config, Deps, FerryError};
use serde_json::{json, Value};
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
            Ok((region.to_string(), key.to_string()))
        }
        _ => Err(format!(
            "{value:?}: give REGION=KEY, e.g. us-west-2=alias/prod-ebs-usw2"
        )),
    }
}

impl Args {
    /// One replication request per destination, in the document format the Lambdas take.
    pub fn requests(&self) -> Vec<Value> {
        self.destinations
            .iter()
            .map(|(region, key)| {
                let mut options = json!({});
                if self.copy_source_tags {
                    options["copySourceTags"] = json!(true);
                }
                if let Some(minutes) = self.completion_minutes {
                    options["completionDurationMinutes"] = json!(minutes);
                }
                if let Some(batch) = &self.batch {
                    options["batch"] = json!(batch);
                }
                if let Some(attempt) = self.attempt {
                    options["attempt"] = json!(attempt);
                }
                let zones: Vec<&String> = self.fsr_zones.iter().filter(|zone| zone.starts_with(region.as_str())).collect();
                if !zones.is_empty() {
                    options["fsr"] = json!({"availabilityZones": zones});
                    if let Some(hours) = self.fsr_disable_after_hours {
                        options["fsr"]["disableAfterHours"] = json!(hours);
                    }
                }
                let mut source = json!({"region": self.source_region});
                match (&self.image, &self.snapshot) {
                    (Some(image), _) => source["imageId"] = json!(image),
                    (_, Some(snapshot)) => source["snapshotId"] = json!(snapshot),
                    _ => {}
                }
                json!({"source": source, "destination": {"region": region, "kmsKeyId": key}, "options": options})
            })
            .collect()
    }
}

pub async fn run(aws: &AwsArgs, config: Config, args: Args) -> ExitCode {
    let sdk = aws.sdk_config(&config).await;
    if let Some(arn) = &args.state_machine {
        return via_state_machine(&sdk, arn, &args.requests()).await;
    }
    let deps = Arc::new(Deps::from_sdk(&sdk, config));
    let outcomes = in_process(deps, args.requests()).await;
    if args.json {
        let documents: Vec<&Value> = outcomes
            .iter()
            .filter_map(|(_, outcome)| outcome.as_ref().ok())
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&documents).unwrap_or_default()
        );
    }
    summarize(&outcomes, args.json)
}

/// Runs every destination at once, each through the five steps, waiting between checks as the
/// state machine would.
pub async fn in_process(
    deps: Arc<Deps>,
    requests: Vec<Value>,
) -> Vec<(String, Result<Value, FerryError>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, request) in requests.into_iter().enumerate() {
        let deps = deps.clone();
        tasks.spawn(async move {
            let label = request["destination"]["region"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            let outcome = replicate_one(&deps, request, &Progress::new(&label)).await;
            (index, label, outcome)
        });
    }
    let mut outcomes: Vec<(usize, String, Result<Value, FerryError>)> = tasks.join_all().await;
    outcomes.sort_by_key(|(index, _, _)| *index);
    outcomes
        .into_iter()
        .map(|(_, label, outcome)| (label, outcome))
        .collect()
}

async fn replicate_one(
    deps: &Deps,
    request: Value,
    progress: &Progress,
) -> Result<Value, FerryError> {
    progress.update("preflight: key, zones, source");
    let mut document = run_step(Step::StartCopy, deps, &request)
        .await
        .inspect_err(|e| progress.finish(e.name()))?;
    loop {
        let copy = &document["copy"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        match copy["status"].as_str() {
            Some("pending") => {
                let wait = copy["nextCheckSeconds"].as_u64().unwrap_or(30);
                progress.update(&format!(
                    "copying {} → {} {} (check {}, next in {wait} s)",
                    text(&request["source"]["imageId"]) + &text(&request["source"]["snapshotId"]),
                    text(&copy["destinationId"]),
                    text(&copy["progress"]),
                    copy["checks"]
                ));
                if copy["checks"].as_u64().unwrap_or(0) > 0 {
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                document = run_step(Step::CheckCopy, deps, &document).await?;
            }
            Some("completed") => break,
            _ => {
                progress.finish("CopyFailed");
                return Err(FerryError::CopyFailed {
                    destination_id: text(&copy["destinationId"]),
                    reason: text(&copy["failure"]),
                });
            }
        }
    }
    progress.update("verifying encryption");
    let verified = run_step(Step::VerifyEncryption, deps, &document)
        .await
        .inspect_err(|e| progress.finish(e.name()))?;
    progress.update("tagging lineage, publishing evidence");
    let tagged = run_step(Step::TagLineage, deps, &verified)
        .await
        .inspect_err(|e| progress.finish(e.name()))?;
    let done = run_step(Step::EnableFsr, deps, &tagged)
        .await
        .inspect_err(|e| progress.finish(e.name()))?;
    progress.finish("verified");
    Ok(done)
}

/// What was proved, per destination, on stdout (stderr when stdout carries JSON); failures on
/// stderr with their hint.
pub fn summarize(
    outcomes: &[(String, Result<Value, FerryError>)],
    stdout_is_json: bool,
) -> ExitCode {
    let mut failed = false;
    for (region, outcome) in outcomes {
        match outcome {
            Ok(document) if stdout_is_json => eprintln!("{}", proof(document)),
            Ok(document) => println!("{}", proof(document)),
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
