//! The DR sweep's decisions on a small fleet of port fakes (plan_at_scale.rs covers its size
//! and calls): which sources it plans to which Regions, the snapshots it leaves to CopyImage,
//! the replicas it finds already verified, and what it skips, with the reason.
//!
//! The fleet, under `tests/fixtures/policy/sweep.json` (sources in us-east-1 and eu-west-1; destinations
//! us-west-2 and eu-west-1; `dr=true` selects; encrypted sources only):
//! - us-east-1: `ami-golden` (selected; its root snapshot is tagged `dr=true` too), the selected
//!   snapshot `snap-alone`, an AMI tagged `dr=false`, a selected AMI with an unencrypted
//!   snapshot, and a selected AMI still `pending`;
//! - eu-west-1: the selected `ami-europe`; a verified replica of `ami-golden` (carrying the
//!   copied `dr=true`); an unfinished replica of `snap-alone` (no `ferry:verified-at`).

use ferry_core::fakes::{fixture, FakeWorld};
use ferry_core::handlers::plan::handle;
use ferry_core::policy::Policy;
use ferry_core::ports::{DeviceSnapshot, ImageInfo, SnapshotInfo, Tag};
use ferry_core::rules::lineage::{MANAGED_BY, SOURCE_ID, SOURCE_REGION, VERIFIED_AT};
use ferry_core::{Config, FerryError};
use serde_json::{json, Value};

const EAST: &str = "us-east-1";
const EUROPE: &str = "eu-west-1";
const WEST: &str = "us-west-2";
const EXECUTION: &str =
    "arn:aws:states:us-east-1:123456789012:execution:ferry-run:sweep-2026-11-22";
/// Unix day of the schedule fixture's time, 2026-11-22T00:00:00Z.
const SWEEP_DAY: u64 = 20_779;

fn event(name: &str) -> Value {
    fixture(&format!("events/{name}.json"))
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::new(*k, *v)).collect()
}

fn image(id: &str, state: &str, tagged: &[(&str, &str)], snapshots: &[(&str, bool)]) -> ImageInfo {
    ImageInfo {
        image_id: id.into(),
        state: state.into(),
        root_device_type: "ebs".into(),
        tags: tags(tagged),
        snapshots: snapshots
            .iter()
            .map(|(id, encrypted)| DeviceSnapshot {
                device_name: "/dev/xvda".into(),
                snapshot_id: (*id).into(),
                encrypted: *encrypted,
            })
            .collect(),
        ..Default::default()
    }
}

fn snapshot(id: &str, tagged: &[(&str, &str)]) -> SnapshotInfo {
    SnapshotInfo {
        snapshot_id: id.into(),
        state: "completed".into(),
        encrypted: true,
        tags: tags(tagged),
        ..Default::default()
    }
}

fn fleet() -> FakeWorld {
    let policy = Policy::parse(&fixture("policy/sweep.json").to_string()).unwrap();
    let world = FakeWorld::new(Config {
        policy: Some(policy),
        ..Config::default()
    });
    let selected = [("dr", "true")];
    let ec2 = &world.ec2;
    ec2.add_image(
        EAST,
        image(
            "ami-golden",
            "available",
            &selected,
            &[("snap-golden-root", true), ("snap-golden-data", true)],
        ),
    );
    ec2.add_snapshot(EAST, snapshot("snap-golden-root", &selected));
    ec2.add_snapshot(EAST, snapshot("snap-alone", &selected));
    ec2.add_image(
        EAST,
        image(
            "ami-unselected",
            "available",
            &[("dr", "false")],
            &[("snap-u", true)],
        ),
    );
    ec2.add_image(
        EAST,
        image(
            "ami-plain",
            "available",
            &selected,
            &[("snap-plain", false), ("snap-sealed", true)],
        ),
    );
    ec2.add_image(
        EAST,
        image("ami-pending", "pending", &selected, &[("snap-p", true)]),
    );
    ec2.add_image(
        EUROPE,
        image(
            "ami-europe",
            "available",
            &selected,
            &[("snap-europe", true)],
        ),
    );
    ec2.add_image(
        EUROPE,
        image(
            "ami-golden-replica",
            "available",
            &[
                ("dr", "true"),
                (MANAGED_BY, "ferry"),
                (SOURCE_REGION, EAST),
                (SOURCE_ID, "ami-golden"),
                (VERIFIED_AT, "2026-11-01T00:00:00Z"),
            ],
            &[("snap-replica-1", true), ("snap-replica-2", true)],
        ),
    );
    ec2.add_snapshot(
        EUROPE,
        snapshot(
            "snap-alone-unfinished",
            &[
                (MANAGED_BY, "ferry"),
                (SOURCE_REGION, EAST),
                (SOURCE_ID, "snap-alone"),
            ],
        ),
    );
    world
}

fn schedule() -> Value {
    json!({"trigger": event("scheduled-event"), "executionId": EXECUTION})
}

async fn plan(world: &FakeWorld, input: Value) -> Result<Value, FerryError> {
    Ok(serde_json::to_value(handle(&world.deps, input).await?).unwrap())
}

fn stored(world: &FakeWorld, key: &str) -> Value {
    let objects = world.store.objects.lock().unwrap();
    let body = &objects[&("ferry-work".to_string(), key.to_string())];
    serde_json::from_slice(body).unwrap()
}

