//! `ferry`: replicate encrypted AMIs and snapshots across Regions from a terminal, follow a
//! replication, audit the fleet, prune what retention retires, or see it all on the embedded
//! local AWS (`ferry demo`).
//! Exit codes: `report::EXIT_CODES`.

mod audit;
mod aws;
mod demo;
mod prune;
mod replicate;
mod report;
mod status;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use ferry_core::Config;

pub use aws::AwsArgs;
use report::Output;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Replicate encrypted AMIs and EBS snapshots across AWS Regions, verified fail-closed",
    after_help = report::exit_codes_help()
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// What stdout carries, as the AWS CLI's --output: a table for people, JSON or CSV for
    /// scripts. Progress, warnings and errors go to stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "table",
        env = "FERRY_OUTPUT"
    )]
    pub output: Output,
    /// Only the result and errors: no progress lines or warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More log detail on stderr: -v ferry's steps, -vv also AWS SDK calls and retries.
    /// RUST_LOG, when set, wins.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Replicate an AMI or snapshot to one or more Regions, each under its own key.
    #[command(after_help = replicate::EXAMPLES, after_long_help = report::long_help(replicate::EXAMPLES))]
    Replicate(Box<replicate::Args>),
    /// Where a replication (execution ARN or replication id) stands, and why it failed.
    #[command(after_help = status::EXAMPLES, after_long_help = report::long_help(status::EXAMPLES))]
    Status(status::Args),
    /// Fleet compliance report of every replica ferry made in some Regions.
    #[command(after_help = audit::EXAMPLES, after_long_help = report::long_help(audit::EXAMPLES))]
    Audit(audit::Args),
    /// What retention retires and why, as the scheduled step decides it; --apply carries it out.
    #[command(after_help = prune::EXAMPLES, after_long_help = report::long_help(prune::EXAMPLES))]
    Prune(prune::Args),
    /// Seed a local AWS and run a full replication, printing what was proved.
    #[command(after_help = demo::EXAMPLES, after_long_help = report::long_help(demo::EXAMPLES))]
    Demo(demo::Args),
    /// Print a shell completion script: `ferry completions bash > /etc/bash_completion.d/ferry`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The log level: RUST_LOG when set, else warnings (errors only with -q), -v info, -vv debug.
/// By default the AWS crates' own warnings (a missing config file, no Region from instance
/// metadata: ferry checks and falls back itself) stay behind -v; they carry the SDK's debug form.
fn log_directives(global: &Global) -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| {
        match (global.quiet, global.verbose) {
            (true, _) => "error",
            (_, 0) => "warn,aws=error",
            (_, 1) => "info",
            _ => "debug",
        }
        .into()
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    report::set_quiet(cli.global.quiet);
    ferry_core::telemetry::init_with(&log_directives(&cli.global), false, std::io::stderr);
    if let Command::Completions { shell } = cli.command {
        let mut script = vec![];
        clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut script);
        // A closed pipe (`| head`) is not an error.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            return report::failure(
                "Configuration",
                &error.to_string(),
                "fix or unset that FERRY_* variable",
                report::UNREACHABLE,
            )
        }
    };
    let global = cli.global;
    match cli.command {
        Command::Replicate(args) => replicate::run(&global, config, *args).await,
        Command::Status(args) => status::run(&global, config, args).await,
        Command::Audit(args) => audit::run(&global, config, args).await,
        Command::Prune(args) => prune::run(&global, config, args).await,
        Command::Demo(args) => demo::run(&global, args).await,
        Command::Completions { .. } => ExitCode::SUCCESS,
    }
}
