//! `make demo`: seeds the embedded local AWS with an encrypted two-volume AMI, replicates it to
//! another Region under an alias, and prints what was proved, read back from EC2 itself.

use std::io::Write;

use ferry_core::Config;
use ferry_tests::seed::tag_value;
use ferry_tests::{poll_until_settled, run_step, LocalAws, Seeder, Step};
use serde_json::json;

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = std::io::stdout().lock();
    let aws = LocalAws::start(20.0 * 60.0);
    let sdk = aws.sdk_config().await;
    let (seed, deps) = (Seeder::new(&sdk), aws.deps(Config::default()).await);
    writeln!(out, "local AWS at {} (moto + ferry's patch layer)", aws.endpoint)?;

    let (root_key, data_key) = (seed.key(SOURCE).await, seed.key(SOURCE).await);
    let root = seed.snapshot(SOURCE, Some(&root_key), 8).await;
    let data = seed.snapshot(SOURCE, Some(&data_key), 100).await;
    let image = seed.image(SOURCE, "web-golden-2026.11", &[("/dev/xvda", &root), ("/dev/xvdb", &data)]).await;
    let key = seed.key(DESTINATION).await;
    seed.alias(DESTINATION, "alias/prod-ebs-usw2", &key).await;
    writeln!(out, "seeded {SOURCE}/{image}: {root} under {}, {data} under {}", root_key.arn, data_key.arn)?;

    let request = json!({
        "source": {"region": SOURCE, "imageId": image},
        "destination": {"region": DESTINATION, "kmsKeyId": "alias/prod-ebs-usw2"},
        "options": {"batch": "demo", "copySourceTags": true, "fsr": {"availabilityZones": ["us-west-2a", "us-west-2b"]}}
    });
    let started = run_step(Step::StartCopy, &deps, &request).await?;
    let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();
    writeln!(out, "start-copy: {image} → {} (pending), alias/prod-ebs-usw2 resolved to {}", text(&started["copy"]["destinationId"]), text(&started["key"]["arn"]))?;
    let (copied, checks) = poll_until_settled(&aws, &deps, started).await?;
    writeln!(out, "check-copy: {} after {checks} adaptive checks of a simulated 20-minute copy", text(&copied["copy"]["status"]))?;
    let verified = run_step(Step::VerifyEncryption, &deps, &copied).await?;
    let tagged = run_step(Step::TagLineage, &deps, &verified).await?;
    let done = run_step(Step::EnableFsr, &deps, &tagged).await?;
    aws.advance(3600.0);

    let replica_id = done["copy"]["destinationId"].as_str().unwrap_or_default();
    let replica = seed.describe_image(DESTINATION, replica_id).await;
    writeln!(out, "\nproved, read back from EC2 in {DESTINATION}:")?;
    writeln!(out, "  image {replica_id} is {}", replica.state().map(|s| s.as_str()).unwrap_or("?"))?;
    let ids: Vec<String> = replica.block_device_mappings().iter().filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string)).collect();
    for snapshot in seed.describe_snapshots(DESTINATION, &ids).await {
        writeln!(
            out,
            "  snapshot {} (from {}): Encrypted={} KmsKeyId={} {}",
            snapshot.snapshot_id().unwrap_or_default(),
            tag_value(snapshot.tags(), "ferry:source-snapshot-id").unwrap_or_default(),
            snapshot.encrypted().unwrap_or(false),
            snapshot.kms_key_id().unwrap_or("none"),
            if snapshot.kms_key_id() == Some(key.arn.as_str()) { "= the destination key ✔" } else { "≠ the destination key ✘" }
        )?;
    }
    writeln!(out, "  lineage tags on the image:")?;
    let mut tags: Vec<_> = replica.tags().iter().filter(|t| t.key().unwrap_or_default().starts_with("ferry:")).collect();
    tags.sort_by_key(|t| t.key().unwrap_or_default().to_string());
    for tag in tags {
        writeln!(out, "    {} = {}", tag.key().unwrap_or_default(), tag.value().unwrap_or_default())?;
    }
    writeln!(out, "  Fast Snapshot Restore:")?;
    let fsr = seed.ec2(DESTINATION).describe_fast_snapshot_restores().send().await?;
    for state in fsr.fast_snapshot_restores() {
        writeln!(
            out,
            "    {} in {}: {}",
            state.snapshot_id().unwrap_or_default(),
            state.availability_zone().unwrap_or_default(),
            state.state().map(|s| s.as_str()).unwrap_or("?")
        )?;
    }
    let events = aws.events();
    let published: Vec<String> = events.iter().map(|e| format!("{}/{}", text(&e["source"]), text(&e["detailType"]))).collect();
    writeln!(out, "  evidence published to EventBridge: {}", published.join(", "))?;
    Ok(())
}
