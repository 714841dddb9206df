//! The deployed state machines, end to end: `statemachine/ferry.asl.json` and
//! `statemachine/replication.asl.json` (placeholders filled as SAM fills them) on moto's Step
//! Functions engine in the local AWS, their Tasks invoking the real Lambda binaries. Each test
//! prints its runs' state transitions.

use std::collections::BTreeSet;

use ferry_tests::seed::{tag_value, Key};
use ferry_tests::world::{
    ami_available, count, event_fixture, ferry_events, World, SELECTION_TAG, SOURCE,
};
use ferry_tests::Execution;
use serde_json::{json, Value};

const WEST: &str = "us-west-2";
const EUROPE: &str = "eu-west-1";

fn policy(destinations: Value) -> Value {
    ferry_tests::world::policy(destinations, 20)
}

/// An AMI in the source Region with two snapshots, each under its own key; `selected` tags it
/// with the policy's selection tag.
async fn source_image(world: &World, selected: bool) -> String {
    let (root_key, data_key) = (world.seed.key(SOURCE).await, world.seed.key(SOURCE).await);
    let (image, _) = world.seed.golden_image(SOURCE, &root_key, &data_key).await;
    if selected {
        let tag = aws_sdk_ec2::types::Tag::builder()
            .key(SELECTION_TAG)
            .value("true")
            .build();
        world
            .seed
            .ec2(SOURCE)
            .create_tags()
            .resources(&image)
            .tags(tag)
            .send()
            .await
            .expect("CreateTags");
    }
    image
}

fn report(test: &str, execution: &Execution) {
    eprintln!(
        "state machine: {test}: {} ({}) after {} state transitions",
        execution.status,
        execution.error.as_deref().unwrap_or("no error"),
        execution.state_transitions
    );
}

/// The replica of every replication that succeeded, per destination Region.
fn replicas(execution: &Execution) -> Vec<(String, String)> {
    execution.replicas()
}

/// Reads the replica back from EC2: available, and every snapshot encrypted under exactly `key`.
async fn assert_replica_encrypted_under(world: &World, region: &str, image: &str, key: &Key) {
    let replica = world.seed.describe_image(region, image).await;
    assert_eq!(
        replica.state().map(|s| s.as_str()),
        Some("available"),
        "{replica:?}"
    );
    let ids: Vec<String> = replica
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "one replica snapshot per source snapshot: {replica:?}"
    );
    for snapshot in world.seed.describe_snapshots(region, &ids).await {
        assert_eq!(snapshot.encrypted(), Some(true), "{snapshot:?}");
        assert_eq!(
            snapshot.kms_key_id(),
            Some(key.arn.as_str()),
            "{snapshot:?}"
        );
    }
}

