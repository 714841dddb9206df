//! plan-replication against the local AWS: trigger events, the policy's selection, loop
//! prevention, and the DR sweep replicating only what lacks a verified replica.

use ferry_core::policy::Policy;
use ferry_core::Config;
use ferry_tests::seed::Key;
use ferry_tests::world::HandlerWorld as World;
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const WEST: &str = "us-west-2";
const EUROPE: &str = "eu-west-1";
const SELECT: &str = "ferry:replicate";

async fn world(max_in_flight: usize) -> World {
    let policy = json!({
        "selection": {"tagKey": SELECT, "tagValues": ["true"]},
        "requireEncryptedSource": true,
        "sourceRegions": [SOURCE],
        "maxCopiesInFlightPerRegion": max_in_flight,
        "destinations": [{"region": WEST, "kmsKeyId": "alias/dr-west"}, {"region": EUROPE, "kmsKeyId": "alias/dr-europe"}]
    });
    let config = Config {
        policy: Some(Policy::parse(&policy.to_string()).unwrap()),
        ..Config::default()
    };
    let world = World::start(300.0, config).await;
    let (west, europe) = (world.seed.key(WEST).await, world.seed.key(EUROPE).await);
    world.seed.alias(WEST, "alias/dr-west", &west).await;
    world.seed.alias(EUROPE, "alias/dr-europe", &europe).await;
    world
}

fn fixture(name: &str) -> Value {
    ferry_tests::world::event_fixture(name)
}

fn ami_event(region: &str, image: &str) -> Value {
    ferry_tests::world::ami_available(region, image)
}

async fn tag(world: &World, region: &str, id: &str, key: &str, value: &str) {
    let tag = aws_sdk_ec2::types::Tag::builder()
        .key(key)
        .value(value)
        .build();
    world
        .seed
        .ec2(region)
        .create_tags()
        .resources(id)
        .tags(tag)
        .send()
        .await
        .unwrap();
}

/// An encrypted single-volume AMI, selected by the policy's tag when `selected`.
async fn image(world: &World, key: &Key, selected: bool) -> String {
    let snapshot = world.seed.snapshot(SOURCE, Some(key), 8).await;
    let image = world
        .seed
        .image(
            SOURCE,
            &format!("golden-{snapshot}"),
            &[("/dev/xvda", &snapshot)],
        )
        .await;
    if selected {
        tag(world, SOURCE, &image, SELECT, "true").await;
    }
    image
}

async fn plan(world: &World, input: &Value) -> Result<Value, ferry_core::FerryError> {
    let plan = ferry_core::handlers::plan::handle(&world.deps, input.clone()).await?;
    Ok(serde_json::to_value(plan).unwrap())
}

