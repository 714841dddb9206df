//! `ferry demo`: the embedded local AWS (moto plus ferry's patch layer), seeded with an encrypted
//! two-volume AMI, replicated to two Regions by the same code path as `ferry replicate`; then
//! what was proved, read back from EC2 itself.

use std::process::ExitCode;

use clap::Parser;
use std::sync::Arc;

use ferry_core::rules::polling::PollBounds;
use ferry_core::Config;
use ferry_local::local_aws::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use ferry_local::{tag_value, LocalAws, Seeder};

use crate::report;
use crate::Global;

const SOURCE: &str = "us-east-1";

/// The demo's narration: stdout for `--output table`; stderr when stdout carries JSON or CSV.
macro_rules! say {
    ($table:expr, $($arg:tt)*) => {
        if $table {
            println!($($arg)*)
        } else {
            eprintln!($($arg)*)
        }
    };
}

pub const EXAMPLES: &str = "Examples:
  ferry demo                 # start a local AWS, seed it, replicate, print what was proved
  ferry demo --keep          # ...and leave it running, seeded, with the environment to export
  ferry demo --endpoint-url http://127.0.0.1:41234   # the same on a local AWS already running";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Leave the local AWS running after the demo (until Ctrl-C), and print the environment that
    /// points `ferry` and the AWS CLI at it.
    #[arg(long)]
    keep: bool,
}

#[derive(clap::Parser)]
struct Replicate {
    #[command(flatten)]
    args: crate::replicate::Args,
}