/// Copy calls that reached EC2 (throttled ones excluded).
fn copy_calls(world: &World) -> usize {
    world
        .aws
        .calls()
        .iter()
        .filter(|c| {
            (c["action"] == "CopyImage" || c["action"] == "CopySnapshot") && c["throttled"] != true
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ami_state_change_event_replicates_to_two_regions_polling_while_the_copies_are_pending()
{
    let policy = policy(json!([
        {"region": WEST, "kmsKeyId": "alias/ferry-usw2", "fsr": {"availabilityZones": ["us-west-2a"], "disableAfterHours": 24}},
        {"region": EUROPE, "kmsKeyId": "alias/ferry-euw1"},
    ]));
    let world = World::start(policy, 3.0).await;
    let west_key = world.aliased_key(WEST, "alias/ferry-usw2").await;
    let europe_key = world.aliased_key(EUROPE, "alias/ferry-euw1").await;
    let image = source_image(&world, true).await;

    let execution = world.sfn.run(&ami_available(SOURCE, &image)).await;
    report("two Regions", &execution);
    assert_eq!(
        (execution.status.as_str(), execution.error.as_deref()),
        ("SUCCEEDED", None),
        "{:?}",
        execution.cause
    );
    assert_eq!(execution.last_state(), Some("Replicated"));
    assert_eq!(execution.output["summary"]["failed"], 0);
    assert_eq!(execution.output["summary"]["succeeded"], 2);

    let replicas = replicas(&execution);
    assert_eq!(
        replicas
            .iter()
            .map(|(region, _)| region.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([WEST, EUROPE])
    );
    for (region, replica) in &replicas {
        let key = if region == WEST {
            &west_key
        } else {
            &europe_key
        };
        assert_replica_encrypted_under(&world, region, replica, key).await;
        let checks = execution
            .entered("CheckCopy")
            .iter()
            .filter(|input| input["destination"]["region"] == region.as_str())
            .count();
        assert!(
            checks > 1,
            "{region}: the state machine polled while the copy was pending ({checks} checks)"
        );
        let tags = world.seed.describe_image(region, replica).await;
        assert_eq!(
            tag_value(tags.tags(), "ferry:source-id").as_deref(),
            Some(image.as_str())
        );
        assert!(
            tag_value(tags.tags(), "ferry:verified-at").is_some(),
            "tagged only after verification"
        );
        let execution_id = tag_value(tags.tags(), "ferry:execution-id")
            .expect("the execution that made it is recorded");
        assert!(
            execution_id.contains(&execution.name),
            "{execution_id} names execution {}",
            execution.name
        );
    }

    // us-west-2 asked for FSR with disableAfterHours: requested, tagged with when it is due, and
    // no replication waits for it.
    assert!(
        execution.entered("DisableFsr").is_empty() && execution.retries("WaitToDisableFsr") == 0,
        "FSR is never disabled inside a replication"
    );
    let fsr = world
        .seed
        .ec2(WEST)
        .describe_fast_snapshot_restores()
        .send()
        .await
        .expect("DescribeFastSnapshotRestores");
    assert!(!fsr.fast_snapshot_restores().is_empty());
    assert!(
        fsr.fast_snapshot_restores().iter().all(|s| matches!(
            s.state().map(|s| s.as_str()),
            Some("enabling" | "optimizing" | "enabled")
        )),
        "{fsr:?}"
    );
    let (_, west_replica) = replicas.iter().find(|(r, _)| r == WEST).unwrap();
    let snapshots = world.seed.describe_image(WEST, west_replica).await;
    let snapshot_ids: Vec<String> = snapshots
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
        .collect();
    for snapshot in world.seed.describe_snapshots(WEST, &snapshot_ids).await {
        assert!(
            tag_value(snapshot.tags(), "ferry:fsr-disable-at").is_some(),
            "{snapshot:?}"
        );
    }

    let events = ferry_events(&world);
    assert_eq!(
        (
            count(&events, "Replication Succeeded"),
            count(&events, "Replication Failed")
        ),
        (2, 0),
        "{events:?}"
    );
    assert_eq!(copy_calls(&world), 2, "one copy per Region");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_fails_its_region_with_key_not_found_while_the_other_region_is_replicated() {
    let policy = policy(json!([
        {"region": WEST, "kmsKeyId": "alias/ferry-usw2"},
        {"region": EUROPE, "kmsKeyId": "alias/ferry-euw1"},
    ]));
    let world = World::start(policy, 1.0).await;
    let west_key = world.aliased_key(WEST, "alias/ferry-usw2").await;
    // The alias exists, but only in another Region: aliases are Regional.
    world.aliased_key(WEST, "alias/ferry-euw1").await;
    let image = source_image(&world, true).await;

    let execution = world.sfn.run(&ami_available(SOURCE, &image)).await;
    report("one Region with a missing key", &execution);
    assert_eq!(
        (execution.status.as_str(), execution.error.as_deref()),
        ("FAILED", Some("KeyNotFound")),
        "{:?}",
        execution.cause
    );
    assert!(
        execution
            .cause
            .as_deref()
            .unwrap_or_default()
            .contains("alias/ferry-euw1"),
        "{:?}",
        execution.cause
    );

    let replicas = replicas(&execution);
    assert_eq!(replicas.len(), 1, "{replicas:?}");
    assert_eq!(replicas[0].0, WEST);
    assert_replica_encrypted_under(&world, WEST, &replicas[0].1, &west_key).await;
    assert!(
        world.seed.owned_images(EUROPE).await.is_empty(),
        "nothing is copied to the Region with the bad key"
    );

    let events = ferry_events(&world);
    let failed: Vec<&Value> = events
        .iter()
        .filter(|(kind, _)| kind == "Replication Failed")
        .map(|(_, detail)| detail)
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0]["destination"]["region"], EUROPE);
    assert_eq!(failed[0]["failure"]["Error"], "KeyNotFound");
    assert_eq!(count(&events, "Replication Succeeded"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_disabled_while_the_copy_is_pending_fails_the_execution_with_copy_failed_and_aws_message(
) {
    let world = World::start(
        policy(json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}])),
        4.0,
    )
    .await;
    let key = world.aliased_key(WEST, "alias/ferry-usw2").await;
    let image = source_image(&world, true).await;

    let event = ami_available(SOURCE, &image);
    let disable_once_copying = async {
        for _ in 0..400 {
            if !world.seed.owned_images(WEST).await.is_empty() {
                world.seed.disable_key(WEST, &key).await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the copy never started");
    };
    let (execution, ()) = tokio::join!(world.sfn.run(&event), disable_once_copying);
    report("key disabled while copying", &execution);
    assert_eq!(
        (execution.status.as_str(), execution.error.as_deref()),
        ("FAILED", Some("CopyFailed")),
        "{:?}",
        execution.cause
    );
    assert!(
        execution
            .cause
            .as_deref()
            .unwrap_or_default()
            .contains("not accessible"),
        "AWS's own message: {:?}",
        execution.cause
    );

    let events = ferry_events(&world);
    assert_eq!(
        (
            count(&events, "Replication Failed"),
            count(&events, "Replication Succeeded")
        ),
        (1, 0),
        "{events:?}"
    );
    let failed = &events
        .iter()
        .find(|(kind, _)| kind == "Replication Failed")
        .unwrap()
        .1;
    assert_eq!(failed["failure"]["Error"], "CopyFailed");
    assert!(
        execution.entered("VerifyEncryption").is_empty(),
        "a failed copy is never verified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_image_throttled_beyond_the_sdk_retries_is_retried_by_the_state_machine_and_copied_once(
) {
    let world = World::start(
        policy(json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}])),
        1.0,
    )
    .await;
    let key = world.aliased_key(WEST, "alias/ferry-usw2").await;
    let image = source_image(&world, true).await;
    // The SDK makes 6 attempts per call: 8 throttled answers outlast one invocation.
    world
        .aws
        .configure(json!({"throttle": {"actions": ["CopyImage"], "times": 8}}));

    let execution = world.sfn.run(&ami_available(SOURCE, &image)).await;
    report("throttled CopyImage", &execution);
    assert_eq!(
        (execution.status.as_str(), execution.error.as_deref()),
        ("SUCCEEDED", None),
        "{:?}",
        execution.cause
    );
    assert!(
        execution.retries("StartCopy") >= 1,
        "start-copy answered Throttled and the state machine retried it"
    );
    let failed_attempts = execution
        .history
        .iter()
        .filter(|e| e["type"] == "StateFailed" && e["state"] == "StartCopy")
        .collect::<Vec<_>>();
    assert!(
        failed_attempts.iter().all(|e| e["error"] == "Throttled"),
        "{failed_attempts:?}"
    );

    let throttled = world
        .aws
        .calls()
        .iter()
        .filter(|c| c["action"] == "CopyImage" && c["throttled"] == true)
        .count();
    assert_eq!(throttled, 8);
    assert_eq!(copy_calls(&world), 1, "one copy call got through");
    let owned = world.seed.owned_images(WEST).await;
    assert_eq!(owned.len(), 1, "one copy");
    assert_replica_encrypted_under(&world, WEST, owned[0].image_id().unwrap(), &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_trigger_event_twice_at_once_and_once_more_later_makes_one_copy_per_region() {
    let policy = policy(json!([
        {"region": WEST, "kmsKeyId": "alias/ferry-usw2"},
        {"region": EUROPE, "kmsKeyId": "alias/ferry-euw1"},
    ]));
    let world = World::start(policy, 1.0).await;
    world.aliased_key(WEST, "alias/ferry-usw2").await;
    world.aliased_key(EUROPE, "alias/ferry-euw1").await;
    let image = source_image(&world, true).await;
    let event = ami_available(SOURCE, &image);

    let mut executions = world.sfn.run_all(&[event.clone(), event.clone()]).await;
    executions.push(world.sfn.run(&event).await);
    for (i, execution) in executions.iter().enumerate() {
        report(
            &format!("duplicate trigger, execution {}", i + 1),
            execution,
        );
        assert_eq!(
            (execution.status.as_str(), execution.error.as_deref()),
            ("SUCCEEDED", None),
            "{:?}",
            execution.cause
        );
    }
    for region in [WEST, EUROPE] {
        assert_eq!(
            world.seed.owned_images(region).await.len(),
            1,
            "{region}: one copy"
        );
    }
    let replicas: Vec<_> = executions
        .iter()
        .map(replicas)
        .map(|r| r.into_iter().collect::<BTreeSet<_>>())
        .collect();
    assert!(
        replicas.iter().all(|r| r == &replicas[0]),
        "every execution names the same replicas: {replicas:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ami_without_the_selection_tag_is_skipped_and_nothing_is_copied() {
    let world = World::start(
        policy(json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}])),
        1.0,
    )
    .await;
    world.aliased_key(WEST, "alias/ferry-usw2").await;
    let image = source_image(&world, false).await;

    let execution = world.sfn.run(&ami_available(SOURCE, &image)).await;
    report("unselected AMI", &execution);
    assert_eq!(execution.status, "SUCCEEDED");
    assert_eq!(execution.last_state(), Some("Skipped"));
    let reason = execution.output["skipped"][0]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("not selected") && reason.contains(SELECTION_TAG),
        "{reason}"
    );
    assert_eq!(
        world.aws.count_calls("CopyImage") + world.aws.count_calls("CopySnapshot"),
        0
    );
    assert!(ferry_events(&world).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_request_replicates_and_the_replicas_own_ami_event_is_skipped_without_a_second_copy(
) {
    let world = World::start(
        policy(json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}])),
        1.0,
    )
    .await;
    let key = world.aliased_key(WEST, "alias/ferry-usw2").await;
    // A console rerun names the source and destination itself: no selection tag needed.
    let image = source_image(&world, false).await;

    let request = json!({"source": {"region": SOURCE, "imageId": image}, "destination": {"region": WEST, "kmsKeyId": "alias/ferry-usw2"}});
    let replicated = world.sfn.run(&request).await;
    report("console request", &replicated);
    assert_eq!(
        (replicated.status.as_str(), replicated.error.as_deref()),
        ("SUCCEEDED", None),
        "{:?}",
        replicated.cause
    );
    let replica = replicas(&replicated);
    assert_eq!(replica.len(), 1);
    assert_replica_encrypted_under(&world, WEST, &replica[0].1, &key).await;

    // EC2 announces the new replica in its Region; ferry must not replicate its own copy.
    let echo = world.sfn.run(&ami_available(WEST, &replica[0].1)).await;
    report("the replica's own AMI event", &echo);
    assert_eq!(echo.status, "SUCCEEDED");
    assert_eq!(echo.last_state(), Some("Skipped"));
    let reason = echo.output["skipped"][0]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("copy ferry made"), "{reason}");
    assert_eq!(copy_calls(&world), 1, "no second copy");
    assert_eq!(world.seed.owned_images(WEST).await.len(), 1);
}

