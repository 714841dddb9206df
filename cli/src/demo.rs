//! `ferry demo`: the embedded local AWS (moto plus ferry's patch layer), seeded with an encrypted
//! two-volume AMI, replicated to two Regions by the same code path as `ferry replicate`; then
//! what was proved, read back from EC2 itself.

use std::process::ExitCode;

use clap::Parser;
use std::sync::Arc;

use ferry_core::rules::polling::PollBounds;
use ferry_core::Config;
use ferry_local::{tag_value, LocalAws, Seeder};

const SOURCE: &str = "us-east-1";

#[derive(clap::Parser)]
struct Replicate {
    #[command(flatten)]
    args: crate::replicate::Args,
}

pub async fn run() -> ExitCode {
    // Copies take 6 s of real time here; check-copy is polled every 1-2 s.
    let aws = LocalAws::start(6.0);
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
    println!(
        "seeded {SOURCE}/{image}: {root} under {}, {data} under {}",
        root_key.arn, data_key.arn
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
    println!("$ ferry {}\n", command.join(" "));
    let requests = match Replicate::try_parse_from(&command) {
        Ok(Replicate { args }) => args.requests(),
        Err(error) => {
            eprintln!("error[InvalidRequest]: the demo's own command: {error}");
            return ExitCode::from(2);
        }
    };
    let outcomes = crate::replicate::in_process(deps, requests).await;
    let code = crate::replicate::summarize(&outcomes, false);
    aws.advance(3600.0);

    println!("\nread back from EC2, independently of ferry's own evidence:");
    for ((region, _), key) in destinations.iter().zip(&keys) {
        let images = seed.owned_images(region).await;
        for replica in images {
            let ids: Vec<String> = replica
                .block_device_mappings()
                .iter()
                .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string))
                .collect();
            println!(
                "  {region}/{} is {}",
                replica.image_id().unwrap_or_default(),
                replica.state().map(|s| s.as_str()).unwrap_or("?")
            );
            for snapshot in seed.describe_snapshots(region, &ids).await {
                let under_key = snapshot.kms_key_id() == Some(key.arn.as_str());
                println!(
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
            println!(
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
                println!(
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
    println!(
        "  evidence events published to EventBridge: {}",
        events.join(", ")
    );
    code
}