pub async fn run(global: &Global, args: Args) -> ExitCode {
    let table = global.output == report::Output::Table;
    // Copies take 6 s of real time on a local AWS the demo starts; check-copy is polled every
    // 1-2 s. `--endpoint-url` runs it on a local AWS already running (ferry's own: the demo
    // moves its clock and reads its events).
    let aws = match &global.aws.endpoint_url {
        Some(endpoint) => match LocalAws::attach(endpoint) {
            Ok(aws) => aws,
            Err(why) => return report::failure(
                "Unreachable",
                &why,
                "start one with `ferry demo --keep`, or drop --endpoint-url (and AWS_ENDPOINT_URL)",
                report::UNREACHABLE,
            ),
        },
        None => LocalAws::start(6.0),
    };
    let seed = Seeder::new(&aws.sdk_config().await);
    let config = Config {
        poll: PollBounds {
            min_seconds: 1,
            max_seconds: 2,
        },
        ..Config::default()
    };
    let deps = Arc::new(aws.deps(config).await);
    eprintln!("local AWS at {} (moto + ferry's patch layer)", aws.endpoint);

    let (root_key, data_key) = (seed.key(SOURCE).await, seed.key(SOURCE).await);
    let root = seed.snapshot(SOURCE, Some(&root_key), 8).await;
    let data = seed.snapshot(SOURCE, Some(&data_key), 100).await;
    let image = seed
        .image(
            SOURCE,
            "web-golden-2026.11",
            &[("/dev/xvda", &root), ("/dev/xvdb", &data)],
        )
        .await;
    let destinations = [
        ("us-west-2", "alias/prod-ebs-usw2"),
        ("eu-west-1", "alias/prod-ebs-euw1"),
    ];
    let mut keys = vec![];
    for (region, alias) in destinations {
        let key = seed.key(region).await;
        seed.alias(region, alias, &key).await;
        keys.push(key);
    }
    say!(
        table,
        "seeded {SOURCE}/{image}: {root} under {}, {data} under {}",
        root_key.arn,
        data_key.arn
    );
    // The demo runs exactly the command it shows.
    let to: String = destinations
        .iter()
        .map(|(region, alias)| format!(" --to {region}={alias}"))
        .collect();
    let command: Vec<String> = format!(
        "replicate --source-region {SOURCE} --image {image}{to} --fsr-az us-west-2a --fsr-az us-west-2b --batch demo --copy-source-tags"
    )
    .split(' ')
    .map(str::to_string)
    .collect();
    say!(table, "$ ferry {}\n", command.join(" "));
    let requests = match Replicate::try_parse_from(&command) {
        Ok(Replicate { args }) => args.requests(),
        Err(error) => {
            eprintln!("error[InvalidRequest]: the demo's own command: {error}");
            return ExitCode::from(2);
        }
    };
    let outcomes = crate::replicate::in_process(deps, requests).await;
    let code = crate::replicate::summarize(&outcomes, global.output, &Default::default());
    aws.advance(3600.0);

    say!(
        table,
        "\nread back from EC2, independently of ferry's own evidence:"
    );
    for ((region, _), key) in destinations.iter().zip(&keys) {
        let images = seed.owned_images(region).await;
        for replica in images {
            let ids: Vec<String> = replica
                .block_device_mappings()
                .iter()
                .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string))
                .collect();
            say!(
                table,
                "  {region}/{} is {}",
                replica.image_id().unwrap_or_default(),
                replica.state().map(|s| s.as_str()).unwrap_or("?")
            );
            for snapshot in seed.describe_snapshots(region, &ids).await {
                let under_key = snapshot.kms_key_id() == Some(key.arn.as_str());
                say!(
                    table,
                    "    {} (from {}): Encrypted={} KmsKeyId={} {}",
                    snapshot.snapshot_id().unwrap_or_default(),
                    tag_value(snapshot.tags(), "ferry:source-snapshot-id").unwrap_or_default(),
                    snapshot.encrypted().unwrap_or(false),
                    snapshot.kms_key_id().unwrap_or("none"),
                    if under_key {
                        "= the destination key ✔"
                    } else {
                        "≠ the destination key ✘"
                    }
                );
            }
            let mut tags: Vec<_> = replica
                .tags()
                .iter()
                .filter(|t| t.key().unwrap_or_default().starts_with("ferry:"))
                .collect();
            tags.sort_by_key(|t| t.key().unwrap_or_default().to_string());
            say!(
                table,
                "    lineage tags: {}",
                tags.iter()
                    .map(|t| format!(
                        "{}={}",
                        t.key().unwrap_or_default(),
                        t.value().unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        if let Ok(fsr) = seed
            .ec2(region)
            .describe_fast_snapshot_restores()
            .send()
            .await
        {
            for state in fsr.fast_snapshot_restores() {
                say!(
                    table,
                    "    FSR {} in {}: {}",
                    state.snapshot_id().unwrap_or_default(),
                    state.availability_zone().unwrap_or_default(),
                    state.state().map(|s| s.as_str()).unwrap_or("?")
                );
            }
        }
    }
    let events: Vec<String> = aws
        .events()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["source"].as_str().unwrap_or("?"),
                e["detailType"].as_str().unwrap_or("?")
            )
        })
        .collect();
    say!(
        table,
        "  evidence events published to EventBridge: {}",
        events.join(", ")
    );
    if args.keep {
        keep_running(&aws, &image, table);
    }
    code
}

/// `--keep`: the environment that reaches this local AWS, then wait for Ctrl-C.
fn keep_running(aws: &LocalAws, image: &str, table: bool) -> ! {
    say!(table,
        "\nthe local AWS keeps running at {endpoint}, seeded, until Ctrl-C. In another terminal:\n\n  export AWS_ENDPOINT_URL={endpoint} AWS_REGION={SOURCE} AWS_DEFAULT_REGION={SOURCE} AWS_ACCESS_KEY_ID={TEST_ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY={TEST_SECRET_ACCESS_KEY} AWS_EC2_METADATA_DISABLED=true\n  ferry audit --regions us-west-2,eu-west-1\n  ferry replicate --source-region {SOURCE} --image {image} --to us-west-2=alias/prod-ebs-usw2 --dry-run\n  ferry demo --endpoint-url {endpoint}",
        endpoint = aws.endpoint
    );
    report::on_interrupt(|| "stopped the local AWS".into());
    loop {
        std::thread::park();
    }
}