/// EventBridge's `Scheduled Event` (tests/fixtures/events/scheduled-event.json).
fn schedule() -> Value {
    event_fixture("scheduled-event.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsr_due_to_be_disabled_is_disabled_by_the_scheduled_step_and_never_by_a_wait_in_its_replication(
) {
    // 0.001 h: due 3.6 s after it was requested.
    let world = World::start(
        policy(json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2", "fsr": {"availabilityZones": ["us-west-2a", "us-west-2b"], "disableAfterHours": 0.001}}])),
        1.0,
    )
    .await;
    world.aliased_key(WEST, "alias/ferry-usw2").await;
    let image = source_image(&world, true).await;
    let replicated = world.sfn.run(&ami_available(SOURCE, &image)).await;
    report("FSR requested with disableAfterHours", &replicated);
    assert_eq!(replicated.status, "SUCCEEDED", "{:?}", replicated.cause);
    let waits: BTreeSet<&str> = replicated
        .history
        .iter()
        .filter(|e| e["type"] == "StateEntered")
        .filter_map(|e| e["state"].as_str())
        .filter(|state| state.starts_with("Wait"))
        .collect();
    assert_eq!(
        waits,
        BTreeSet::from(["WaitForCopy"]),
        "the only wait is between copy checks"
    );
    let active = |states: &[aws_sdk_ec2::types::DescribeFastSnapshotRestoreSuccessItem]| {
        states
            .iter()
            .filter(|s| {
                matches!(
                    s.state().map(|s| s.as_str()),
                    Some("enabling" | "optimizing" | "enabled")
                )
            })
            .count()
    };
    let before = world
        .seed
        .ec2(WEST)
        .describe_fast_snapshot_restores()
        .send()
        .await
        .unwrap();
    assert_eq!(
        active(before.fast_snapshot_restores()),
        4,
        "2 snapshots × 2 zones"
    );

    // Not yet due: the sweep leaves it on.
    let early = world.sfn.run(&schedule()).await;
    assert_eq!(early.status, "SUCCEEDED", "{:?}", early.cause);
    assert_eq!(
        early.output["fsrDisabled"]["snapshots"], 0,
        "{}",
        early.output
    );
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;

    let sweep = world.sfn.run(&schedule()).await;
    report("sweep with FSR due", &sweep);
    assert_eq!(sweep.status, "SUCCEEDED", "{:?}", sweep.cause);
    assert_eq!(
        sweep.output["replicationCount"], 0,
        "already replicated and verified"
    );
    assert_eq!(
        sweep.output["fsrDisabled"]["snapshots"], 2,
        "{}",
        sweep.output
    );
    let after = world
        .seed
        .ec2(WEST)
        .describe_fast_snapshot_restores()
        .send()
        .await
        .unwrap();
    assert_eq!(active(after.fast_snapshot_restores()), 0, "{after:?}");

    // Once disabled it is not disabled again.
    let again = world.sfn.run(&schedule()).await;
    assert_eq!(
        again.output["fsrDisabled"]["snapshots"], 0,
        "{}",
        again.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_event_that_cannot_be_published_keeps_its_error_name_and_costs_no_other_replication(
) {
    let policy = policy(json!([
        {"region": WEST, "kmsKeyId": "alias/ferry-usw2"},
        {"region": EUROPE, "kmsKeyId": "alias/missing"},
    ]));
    let world = World::start(policy, 1.0).await;
    let west_key = world.aliased_key(WEST, "alias/ferry-usw2").await;
    let image = source_image(&world, true).await;
    // EventBridge refuses the next 8 entries (FailedEntryCount > 0). Europe fails first (no
    // key): its report fails with EventBridge.FailedEntry on all 5 attempts (1 + 4 retries);
    // the West's later Replication Succeeded is refused 3 times and published on a retry.
    world.aws.configure(json!({"failPutEvents": 8}));

    let execution = world.sfn.run(&ami_available(SOURCE, &image)).await;
    report("failure report refused by EventBridge", &execution);
    assert_eq!(
        (execution.status.as_str(), execution.error.as_deref()),
        ("FAILED", Some("KeyNotFound")),
        "the original error name, not the reporting failure: {:?}",
        execution.cause
    );
    let europe = execution
        .replications
        .iter()
        .find(|r| r.name.ends_with(EUROPE))
        .expect("the Europe replication ran");
    assert_eq!(europe.error.as_deref(), Some("KeyNotFound"));
    assert!(
        europe
            .cause
            .as_deref()
            .unwrap_or_default()
            .contains("was not published: EventBridge.FailedEntry"),
        "{:?}",
        europe.cause
    );
    let replicas = replicas(&execution);
    assert_eq!(
        replicas.len(),
        1,
        "the other Region is replicated: {replicas:?}"
    );
    assert_replica_encrypted_under(&world, WEST, &replicas[0].1, &west_key).await;
}