/// `(destination Region, source id)` of every planned replication, in work-list order, and
/// every work item.
fn planned(world: &FakeWorld, plan: &Value) -> (Vec<(String, String)>, Vec<Value>) {
    let items: Vec<Value> = plan["regions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|region| {
            stored(world, region["key"].as_str().unwrap())
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    let pairs = items
        .iter()
        .map(|item| {
            let replication = &item["replication"];
            let source = &replication["source"];
            let id = source["imageId"].as_str().or(source["snapshotId"].as_str());
            (
                replication["destination"]["region"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                id.unwrap().to_string(),
            )
        })
        .collect();
    (pairs, items)
}

/// Every skip of the run (`plan.json`), as `source: reason`.
fn skipped(world: &FakeWorld, plan: &Value) -> Vec<String> {
    stored(world, plan["planKey"].as_str().unwrap())["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}: {}",
                s["source"].as_str().unwrap(),
                s["reason"].as_str().unwrap()
            )
        })
        .collect()
}

fn pair(region: &str, source: &str) -> (String, String) {
    (region.to_string(), source.to_string())
}

#[tokio::test]
async fn a_sweep_plans_each_selected_source_to_every_other_destination_lacking_a_verified_replica()
{
    let world = fleet();
    let plan = plan(&world, schedule()).await.unwrap();
    let (pairs, items) = planned(&world, &plan);
    assert_eq!(
        pairs,
        [
            pair(WEST, "ami-golden"),
            pair(WEST, "snap-alone"),
            pair(WEST, "ami-europe"),
            pair(EUROPE, "snap-alone"),
        ],
        "ami-golden is verified in eu-west-1; snap-alone's replica there is unfinished; \
         ami-europe is in its own Region"
    );
    assert_eq!(plan["trigger"], "sweep");
    assert_eq!(plan["replicationCount"], 4);
    assert_eq!(plan["alreadyReplicated"], 1);
    assert_eq!(plan["sweepRegions"], json!([WEST, EUROPE]));
    for item in &items {
        let replication = &item["replication"];
        assert_eq!(replication["executionId"], EXECUTION);
        assert_eq!(
            replication["options"]["attempt"], SWEEP_DAY,
            "a failed copy gets a fresh token at the next day's sweep"
        );
        assert_eq!(replication["options"]["copySourceTags"], true);
    }
    let kms: Vec<&str> = items
        .iter()
        .map(|i| {
            i["replication"]["destination"]["kmsKeyId"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        kms,
        [
            "alias/dr-west",
            "alias/dr-west",
            "alias/dr-west",
            "alias/dr-europe"
        ]
    );
}

#[tokio::test]
async fn a_sweep_leaves_a_snapshot_backing_a_selected_ami_to_copy_image() {
    let world = fleet();
    let plan = plan(&world, schedule()).await.unwrap();
    let (pairs, _) = planned(&world, &plan);
    assert!(
        !pairs.iter().any(|(_, id)| id.starts_with("snap-golden")),
        "{pairs:?}"
    );
    assert_eq!(plan["backingSnapshotsDropped"], 1);
    assert!(
        !skipped(&world, &plan)
            .iter()
            .any(|s| s.contains("snap-golden")),
        "dropped, not skipped"
    );
}

#[tokio::test]
async fn a_sweep_skips_unselected_unencrypted_and_ferry_made_sources_with_the_reason_and_ignores_unsettled_ones(
) {
    let world = fleet();
    let plan = plan(&world, schedule()).await.unwrap();
    let skipped = skipped(&world, &plan);
    assert_eq!(
        skipped,
        [
            "us-east-1/ami-unselected: not selected: it lacks the tag dr with a value in [true]",
            "us-east-1/ami-plain: source ami-plain has unencrypted snapshots (snap-plain) and the policy requires encrypted sources: encrypt the source first",
            "eu-west-1/ami-golden-replica: a copy ferry made (of ami-golden): copies are never replicated again",
            "eu-west-1/ami-europe: eu-west-1 is its own Region",
        ]
    );
    assert_eq!(plan["skippedCount"], skipped.len());
    let (pairs, _) = planned(&world, &plan);
    assert!(
        !pairs.iter().any(|(_, id)| id == "ami-pending"),
        "not available yet"
    );
}

#[tokio::test]
async fn an_event_naming_an_unencrypted_source_fails_with_source_not_encrypted_and_plans_nothing() {
    let world = fleet();
    let mut available = event("ami-available");
    available["detail"]["ImageId"] = json!("ami-plain");
    let error = plan(&world, available).await.unwrap_err();
    assert!(
        matches!(&error, FerryError::SourceNotEncrypted { id, snapshots } if id == "ami-plain" && snapshots == "snap-plain"),
        "{error}"
    );
    assert!(world.store.objects.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_event_plans_the_ami_it_names_to_every_destination_but_its_own_region() {
    let world = fleet();
    let mut available = event("ami-available");
    available["region"] = json!(EUROPE);
    available["detail"]["ImageId"] = json!("ami-europe");
    let plan = plan(&world, available).await.unwrap();
    let (pairs, _) = planned(&world, &plan);
    assert_eq!(pairs, [pair(WEST, "ami-europe")]);
    assert_eq!(plan["trigger"], "event");
    assert_eq!(
        skipped(&world, &plan),
        ["eu-west-1/ami-europe: eu-west-1 is its own Region"]
    );
}
