//! `ferry`: replicate encrypted AMIs and snapshots across Regions from a terminal, follow a
//! replication, audit the fleet, or see it all on the embedded local AWS (`ferry demo`).
//!
//! Exit codes: 0 done (nothing flagged); 1 a replication failed (its error name is printed);
//! 2 usage; 3 the audit flagged something; 4 could not reach AWS or a bad configuration.

mod audit;
mod demo;
mod replicate;
mod report;
mod status;

use std::process::ExitCode;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use clap::{Parser, Subcommand};
use ferry_core::adapters::sdk::with_settings;
use ferry_core::Config;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Replicate encrypted AMIs and EBS snapshots across AWS Regions, verified fail-closed"
)]
struct Cli {
    #[command(flatten)]
    aws: AwsArgs,
    #[command(subcommand)]
    command: Command,
}

/// As the AWS CLI: flags win over `AWS_*` variables, which win over the profile.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AwsArgs {
    /// Default Region (events, Step Functions); copies act in the Regions they name.
    #[arg(long, global = true, env = "AWS_REGION")]
    region: Option<String>,
    /// Send every AWS call to this endpoint (a local AWS, a VPC endpoint).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// Named profile from ~/.aws/config and ~/.aws/credentials.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    profile: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Replicate an AMI or snapshot to one or more Regions, each under its own key.
    Replicate(replicate::Args),
    /// Where a replication (execution ARN or replication id) stands, and why it failed.
    Status(status::Args),
    /// Fleet compliance report of every replica ferry made in some Regions.
    Audit(audit::Args),
    /// Seed the embedded local AWS and run a full replication, printing what was proved.
    Demo,
}

impl AwsArgs {
    pub async fn sdk_config(&self, config: &Config) -> SdkConfig {
        // The same retries and timeouts as the Lambdas (rules::retry_budget).
        let mut loader =
            with_settings(aws_config::defaults(BehaviorVersion::latest()), &config.sdk);
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        loader.load().await
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error[Configuration]: {error}");
            return ExitCode::from(4);
        }
    };
    match cli.command {
        Command::Replicate(args) => replicate::run(&cli.aws, config, args).await,
        Command::Status(args) => status::run(&cli.aws, config, args).await,
        Command::Audit(args) => audit::run(&cli.aws, config, args).await,
        Command::Demo => demo::run().await,
    }
}
