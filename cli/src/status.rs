//! `ferry status`: an execution (by ARN) or a replication (by id, from its lineage tags).

use std::process::ExitCode;

use aws_smithy_types::date_time::Format;
use ferry_core::{Config, Deps};
use serde_json::{json, Value};

use crate::report::{self, Output};
use crate::Global;

pub const EXAMPLES: &str = "Examples:
  ferry status arn:aws:states:us-east-1:111122223333:execution:ferry-run:dr-2026-12-01
  ferry status fr-5065d5f490ada3c5edbc --regions us-west-2,eu-west-1 --output json";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A Step Functions execution ARN, or a replication id (fr-…).
    target: String,
    /// For a replication id: the destination Regions to look in, comma-separated (default:
    /// --region).
    #[arg(long, value_delimiter = ',', value_parser = report::region)]
    regions: Vec<String>,
}

fn rfc3339(date: Option<&aws_smithy_types::DateTime>) -> Value {
    date.and_then(|d| d.fmt(Format::DateTime).ok())
        .map_or(Value::Null, Value::String)
}

pub async fn run(global: &Global, config: Config, args: Args) -> ExitCode {
    if args.target.starts_with("arn:") {
        return execution(global, config, &args.target).await;
    }
    let regions = if args.regions.is_empty() {
        global.aws.region.clone().into_iter().collect()
    } else {
        report::each_once(args.regions)
    };
    if regions.is_empty() {
        return report::usage(
            "--regions",
            "name the destination Regions to look for the replication in",
            "status",
        );
    }
    let sdk = match global
        .aws
        .connect(&config, regions.first().map(String::as_str))
        .await
    {
        Ok(sdk) => sdk,
        Err(unusable) => return unusable.report(),
    };
    let deps = Deps::from_sdk(&sdk, config);
    match ferry_core::audit::audit(&deps, &regions, &[]).await {
        Ok(replicas) => {
            let found: Vec<_> = replicas
                .into_iter()
                .filter(|r| r.replication_id.as_deref() == Some(args.target.as_str()))
                .collect();
            if found.is_empty() {
                return report::failure(
                    "ReplicationNotFound",
                    &format!("no replica of {} in {}", args.target, regions.join(", ")),
                    "not started, cleaned up after a failure, or in another Region (--regions)",
                    report::FAILED,
                );
            }
            crate::audit::print(&found, global.output);
            if found.iter().any(|r| !r.flags.is_empty()) {
                ExitCode::from(report::FLAGGED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => report::error("status", &error),
    }
}

/// An execution: its status, dates (RFC 3339), where it is, why it failed; for a run, its
/// counts and every replication that did not succeed.
async fn execution(global: &Global, config: Config, arn: &str) -> ExitCode {
    let region = arn.split(':').nth(3).unwrap_or_default().to_string();
    let sdk = match global.aws.connect(&config, Some(&region)).await {
        Ok(sdk) => sdk,
        Err(unusable) => return unusable.report(),
    };
    let client = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(&sdk)
            .region(aws_config::Region::new(region))
            .build(),
    );
    let execution = match client.describe_execution().execution_arn(arn).send().await {
        Ok(execution) => execution,
        Err(error) => return report::sdk_failure("DescribeExecution", &error),
    };
    let running = execution.status() == &aws_sdk_sfn::types::ExecutionStatus::Running;
    let now_in = if running {
        Some(current_state(&client, arn).await)
    } else {
        None
    };
    let summary = run_summary(&client, arn).await;
    let record = json!({
        "executionArn": arn,
        "status": execution.status().as_str(),
        "startedAt": rfc3339(Some(execution.start_date())),
        "stoppedAt": rfc3339(execution.stop_date()),
        "currentState": now_in,
        "error": execution.error(),
        "cause": execution.cause(),
        "run": summary.as_ref().map(|s| serde_json::to_value(s).unwrap_or_default()),
    });
    match global.output {
        Output::Json => report::print_json(&record),
        Output::Csv => report::print_csv(
            std::slice::from_ref(&record),
            &[
                ("execution_arn", "/executionArn"),
                ("status", "/status"),
                ("started_at", "/startedAt"),
                ("stopped_at", "/stoppedAt"),
                ("current_state", "/currentState"),
                ("error", "/error"),
                ("cause", "/cause"),
            ],
        ),
        Output::Table => {
            println!("{arn}: {}", execution.status().as_str());
            println!(
                "  started {}, stopped {}",
                record["startedAt"].as_str().unwrap_or("-"),
                record["stoppedAt"].as_str().unwrap_or("-")
            );
            if let Some(state) = &now_in {
                println!("  now in: {state}");
            }
            if let Some(summary) = &summary {
                print_run(&sdk, summary).await;
            }
            if let Some(error) = execution.error() {
                println!(
                    "  failed with {error}: {}",
                    execution.cause().unwrap_or("no cause given")
                );
            }
        }
    }
    if execution.error().is_some() {
        ExitCode::from(report::FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// A run's summary (the Summarize step's answer), when the execution is a run that got there.
async fn run_summary(
    client: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> Option<ferry_core::rules::summary::RunSummary> {
    let mut pages = client
        .get_execution_history()
        .execution_arn(execution_arn)
        .reverse_order(true)
        .into_paginator()
        .send();
    while let Some(Ok(page)) = pages.next().await {
        for event in page.events() {
            let output = event
                .lambda_function_succeeded_event_details()
                .and_then(|d| d.output())
                .or_else(|| {
                    event
                        .task_succeeded_event_details()
                        .and_then(|d| d.output())
                });
            if let Some(summary) = output.and_then(|o| serde_json::from_str(o).ok()) {
                return Some(summary);
            }
        }
    }
    None
}

/// The run's counts, then every replication that did not succeed, from its manifest
/// (`runs/<run>/summary.json` in the work bucket).
async fn print_run(sdk: &aws_config::SdkConfig, summary: &ferry_core::rules::summary::RunSummary) {
    use ferry_core::ports::WorkStore;
    use ferry_core::rules::summary::{OutcomeStatus, RunManifest};
    println!(
        "  run {}: {} replications, {} succeeded, {} failed, {} not run; manifest s3://{}/{}",
        summary.run,
        summary.total,
        summary.succeeded,
        summary.failed,
        summary.not_run,
        summary.bucket,
        summary.summary_key
    );
    let store = ferry_core::adapters::S3Adapter::new(sdk);
    let manifest: Option<RunManifest> = match store.get(&summary.bucket, &summary.summary_key).await
    {
        Ok(Some(body)) => serde_json::from_slice(&body).ok(),
        _ => None,
    };
    let Some(manifest) = manifest else {
        for failure in &summary.failures {
            println!("  ✘ {}: {}: {}", failure.name, failure.error, failure.cause);
        }
        return;
    };
    for replication in manifest
        .replications
        .iter()
        .filter(|r| r.status != OutcomeStatus::Succeeded)
    {
        println!(
            "  ✘ {} ({}): {}: {}",
            replication.name,
            replication
                .execution_arn
                .as_deref()
                .unwrap_or("not started"),
            replication.error.as_deref().unwrap_or("not run"),
            replication.cause.as_deref().unwrap_or("")
        );
    }
}

/// The state an execution is in now, from its latest history event.
pub async fn current_state(client: &aws_sdk_sfn::Client, execution_arn: &str) -> String {
    match client
        .get_execution_history()
        .execution_arn(execution_arn)
        .reverse_order(true)
        .max_results(20)
        .send()
        .await
    {
        Ok(history) => history
            .events()
            .iter()
            .find_map(|e| {
                e.state_entered_event_details()
                    .map(|d| d.name().to_string())
            })
            .unwrap_or_else(|| "starting".into()),
        Err(_) => "unknown".into(),
    }
}
