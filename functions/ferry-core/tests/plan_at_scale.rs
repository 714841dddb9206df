//! The planner at fleet scale, on the in-memory fakes: what passes through the state machine
//! is the same size for 10 sources and for 10,000 (counts, a bucket and keys, never the list),
//! and a sweep lists each Region once instead of describing each source again.

use ferry_core::fakes::FakeWorld;
use ferry_core::handlers::plan::handle;
use ferry_core::policy::Policy;
use ferry_core::ports::{DeviceSnapshot, ImageInfo, SnapshotInfo, Tag};
use ferry_core::Config;
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATIONS: [&str; 3] = ["us-west-2", "eu-west-1", "ap-southeast-2"];
const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:ferry-run:sweep-1";

fn policy() -> Policy {
    let destinations: Vec<Value> = DESTINATIONS
        .iter()
        .map(|r| json!({"region": r, "kmsKeyId": format!("alias/dr-{r}")}))
        .collect();
    Policy::parse(
        &json!({
            "selection": {"tagKey": "dr", "tagValues": ["true"]},
            "requireEncryptedSource": true,
            "sourceRegions": [SOURCE],
            "maxCopiesInFlightPerRegion": 20,
            "destinations": destinations,
        })
        .to_string(),
    )
    .unwrap()
}

fn snapshot(id: String, tags: Vec<Tag>) -> SnapshotInfo {
    SnapshotInfo {
        snapshot_id: id,
        state: "completed".into(),
        encrypted: true,
        kms_key_id: Some("arn:aws:kms:us-east-1:123456789012:key/source".into()),
        tags,
        ..Default::default()
    }
}

/// `n` selected sources in us-east-1: half AMIs of two snapshots (every fourth AMI's root
/// snapshot also carries the selection tag, as image builds often do), half snapshots; and
/// ten sources tagged `dr=false`, which the policy skips. Ids are decimal, so two fleets'
/// outputs differ only in digits.
fn fleet(n: usize) -> FakeWorld {
    let world = FakeWorld::new(Config {
        policy: Some(policy()),
        ..Config::default()
    });
    let selected = || vec![Tag::new("dr", "true")];
    for i in 0..n {
        if i % 2 == 0 {
            let (root, data) = (format!("snap-1{i:016}"), format!("snap-2{i:016}"));
            if i % 8 == 0 {
                world
                    .ec2
                    .add_snapshot(SOURCE, snapshot(root.clone(), selected()));
            }
            world.ec2.add_image(
                SOURCE,
                ImageInfo {
                    image_id: format!("ami-{i:017}"),
                    state: "available".into(),
                    root_device_type: "ebs".into(),
                    snapshots: [root, data]
                        .into_iter()
                        .map(|s| DeviceSnapshot {
                            device_name: "/dev/xvda".into(),
                            snapshot_id: s,
                            encrypted: true,
                        })
                        .collect(),
                    tags: selected(),
                    ..Default::default()
                },
            );
        } else {
            world
                .ec2
                .add_snapshot(SOURCE, snapshot(format!("snap-3{i:016}"), selected()));
        }
    }
    for i in 0..10 {
        world.ec2.add_snapshot(
            SOURCE,
            snapshot(format!("snap-4{i:016}"), vec![Tag::new("dr", "false")]),
        );
    }
    world
}

fn schedule() -> Value {
    json!({"trigger": {"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-12-01T00:00:00Z", "region": SOURCE, "resources": [], "detail": {}},
        "executionId": EXECUTION})
}

