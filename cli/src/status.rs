//! `ferry status`: an execution (by ARN) or a replication (by id, from its lineage tags).

use std::process::ExitCode;

use ferry_core::{Config, Deps};

use crate::report;
use crate::AwsArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A Step Functions execution ARN, or a replication id (fr-…).
    target: String,
    /// For a replication id: the destination Regions to look in.
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
}

pub async fn run(aws: &AwsArgs, config: Config, args: Args) -> ExitCode {
    let sdk = aws.sdk_config(&config).await;
    if args.target.starts_with("arn:") {
        let region = args
            .target
            .split(':')
            .nth(3)
            .unwrap_or_default()
            .to_string();
        let client = aws_sdk_sfn::Client::from_conf(
            aws_sdk_sfn::config::Builder::from(&sdk)
                .region(aws_config::Region::new(region))
                .build(),
        );
        return match client
            .describe_execution()
            .execution_arn(&args.target)
            .send()
            .await
        {
            Ok(execution) => {
                println!("{}: {}", args.target, execution.status().as_str());
                println!(
                    "  started {:?}, stopped {:?}",
                    execution.start_date(),
                    execution.stop_date()
                );
                if execution.status() == &aws_sdk_sfn::types::ExecutionStatus::Running {
                    println!("  now in: {}", current_state(&client, &args.target).await);
                }
                if let Some(summary) = run_summary(&client, &args.target).await {
                    print_run(&sdk, &summary).await;
                }
                if let Some(error) = execution.error() {
                    println!(
                        "  failed with {error}: {}",
                        execution.cause().unwrap_or("no cause given")
                    );
                    return ExitCode::from(report::FAILED);
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!(
                    "error[AwsError]: DescribeExecution: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&error)
                );
                ExitCode::from(4)
            }
        };
    }
    let regions = if args.regions.is_empty() {
        aws.region.clone().into_iter().collect()
    } else {
        args.regions
    };
    let deps = Deps::from_sdk(&sdk, config);
    match ferry_core::audit::audit(&deps, &regions).await {
        Ok(replicas) => {
            let found: Vec<_> = replicas
                .into_iter()
                .filter(|r| r.replication_id.as_deref() == Some(args.target.as_str()))
                .collect();
            if found.is_empty() {
                eprintln!("no replica of {} in {}: not started, cleaned up after a failure, or in another Region (--regions)", args.target, regions.join(", "));
                return ExitCode::from(report::FAILED);
            }
            crate::audit::print_table(&found);
            if found.iter().any(|r| !r.flags.is_empty()) {
                ExitCode::from(report::FLAGGED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => report::error("status", &error),
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