/// Runs one planned replication through the steps, as one Map iteration of the state machine does.
async fn replicate(world: &World, request: &Value) -> Value {
    ferry_tests::replicate_in_process(&world.aws, &world.deps, request)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_selected_ami_event_plans_one_replication_per_destination_region() {
    let world = world(20).await;
    let key = world.seed.key(SOURCE).await;
    let image = image(&world, &key, true).await;
    let plan = plan(&world, &ami_event(SOURCE, &image)).await.unwrap();
    assert_eq!(plan["trigger"], "event");
    assert_eq!(plan["replicationCount"], 2);
    let regions: Vec<String> = world
        .planned(&plan)
        .await
        .iter()
        .map(|r| r["destination"]["region"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(regions, [WEST, EUROPE]);
    assert!(world
        .planned(&plan)
        .await
        .iter()
        .all(|r| r["source"]["imageId"] == image.as_str()));
}

#[tokio::test]
async fn an_unselected_or_unfinished_source_is_skipped_with_the_reason() {
    let world = world(20).await;
    let key = world.seed.key(SOURCE).await;
    let untagged = image(&world, &key, false).await;
    let plan = plan(&world, &ami_event(SOURCE, &untagged)).await.unwrap();
    assert_eq!(plan["replicationCount"], 0);
    assert!(
        plan["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains(SELECT),
        "{plan}"
    );
    let failed = plan_of(&world, "ami-failed.json").await;
    assert_eq!(failed["replicationCount"], 0);
    assert!(failed["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("failed"));
    let copied = plan_of(&world, "snapshot-copied.json").await;
    assert!(copied["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("copySnapshot"));
    assert_eq!(
        world.aws.count_calls("CopyImage") + world.aws.count_calls("CopySnapshot"),
        0
    );
}

async fn plan_of(world: &World, fixture_name: &str) -> Value {
    plan(world, &fixture(fixture_name)).await.unwrap()
}

#[tokio::test]
async fn a_copy_ferry_made_is_never_replicated_again() {
    let world = world(20).await;
    let key = world.seed.key(SOURCE).await;
    let image = image(&world, &key, true).await;
    let first = plan(&world, &ami_event(SOURCE, &image)).await.unwrap();
    let done = replicate(&world, &world.planned(&first).await[0]).await;
    let copy = done["copy"]["destinationId"].as_str().unwrap();
    // copySourceTags would carry the selection tag over: the copy looks selected, yet is ferry's.
    tag(&world, WEST, copy, SELECT, "true").await;
    let echo = plan(&world, &ami_event(WEST, copy)).await.unwrap();
    assert_eq!(echo["replicationCount"], 0, "{echo}");
    assert!(
        echo["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("copy ferry made"),
        "{echo}"
    );
}

#[tokio::test]
async fn created_snapshots_are_planned_from_single_and_multi_volume_events() {
    let world = world(20).await;
    let key = world.seed.key(SOURCE).await;
    let (one, two) = (
        world.seed.snapshot(SOURCE, Some(&key), 8).await,
        world.seed.snapshot(SOURCE, Some(&key), 8).await,
    );
    for snapshot in [&one, &two] {
        tag(&world, SOURCE, snapshot, SELECT, "true").await;
    }
    let mut single = fixture("snapshot-created.json");
    single["detail"]["snapshot_id"] = json!(format!("arn:aws:ec2::{SOURCE}:snapshot/{one}"));
    assert_eq!(plan(&world, &single).await.unwrap()["replicationCount"], 2);
    let mut multi = fixture("snapshots-created.json");
    multi["detail"]["snapshots"] = json!([
        {"snapshot_id": format!("arn:aws:ec2::{SOURCE}:snapshot/{one}"), "status": "completed"},
        {"snapshot_id": format!("arn:aws:ec2::{SOURCE}:snapshot/{two}"), "status": "completed"}
    ]);
    let plan = plan(&world, &multi).await.unwrap();
    assert_eq!(plan["replicationCount"], 4);
    assert!(world
        .planned(&plan)
        .await
        .iter()
        .all(|r| r["source"]["snapshotId"] == one.as_str()
            || r["source"]["snapshotId"] == two.as_str()));
}

#[tokio::test]
async fn an_unencrypted_source_is_refused_when_the_policy_requires_encryption() {
    let world = world(20).await;
    let snapshot = world.seed.snapshot(SOURCE, None, 8).await;
    let image = world
        .seed
        .image(SOURCE, "plain", &[("/dev/xvda", &snapshot)])
        .await;
    tag(&world, SOURCE, &image, SELECT, "true").await;
    let error = plan(&world, &ami_event(SOURCE, &image)).await.unwrap_err();
    assert_eq!(error.name(), "SourceNotEncrypted");
    assert!(error.to_string().contains(&snapshot));
}

#[tokio::test]
async fn malformed_input_is_an_invalid_request() {
    let world = world(20).await;
    for input in [
        json!({}),
        json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}}),
        json!([1, 2]),
    ] {
        assert_eq!(
            plan(&world, &input).await.unwrap_err().name(),
            "InvalidRequest",
            "{input}"
        );
    }
}

#[tokio::test]
async fn the_dr_sweep_replicates_only_sources_lacking_a_verified_replica_within_the_quota() {
    let world = world(5).await;
    let key = world.seed.key(SOURCE).await;
    let mut sources = vec![];
    for _ in 0..24 {
        let snapshot = world.seed.snapshot(SOURCE, Some(&key), 8).await;
        tag(&world, SOURCE, &snapshot, SELECT, "true").await;
        sources.push(snapshot);
    }
    for _ in 0..6 {
        sources.push(image(&world, &key, true).await);
    }
    let _ignored = world.seed.snapshot(SOURCE, Some(&key), 8).await;
    let sweep = fixture("scheduled-event.json");

    // Replicate the first 8 sources to the West only, as an earlier run would have.
    let first = plan(&world, &sweep).await.unwrap();
    assert_eq!(first["trigger"], "sweep");
    assert_eq!(first["replicationCount"], 60, "30 sources × 2 Regions");
    let west: Vec<Value> = world
        .planned(&first)
        .await
        .into_iter()
        .filter(|r| r["destination"]["region"] == WEST)
        .collect();
    for request in west.iter().filter(|r| {
        sources[..8].iter().any(|s| {
            r["source"]["snapshotId"] == s.as_str() || r["source"]["imageId"] == s.as_str()
        })
    }) {
        replicate(&world, request).await;
    }

    let second = plan(&world, &sweep).await.unwrap();
    assert_eq!(second["alreadyReplicated"], 8);
    assert_eq!(
        second["replicationCount"], 52,
        "22 missing in the West, 30 in Europe"
    );
    for region in second["regions"].as_array().unwrap() {
        let at_once = region["maxConcurrency"].as_u64().unwrap();
        assert!((1..=5).contains(&at_once), "{region}");
    }
    let west_again: Vec<String> = world
        .planned(&second)
        .await
        .iter()
        .filter(|r| r["destination"]["region"] == WEST)
        .map(|r| {
            r["source"]["snapshotId"]
                .as_str()
                .or(r["source"]["imageId"].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        west_again.iter().all(|id| !sources[..8].contains(id)),
        "verified replicas are not planned again"
    );
    assert_eq!(west_again.len(), 22);
}

#[tokio::test]
async fn the_execution_id_travels_from_the_plan_into_the_lineage_tags() {
    let world = world(20).await;
    let key = world.seed.key(SOURCE).await;
    let image = image(&world, &key, true).await;
    let execution = "arn:aws:states:us-east-1:123456789012:execution:ferry:ferry-5a1d0c7e";
    let plan = plan(
        &world,
        &json!({"trigger": ami_event(SOURCE, &image), "executionId": execution}),
    )
    .await
    .unwrap();
    let requests = world.planned(&plan).await;
    assert!(
        requests.iter().all(|r| r["executionId"] == execution),
        "{plan}"
    );
    let done = replicate(&world, &requests[0]).await;
    let replica = world
        .seed
        .describe_image(WEST, done["copy"]["destinationId"].as_str().unwrap())
        .await;
    assert_eq!(
        ferry_tests::seed::tag_value(replica.tags(), "ferry:execution-id").as_deref(),
        Some(execution)
    );
}

#[tokio::test]
async fn the_sweep_drops_snapshots_that_back_a_selected_ami_and_counts_them() {
    let world = world(20).await;
    let key = world.seed.key(SOURCE).await;
    // Two AMIs whose root snapshots were tagged at creation too, as image builds often do.
    let mut backing = vec![];
    for _ in 0..2 {
        let image = image(&world, &key, true).await;
        let described = world.seed.describe_image(SOURCE, &image).await;
        let snapshot = described.block_device_mappings()[0]
            .ebs()
            .and_then(|e| e.snapshot_id())
            .unwrap()
            .to_string();
        tag(&world, SOURCE, &snapshot, SELECT, "true").await;
        backing.push(snapshot);
    }
    let alone = world.seed.snapshot(SOURCE, Some(&key), 8).await;
    tag(&world, SOURCE, &alone, SELECT, "true").await;

    let plan = plan(&world, &fixture("scheduled-event.json"))
        .await
        .unwrap();
    assert_eq!(plan["backingSnapshotsDropped"], 2, "{plan}");
    assert_eq!(
        plan["replicationCount"], 6,
        "2 AMIs and 1 snapshot × 2 Regions"
    );
    let planned = world.planned(&plan).await;
    assert!(
        planned.iter().all(|r| !backing
            .iter()
            .any(|b| r["source"]["snapshotId"] == b.as_str())),
        "a backing snapshot travels inside CopyImage: {planned:?}"
    );
    assert_eq!(
        planned
            .iter()
            .filter(|r| r["source"]["snapshotId"] == alone.as_str())
            .count(),
        2
    );
}