/// Every run of digits as one `0`: what two outputs share once their numbers are set aside.
fn shape(text: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('0');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

async fn plan(world: &FakeWorld) -> Value {
    serde_json::to_value(handle(&world.deps, schedule()).await.unwrap()).unwrap()
}

#[tokio::test]
async fn the_plan_that_passes_through_the_state_machine_is_the_same_size_for_ten_and_ten_thousand_sources(
) {
    let (small, large) = (fleet(10), fleet(10_000));
    let (a, b) = (plan(&small).await, plan(&large).await);
    assert_eq!(a["replicationCount"], 3 * 10, "{a}");
    assert_eq!(b["replicationCount"], 3 * 10_000, "{b}");
    let (a_text, b_text) = (a.to_string(), b.to_string());
    assert_eq!(shape(&a_text), shape(&b_text), "only numbers differ");
    assert!(
        b_text.len() <= a_text.len() + 64,
        "10 sources: {} bytes, 10,000: {} bytes",
        a_text.len(),
        b_text.len()
    );
    assert!(b_text.len() < 4 * 1024, "{} bytes", b_text.len());
    // The work itself went to S3, one list per destination Region.
    let written = large.store.objects.lock().unwrap().len();
    assert_eq!(
        written,
        DESTINATIONS.len() + 1,
        "three work lists and plan.json"
    );
}

#[tokio::test]
async fn a_sweep_lists_each_region_in_pages_and_never_describes_a_source_again() {
    let world = fleet(10_000);
    let plan = plan(&world).await;
    let calls = world.ec2.calls.lock().unwrap().clone();
    // us-east-1: 5,000 images (5 pages) and 5,000 + 1,250 + 10 snapshots with the tag (7 pages);
    // each destination: one page of images and one of snapshots (no replicas yet).
    assert_eq!(calls.get("DescribeImages"), Some(&(5 + 3)), "{calls:?}");
    assert_eq!(calls.get("DescribeSnapshots"), Some(&(7 + 3)), "{calls:?}");
    assert_eq!(
        plan["backingSnapshotsDropped"], 1250,
        "every eighth source is an AMI whose root snapshot is also tagged"
    );
    assert_eq!(plan["skippedCount"], 10, "dr=false");
}

fn results(entries: usize, failed: usize) -> Vec<(String, Vec<u8>)> {
    let item = |i: usize| {
        json!({"name": format!("r-snap-{i:017}-us-west-2"), "replication": {"source": {"region": SOURCE, "snapshotId": format!("snap-{i:017}")}, "destination": {"region": "us-west-2", "kmsKeyId": "alias/k"}}}).to_string()
    };
    let succeeded: Vec<Value> = (failed..entries)
        .map(|i| json!({"Input": item(i), "Output": json!({"executionArn": format!("arn:x:{i}"), "outcome": {"destinationId": format!("snap-9{i:016}")}}).to_string(), "Status": "SUCCEEDED"}))
        .collect();
    let failures: Vec<Value> = (0..failed)
        .map(|i| json!({"Input": item(i), "Error": "States.TaskFailed", "Cause": json!({"Error": "KeyNotFound", "Cause": format!("alias/k is not in us-west-2 ({i})")}).to_string(), "Status": "FAILED"}))
        .collect();
    vec![
        (
            "SUCCEEDED_0.json".into(),
            serde_json::to_vec(&succeeded).unwrap(),
        ),
        (
            "FAILED_0.json".into(),
            serde_json::to_vec(&failures).unwrap(),
        ),
    ]
}

async fn summary(world: &FakeWorld, plan: &Value, entries: usize) -> Value {
    for (file, body) in results(entries, 20) {
        let key = format!(
            "{}/us-west-2/map-run/{file}",
            plan["resultsPrefix"].as_str().unwrap()
        );
        ferry_core::ports::WorkStore::put(world.store.as_ref(), "ferry-work", &key, body)
            .await
            .unwrap();
    }
    serde_json::to_value(
        handle(&world.deps, json!({"summarize": plan}))
            .await
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_run_summary_is_the_same_size_for_ten_and_ten_thousand_replications() {
    let (small, large) = (fleet(10), fleet(10));
    let plan = plan(&small).await;
    let (a, b) = (
        summary(&small, &plan, 30).await,
        summary(&large, &plan, 10_000).await,
    );
    assert_eq!(
        (a["total"].clone(), a["failed"].clone()),
        (json!(30), json!(20))
    );
    assert_eq!(
        (b["total"].clone(), b["failed"].clone()),
        (json!(10_000), json!(20))
    );
    assert_eq!(b["firstFailure"]["error"], "KeyNotFound");
    assert_eq!(
        shape(&a.to_string()),
        shape(&b.to_string()),
        "only numbers differ"
    );
    // The whole list is in the manifest.
    let manifest = large
        .store
        .objects
        .lock()
        .unwrap()
        .iter()
        .find(|((_, key), _)| key.ends_with("summary.json"))
        .map(|(_, body)| serde_json::from_slice::<Value>(body).unwrap())
        .unwrap();
    assert_eq!(manifest["replications"].as_array().unwrap().len(), 10_000);
}
