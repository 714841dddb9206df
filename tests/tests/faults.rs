//! The fault suite: ferry's promise (no failure is silent, no copy is wrong, nothing is lost)
//! under the faults AWS really produces, injected by the local AWS (local/emulator/README.md,
//! "Fault switches") and by the Lambda router ("Crash faults"). Each test is one row of
//! docs/FAULTS.md and reports its figure with [`ferry_tests::figure`].
//!
//! The rows about the state machine run the deployed `statemachine/ferry.asl.json` on the local
//! interpreter with the real Lambda binaries (tests/stepfunctions/README.md); drift
//! re-verification runs the handlers directly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ferry_core::audit::{audit, Flag};
use ferry_core::{Config, FerryError};
use ferry_tests::seed::{tag_value, Key};
use ferry_tests::world::{count, ferry_events, policy, HandlerWorld, World, SELECTION_TAG, SOURCE};
use ferry_tests::{figure, replicate_in_process, run_step, Execution, Step};
use serde_json::{json, Value};

const WEST: &str = "us-west-2";
const EUROPE: &str = "eu-west-1";
const SYDNEY: &str = "ap-southeast-2";

/// Tags `resources` with the policy's selection tag, in one call.
async fn select(world: &World, resources: &[String]) {
    let tag = aws_sdk_ec2::types::Tag::builder()
        .key(SELECTION_TAG)
        .value("true")
        .build();
    world
        .seed
        .ec2(SOURCE)
        .create_tags()
        .set_resources(Some(resources.to_vec()))
        .tags(tag)
        .send()
        .await
        .expect("CreateTags");
}

/// A selected AMI in the source Region with two snapshots under `key`.
async fn source_image(world: &World, key: &Key) -> String {
    let (image, _) = world.seed.golden_image(SOURCE, key, key).await;
    select(world, std::slice::from_ref(&image)).await;
    image
}

/// `count` selected snapshots in the source Region under `key`.
async fn source_snapshots(world: &World, key: &Key, count: usize) -> Vec<String> {
    let mut snapshots = vec![];
    for _ in 0..count {
        snapshots.push(world.seed.snapshot(SOURCE, Some(key), 8).await);
    }
    select(world, &snapshots).await;
    snapshots
}

fn fixture(name: &str) -> Value {
    ferry_tests::world::event_fixture(name)
}

/// EventBridge's `EC2 AMI State Change` for `image` in the source Region.
fn ami_available(image: &str) -> Value {
    ferry_tests::world::ami_available(SOURCE, image)
}

/// EventBridge's `EBS Snapshot Notification` (tests/fixtures/events/snapshot-created.json) for `snapshot`.
fn snapshot_created(snapshot: &str) -> Value {
    let mut event = fixture("snapshot-created.json");
    let arn = format!("arn:aws:ec2::{SOURCE}:snapshot/{snapshot}");
    event["region"] = json!(SOURCE);
    event["resources"] = json!([arn]);
    event["detail"]["snapshot_id"] = json!(arn);
    event
}

/// The DR sweep's `Scheduled Event` (tests/fixtures/events/scheduled-event.json).
fn sweep() -> Value {
    fixture("scheduled-event.json")
}

fn report(test: &str, execution: &Execution) {
    eprintln!(
        "faults: {test}: {} ({}) after {} state transitions",
        execution.status,
        execution.error.as_deref().unwrap_or("no error"),
        execution.state_transitions
    );
}

/// The outputs of the run's replications that succeeded.
fn succeeded(execution: &Execution) -> Vec<Value> {
    execution
        .replications
        .iter()
        .filter(|r| r.status == "SUCCEEDED")
        .map(|r| r.output.clone())
        .collect()
}

/// Every retry the state machine made, by error name.
fn retried_errors(executions: &[Execution]) -> BTreeMap<String, usize> {
    let mut errors = BTreeMap::new();
    for execution in executions {
        // A StateRetried follows the StateFailed of the attempt it retries.
        let mut last_error = None;
        for event in &execution.history {
            match event["type"].as_str() {
                Some("StateFailed") => last_error = event["error"].as_str().map(str::to_string),
                Some("StateRetried") => {
                    *errors
                        .entry(last_error.clone().unwrap_or_else(|| "?".into()))
                        .or_insert(0) += 1
                }
                _ => {}
            }
        }
    }
    errors
}

/// Snapshots ferry made in `region` (tagged `ferry:managed-by=ferry`).
async fn ferry_snapshots(world: &World, region: &str) -> Vec<aws_sdk_ec2::types::Snapshot> {
    world
        .seed
        .snapshots_tagged(region, "ferry:managed-by", "ferry")
        .await
}

/// Every replica snapshot in `region` is completed, encrypted under exactly `key`, and tagged
/// verified; returns how many there are per `ferry:source-id`.
async fn verified_replicas(world: &World, region: &str, key: &Key) -> BTreeMap<String, usize> {
    let mut per_source = BTreeMap::new();
    for snapshot in ferry_snapshots(world, region).await {
        assert_eq!(
            snapshot.state().map(|s| s.as_str()),
            Some("completed"),
            "{snapshot:?}"
        );
        assert_eq!(
            (snapshot.encrypted(), snapshot.kms_key_id()),
            (Some(true), Some(key.arn.as_str())),
            "{snapshot:?}"
        );
        assert!(
            tag_value(snapshot.tags(), "ferry:verified-at").is_some(),
            "verified: {snapshot:?}"
        );
        *per_source
            .entry(tag_value(snapshot.tags(), "ferry:source-id").expect("lineage"))
            .or_insert(0) += 1;
    }
    per_source
}

fn stat(stats: &Value, key: &str, region: &str) -> u64 {
    stats[key][region].as_u64().unwrap_or(0)
}

fn faulted_answers(stats: &Value, key: &str) -> u64 {
    stats[key]
        .as_object()
        .map(|per_service| per_service.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// EC2 and KMS calls the emulator received (faulted ones included).
fn ec2_and_kms_calls(world: &World) -> usize {
    world
        .aws
        .calls()
        .iter()
        .filter(|c| c["service"] == "ec2" || c["service"] == "kms")
        .count()
}

// --- Duplicates -------------------------------------------------------------------------------

/// Two destination Regions; 1 AMI (two snapshots) and 2 snapshots selected in the source Region;
/// their trigger events.
async fn duplicates_world(
    copy_seconds: f64,
) -> (
    World,
    [(&'static str, Key); 2],
    String,
    Vec<String>,
    Vec<Value>,
) {
    let destinations = json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}, {"region": EUROPE, "kmsKeyId": "alias/ferry-euw1"}]);
    let world = World::start(policy(destinations, 20), copy_seconds).await;
    let keys = [
        (WEST, world.aliased_key(WEST, "alias/ferry-usw2").await),
        (EUROPE, world.aliased_key(EUROPE, "alias/ferry-euw1").await),
    ];
    let source_key = world.seed.key(SOURCE).await;
    let image = source_image(&world, &source_key).await;
    let snapshots = source_snapshots(&world, &source_key, 2).await;
    let events = vec![
        ami_available(&image),
        snapshot_created(&snapshots[0]),
        snapshot_created(&snapshots[1]),
    ];
    (world, keys, image, snapshots, events)
}

/// Copies per (source, Region) beyond the first, after checking every copy is verified.
async fn duplicate_copies(
    world: &World,
    keys: &[(&str, Key)],
    image: &str,
    snapshots: &[String],
) -> (usize, usize) {
    let (mut replicas, mut duplicates) = (0, 0);
    for (region, key) in keys {
        let per_source = verified_replicas(world, region, key).await;
        let copies = |source: &str| per_source.get(source).copied().unwrap_or(0);
        // The AMI copy holds two snapshots.
        for (source, copies) in [
            (image, copies(image) / 2),
            (&snapshots[0], copies(&snapshots[0])),
            (&snapshots[1], copies(&snapshots[1])),
        ] {
            assert!(
                copies >= 1,
                "{region}: {source} was replicated: {per_source:?}"
            );
            replicas += 1;
            duplicates += copies - 1;
        }
        assert_eq!(
            world.seed.owned_images(region).await.len(),
            1,
            "{region}: one AMI copy"
        );
    }
    (replicas, duplicates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trigger_event_delivered_three_times_makes_exactly_one_copy_per_source_region_and_key(
) {
    let started = Instant::now();
    let (world, keys, image, snapshots, events) = duplicates_world(2.0).await;

    // At-least-once delivery: each event once, then twice more at once while its copies are in
    // flight (EventBridge redelivers within seconds; copies take minutes).
    let first = world.sfn.run_all(&events);
    let redeliveries: Vec<Value> = events
        .iter()
        .flat_map(|event| [event.clone(), event.clone()])
        .collect();
    let again = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while ferry_snapshots(&world, WEST).await.len() < 4
            || ferry_snapshots(&world, EUROPE).await.len() < 4
        {
            assert!(Instant::now() < deadline, "the first copies never started");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        world.sfn.run_all(&redeliveries).await
    };
    let (first, again) = tokio::join!(first, again);
    let executions: Vec<Execution> = first.into_iter().chain(again).collect();
    for (i, execution) in executions.iter().enumerate() {
        report(&format!("delivery {}", i + 1), execution);
        assert_eq!(
            (execution.status.as_str(), execution.error.as_deref()),
            ("SUCCEEDED", None),
            "{:?}",
            execution.cause
        );
    }

    let (replicas, duplicates) = duplicate_copies(&world, &keys, &image, &snapshots).await;
    assert_eq!((replicas, duplicates), (6, 0));
    // Every execution names the same replica for the same source and Region.
    let mut named: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for branch in executions.iter().flat_map(succeeded) {
        let source = branch["source"]["imageId"]
            .as_str()
            .or(branch["source"]["snapshotId"].as_str())
            .unwrap_or_default()
            .to_string();
        let region = branch["destination"]["region"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        named.entry((source, region)).or_default().insert(
            branch["destinationId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(named.len(), 6);
    assert!(named.values().all(|ids| ids.len() == 1), "{named:?}");
    let copy_calls = world.aws.count_calls("CopyImage") + world.aws.count_calls("CopySnapshot");
    figure(
        "duplicates",
        &format!(
            "3 trigger events (1 AMI, 2 snapshots) × 2 Regions, each delivered 3 times (once, then twice at once while its copies were in flight): {} executions succeeded, {replicas} replicas for 6 (source, Region, key), {duplicates} duplicates ({copy_calls} copy calls) [{:.0?}]",
            executions.len(),
            started.elapsed()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trigger_event_delivered_three_times_at_the_same_instant_makes_exactly_one_copy() {
    let started = Instant::now();
    let (world, keys, image, snapshots, events) = duplicates_world(1.0).await;
    let deliveries: Vec<Value> = events
        .iter()
        .flat_map(|event| std::iter::repeat_n(event.clone(), 3))
        .collect();
    let executions = world.sfn.run_all(&deliveries).await;
    for execution in &executions {
        assert_eq!(
            (execution.status.as_str(), execution.error.as_deref()),
            ("SUCCEEDED", None),
            "{:?}",
            execution.cause
        );
    }
    let (replicas, duplicates) = duplicate_copies(&world, &keys, &image, &snapshots).await;
    let copy_calls = world.aws.count_calls("CopyImage") + world.aws.count_calls("CopySnapshot");
    figure(
        "duplicates at the same instant",
        &format!(
            "3 trigger events × 2 Regions, each delivered 3 times at the same instant: {replicas} replicas, {duplicates} duplicates ({copy_calls} copy calls) [{:.0?}]",
            started.elapsed()
        ),
    );
    assert_eq!(duplicates, 0, "one copy per (source, Region, key)");
}

// --- Throttling, 5xx and slow answers ---------------------------------------------------------

/// Seeds 1 AMI and `snapshots` snapshots for two Regions, injects `faults` into every EC2 and KMS
/// call, runs the DR sweep through the state machine and checks every replication completed.
/// Returns (replications completed, replications planned, EC2+KMS calls, stats, retries).
async fn sweep_under(
    faults: Value,
    snapshots: usize,
) -> (
    World,
    Execution,
    usize,
    usize,
    Value,
    BTreeMap<String, usize>,
) {
    let destinations = json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}, {"region": EUROPE, "kmsKeyId": "alias/ferry-euw1"}]);
    let world = World::start(policy(destinations, 20), 1.0).await;
    let keys = [
        (WEST, world.aliased_key(WEST, "alias/ferry-usw2").await),
        (EUROPE, world.aliased_key(EUROPE, "alias/ferry-euw1").await),
    ];
    let source_key = world.seed.key(SOURCE).await;
    let image = source_image(&world, &source_key).await;
    let sources = source_snapshots(&world, &source_key, snapshots).await;
    let calls_before = ec2_and_kms_calls(&world);
    world.aws.configure(faults);

    let execution = world.sfn.run(&sweep()).await;
    world
        .aws
        .configure(json!({"throttleFraction": 0, "serverErrorFraction": 0, "delaySeconds": 0}));
    report("sweep under faults", &execution);
    assert_eq!(
        (execution.status.as_str(), execution.error.as_deref()),
        ("SUCCEEDED", None),
        "{:?}",
        execution.cause
    );
    let planned = execution
        .entered("StartCopy")
        .iter()
        .map(|input| input.to_string())
        .collect::<BTreeSet<_>>()
        .len();
    assert_eq!(planned, 2 * (1 + snapshots));
    let mut completed = 0;
    for (region, key) in &keys {
        let per_source = verified_replicas(&world, region, key).await;
        assert_eq!(per_source.get(&image), Some(&2), "{region}: {per_source:?}");
        assert!(
            sources.iter().all(|s| per_source.get(s) == Some(&1)),
            "{region}: one verified copy per source: {per_source:?}"
        );
        assert_eq!(
            world.seed.owned_images(region).await.len(),
            1,
            "{region}: no duplicate AMI copy"
        );
        completed += per_source.len();
    }
    let stats = world.aws.stats();
    let calls = ec2_and_kms_calls(&world) - calls_before;
    let retries = retried_errors(std::slice::from_ref(&execution));
    (world, execution, completed, calls, stats, retries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_thirty_percent_of_ec2_and_kms_calls_throttled_every_replication_completes() {
    let started = Instant::now();
    let (_world, execution, completed, calls, stats, retries) =
        sweep_under(json!({"seed": 7, "throttleFraction": 0.3}), 9).await;
    let throttled = faulted_answers(&stats, "throttled");
    assert!(
        throttled as f64 >= 0.2 * calls as f64,
        "about 30 % throttled: {throttled} of {calls}"
    );
    assert!(
        retries.keys().all(|error| error == "Throttled"),
        "the state machine only retried Throttled steps: {retries:?}"
    );
    figure(
        "throttling",
        &format!(
            "30 % of EC2 and KMS calls throttled ({throttled} of {calls} answers, seed 7): {completed}/{completed} replications (1 AMI + 9 snapshots × 2 Regions) completed and verified = 100 %, 0 duplicates; the SDK's retries absorbed the throttling except {} steps still throttled after 6 attempts, which the state machine retried; {} state transitions [{:.0?}]",
            retries.get("Throttled").copied().unwrap_or(0),
            execution.state_transitions,
            started.elapsed()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ten_percent_5xx_answers_and_slow_answers_every_replication_completes() {
    let started = Instant::now();
    let faults = json!({"seed": 11, "serverErrorFraction": 0.1, "delaySeconds": 0.02});
    let (_world, _execution, completed, calls, stats, retries) = sweep_under(faults, 2).await;
    let errors = faulted_answers(&stats, "serverErrors");
    assert!(errors > 0, "{stats}");
    assert!(
        retries
            .keys()
            .all(|error| error == "AwsError" || error == "Throttled"),
        "{retries:?}"
    );
    figure(
        "5xx and slow answers",
        &format!(
            "10 % of EC2 and KMS calls answered HTTP 500/503 ({errors} of {calls}, seed 11) and every answer delayed 20 ms: {completed}/{completed} replications (1 AMI + 2 snapshots × 2 Regions) completed and verified = 100 %; {} state-machine retries [{:.0?}]",
            retries.values().sum::<usize>(),
            started.elapsed()
        ),
    );
}

// --- Quota ------------------------------------------------------------------------------------

/// `sources` selected snapshots swept to one Region under an emulator quota of `quota` copies in
/// flight and a policy that assumes `assumed`.
async fn quota_run(
    sources: usize,
    quota: u64,
    assumed: usize,
    retry_pause: Option<Duration>,
    copy_seconds: f64,
) -> (World, Execution, Key, Vec<String>) {
    let mut world = World::start(
        policy(
            json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}]),
            assumed,
        ),
        copy_seconds,
    )
    .await;
    if let Some(pause) = retry_pause {
        world.sfn.set_retry_pause(pause);
    }
    let key = world.aliased_key(WEST, "alias/ferry-usw2").await;
    let source_key = world.seed.key(SOURCE).await;
    let snapshots = source_snapshots(&world, &source_key, sources).await;
    world.aws.configure(json!({"copyQuotaPerRegion": quota}));

    let execution = world.sfn.run(&sweep()).await;
    report("sweep under the copy quota", &execution);
    assert_eq!(
        (execution.status.as_str(), execution.error.as_deref()),
        ("SUCCEEDED", None),
        "{:?}",
        execution.cause
    );
    assert_eq!(
        succeeded(&execution).len(),
        sources,
        "every replication succeeded"
    );
    let per_source = verified_replicas(&world, WEST, &key).await;
    assert_eq!(
        per_source.keys().collect::<BTreeSet<_>>(),
        snapshots.iter().collect::<BTreeSet<_>>(),
        "a replica for every source"
    );
    assert!(per_source.values().all(|&n| n == 1), "one copy each");
    (world, execution, key, snapshots)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_snapshots_to_one_region_under_a_quota_of_twenty_all_complete_and_never_exceed_it() {
    let started = Instant::now();
    let (world, execution, _key, _) = quota_run(50, 20, 20, None, 3.0).await;
    let stats = world.aws.stats();
    let (peak, refused) = (
        stat(&stats, "peakCopiesInFlight", WEST),
        stat(&stats, "resourceLimitExceeded", WEST),
    );
    assert!(
        peak <= 20,
        "in-flight copies never exceed the quota: {stats}"
    );
    assert_eq!(refused, 0, "ferry's window keeps within the quota: {stats}");
    let window = execution.run.output["regions"][0]["maxConcurrency"].clone();
    assert_eq!(window, 20, "a sliding window of 20 replications");
    figure(
        "quota",
        &format!(
            "50 snapshots swept to one Region, quota 20 (emulator and policy): 50/50 replicated and verified, peak {peak} copies in flight (≤ 20, counted by the emulator), {refused} ResourceLimitExceeded, a sliding window of {window} [{:.0?}]",
            started.elapsed()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_smaller_than_the_policy_assumes_is_absorbed_by_copy_quota_exceeded_retries() {
    let started = Instant::now();
    // On AWS the CopyQuotaExceeded retrier (10 attempts from 60 s, doubling to 900 s) spans many
    // copies' time; locally copies take 1 s, so each retry pauses 1 s (10 s over 10 attempts).
    let (world, execution, _key, _) = quota_run(20, 5, 20, Some(Duration::from_secs(1)), 1.0).await;
    let stats = world.aws.stats();
    let (peak, refused) = (
        stat(&stats, "peakCopiesInFlight", WEST),
        stat(&stats, "resourceLimitExceeded", WEST),
    );
    assert!(peak <= 5, "{stats}");
    assert!(refused > 0, "the quota refused copies: {stats}");
    let retries = retried_errors(std::slice::from_ref(&execution));
    assert!(
        retries.get("CopyQuotaExceeded").copied().unwrap_or(0) > 0,
        "{retries:?}"
    );
    assert!(
        retries.keys().all(|error| error == "CopyQuotaExceeded"),
        "{retries:?}"
    );
    figure(
        "quota below policy",
        &format!(
            "20 snapshots to one Region, emulator quota 5 while the policy assumes 20: {refused} ResourceLimitExceeded → CopyQuotaExceeded, retried {} times by the state machine; 20/20 replicated and verified, peak {peak} in flight (≤ 5) [{:.0?}]",
            retries.get("CopyQuotaExceeded").copied().unwrap_or(0),
            started.elapsed()
        ),
    );
}

// --- Asynchronous failures --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_disabled_or_pending_deletion_mid_copy_or_a_copy_aws_fails_ends_in_copy_failed_with_aws_message(
) {
    let started = Instant::now();
    let destinations = json!([
        {"region": WEST, "kmsKeyId": "alias/ferry-usw2"},
        {"region": EUROPE, "kmsKeyId": "alias/ferry-euw1"},
        {"region": SYDNEY, "kmsKeyId": "alias/ferry-apse2"},
    ]);
    let world = World::start(policy(destinations, 20), 4.0).await;
    let west = world.aliased_key(WEST, "alias/ferry-usw2").await;
    let europe = world.aliased_key(EUROPE, "alias/ferry-euw1").await;
    world.aliased_key(SYDNEY, "alias/ferry-apse2").await;
    let source_key = world.seed.key(SOURCE).await;
    let image = source_image(&world, &source_key).await;
    let aws_message =
        "Snapshot copy failed: the source data could not be read (simulated EBS failure)";
    world.aws.configure(json!({"failNextCopies": {"count": 1, "code": "Server.InternalError", "message": aws_message, "region": SYDNEY}}));

    // Each key changes state once its copy has started, while the copy is pending.
    let break_key_once_copying = |region: &'static str, key: Key, pending_deletion: bool| {
        let seed = &world.seed;
        async move {
            for _ in 0..400 {
                if !seed.owned_images(region).await.is_empty() {
                    if pending_deletion {
                        seed.schedule_deletion(region, &key).await;
                    } else {
                        seed.disable_key(region, &key).await;
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("{region}: the copy never started");
        }
    };
    let event = ami_available(&image);
    let (execution, (), ()) = tokio::join!(
        world.sfn.run(&event),
        break_key_once_copying(WEST, west, false),
        break_key_once_copying(EUROPE, europe, true)
    );
    report("asynchronous failures", &execution);
    assert_eq!(
        (execution.status.as_str(), execution.error.as_deref()),
        ("FAILED", Some("CopyFailed")),
        "{:?}",
        execution.cause
    );
    assert!(
        execution.cause.as_deref().unwrap_or_default().len() > 20,
        "{:?}",
        execution.cause
    );
    assert!(
        execution.entered("VerifyEncryption").is_empty(),
        "a failed copy is never verified"
    );
    assert!(succeeded(&execution).is_empty(), "nothing reports success");

    let events = ferry_events(&world);
    assert_eq!(
        (
            count(&events, "Replication Failed"),
            count(&events, "Replication Succeeded")
        ),
        (3, 0),
        "{events:?}"
    );
    let mut carried = BTreeMap::new();
    for (_, detail) in events
        .iter()
        .filter(|(kind, _)| kind == "Replication Failed")
    {
        assert_eq!(detail["failure"]["Error"], "CopyFailed", "{detail}");
        carried.insert(
            detail["destination"]["region"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            detail["failure"]["Cause"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert!(
        carried[WEST].contains("Given key ID is not accessible")
            && carried[WEST].contains("is Disabled"),
        "{}",
        carried[WEST]
    );
    assert!(
        carried[EUROPE].contains("Given key ID is not accessible")
            && carried[EUROPE].contains("is PendingDeletion"),
        "{}",
        carried[EUROPE]
    );
    assert!(carried[SYDNEY].contains(aws_message), "{}", carried[SYDNEY]);
    for region in [WEST, EUROPE, SYDNEY] {
        assert!(
            world.seed.owned_images(region).await.is_empty(),
            "{region}: the failed copy was removed"
        );
        assert!(ferry_snapshots(&world, region)
            .await
            .iter()
            .all(|s| tag_value(s.tags(), "ferry:verified-at").is_none()));
    }
    figure(
        "async key failure",
        &format!(
            "3 of 3 asynchronous copy failures (key Disabled mid-copy, key PendingDeletion mid-copy, copy ended failed by AWS with a message) end the execution in CopyFailed carrying AWS's message; 3 Replication Failed events, 0 Replication Succeeded, 0 replicas verified, 3 failed copies removed [{:.0?}]",
            started.elapsed()
        ),
    );
}

// --- Drift --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_replica_later_found_under_the_wrong_key_fails_re_verification() {
    let started = Instant::now();
    let HandlerWorld { aws, seed, deps } = HandlerWorld::start(600.0, Config::default()).await;
    let source_key = seed.key(SOURCE).await;
    let (image, _) = seed.golden_image(SOURCE, &source_key, &source_key).await;
    let lone = seed.snapshot(SOURCE, Some(&source_key), 8).await;
    let untouched = seed.snapshot(SOURCE, Some(&source_key), 8).await;
    let key = seed.key(WEST).await;
    let other = seed.key(WEST).await;
    seed.alias(WEST, "alias/somebody-elses", &other).await;

    let (aws_ref, deps_ref, key_arn) = (&aws, &deps, key.arn.as_str());
    let replicate = move |source: Value| async move {
        let request =
            json!({"source": source, "destination": {"region": WEST, "kmsKeyId": key_arn}});
        replicate_in_process(aws_ref, deps_ref, &request)
            .await
            .unwrap()
    };
    let documents = [
        replicate(json!({"region": SOURCE, "imageId": image})).await,
        replicate(json!({"region": SOURCE, "snapshotId": lone})).await,
        replicate(json!({"region": SOURCE, "snapshotId": untouched})).await,
    ];
    for document in &documents {
        run_step(Step::VerifyEncryption, &deps, document)
            .await
            .expect("a fresh replica re-verifies");
    }

    // Later, two replicas are found under another key: the AMI's data snapshot and the lone snapshot.
    let ami_snapshots: Vec<String> = documents[0]["evidence"]["verification"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshotId"].as_str().unwrap().to_string())
        .collect();
    let drifted = [
        ami_snapshots[1].clone(),
        documents[1]["copy"]["destinationId"]
            .as_str()
            .unwrap()
            .to_string(),
    ];
    for snapshot in &drifted {
        assert_eq!(
            aws.tamper(snapshot, "alias/somebody-elses")["kmsKeyId"],
            other.arn.as_str()
        );
    }
    let mut failed = 0;
    for (document, snapshot) in documents[..2].iter().zip(&drifted) {
        match run_step(Step::VerifyEncryption, &deps, document)
            .await
            .unwrap_err()
        {
            FerryError::ReplicaWrongKey {
                findings,
                expected_key_arn,
                ..
            } => {
                assert_eq!(expected_key_arn, key.arn);
                assert_eq!(findings.len(), 1, "{findings:?}");
                assert_eq!(&findings[0].snapshot_id, snapshot);
                assert!(
                    findings[0].problem.contains(&other.arn),
                    "names the key it is under: {}",
                    findings[0].problem
                );
                failed += 1;
            }
            other => panic!("expected ReplicaWrongKey, got {other:?}"),
        }
    }
    run_step(Step::VerifyEncryption, &deps, &documents[2])
        .await
        .expect("the untouched replica still verifies");

    let flagged: BTreeSet<String> = audit(&deps, &[WEST.to_string()], &[])
        .await
        .unwrap()
        .iter()
        .flat_map(|replica| replica.flags.iter())
        .filter_map(|flag| match flag {
            Flag::WrongKey {
                snapshot_id,
                recorded,
                actual,
            } => {
                assert_eq!(
                    (recorded.as_str(), actual.as_str()),
                    (key.arn.as_str(), other.arn.as_str())
                );
                Some(snapshot_id.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(flagged, drifted.iter().cloned().collect::<BTreeSet<_>>());
    figure(
        "drift",
        &format!(
            "{failed} of 2 replicas re-pointed to another key (an AMI's data snapshot, a snapshot) fail re-verification with ReplicaWrongKey naming the snapshot and the key it is under; the untouched replica still verifies; ferry audit flags the same {} as WrongKey [{:.0?}]",
            flagged.len(),
            started.elapsed()
        ),
    );
}

// --- Crash safety -------------------------------------------------------------------------------

const STEPS: [&str; 6] = [
    "plan-replication",
    "start-copy",
    "check-copy",
    "verify-encryption",
    "tag-lineage",
    "enable-fsr",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_whose_answer_is_lost_after_it_ran_is_retried_by_the_state_machine_and_copies_once(
) {
    let started = Instant::now();
    let world = World::start(
        policy(
            json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}]),
            20,
        ),
        1.0,
    )
    .await;
    let key = world.aliased_key(WEST, "alias/ferry-usw2").await;
    let source_key = world.seed.key(SOURCE).await;
    let image = source_image(&world, &source_key).await;
    let snapshot = source_snapshots(&world, &source_key, 1).await.remove(0);
    // Every function, including start-copy after its copy call went through, runs to the end
    // and then loses its answer, twice across the two executions.
    for function in STEPS {
        world.sfn.lose_answers(function, "serviceException", 2);
    }

    let requests = [
        json!({"source": {"region": SOURCE, "imageId": image}, "destination": {"region": WEST, "kmsKeyId": "alias/ferry-usw2"}}),
        json!({"source": {"region": SOURCE, "snapshotId": snapshot}, "destination": {"region": WEST, "kmsKeyId": "alias/ferry-usw2"}}),
    ];
    let executions = world.sfn.run_all(&requests).await;
    for execution in &executions {
        report("lost answers", execution);
        assert_eq!(
            (execution.status.as_str(), execution.error.as_deref()),
            ("SUCCEEDED", None),
            "{:?}",
            execution.cause
        );
    }
    let injected = world.sfn.router_faults()["injected"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert_eq!(injected, 2 * STEPS.len(), "{}", world.sfn.router_faults());
    let retries = retried_errors(&executions);
    assert_eq!(
        retries,
        BTreeMap::from([("Lambda.ServiceException".to_string(), injected)]),
        "each lost answer was retried once"
    );
    let start_copy_retries: usize = executions.iter().map(|e| e.retries("StartCopy")).sum();
    assert_eq!(
        start_copy_retries, 2,
        "start-copy ran again after its copy was made"
    );

    let per_source = verified_replicas(&world, WEST, &key).await;
    assert_eq!(
        per_source,
        BTreeMap::from([(image.clone(), 2), (snapshot.clone(), 1)]),
        "no second copy"
    );
    assert_eq!(world.seed.owned_images(WEST).await.len(), 1);
    let copy_calls = world.aws.count_calls("CopyImage") + world.aws.count_calls("CopySnapshot");
    assert_eq!(
        copy_calls, 2,
        "the retried start-copy found its copy by lineage tags"
    );
    let succeeded_events = count(&ferry_events(&world), "Replication Succeeded");
    assert_eq!(
        succeeded_events, 2,
        "a retried tag-lineage finds its evidence published and does not publish it again"
    );
    figure(
        "crash safety",
        &format!(
            "every function ran and then lost its answer (Lambda.ServiceException) twice, {injected} lost answers over an AMI and a snapshot replication, start-copy's after its copy was made: the state machine retried all {injected}, both succeeded, 3 replica snapshots for 3 source snapshots, 0 second copies ({copy_calls} copy calls); {succeeded_events} Replication Succeeded events for 2 replications (the retried tag-lineage found its evidence published) [{:.0?}]",
            started.elapsed()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_killed_after_its_copy_call_is_retried_and_copies_once() {
    let world = World::start(
        policy(
            json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}]),
            20,
        ),
        1.0,
    )
    .await;
    let key = world.aliased_key(WEST, "alias/ferry-usw2").await;
    let source_key = world.seed.key(SOURCE).await;
    let snapshot = source_snapshots(&world, &source_key, 1).await.remove(0);
    // The runtime is killed (out of memory, say) after CopySnapshot went through.
    world.sfn.lose_answers("start-copy", "runtimeExit", 1);

    let request = json!({"source": {"region": SOURCE, "snapshotId": snapshot}, "destination": {"region": WEST, "kmsKeyId": "alias/ferry-usw2"}});
    let execution = world.sfn.run(&request).await;
    report("killed runtime", &execution);
    let events = ferry_events(&world);
    eprintln!(
        "killed runtime: Replication Failed events: {}, Succeeded: {}",
        count(&events, "Replication Failed"),
        count(&events, "Replication Succeeded")
    );
    assert_eq!(
        (execution.status.as_str(), execution.error.as_deref()),
        ("SUCCEEDED", None),
        "{:?}",
        execution.cause
    );
    assert_eq!(execution.retries("StartCopy"), 1);
    assert_eq!(
        verified_replicas(&world, WEST, &key).await,
        BTreeMap::from([(snapshot, 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_that_keeps_losing_its_answer_is_reported_as_replication_failed() {
    let world = World::start(
        policy(
            json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}]),
            20,
        ),
        1.0,
    )
    .await;
    world.aliased_key(WEST, "alias/ferry-usw2").await;
    let source_key = world.seed.key(SOURCE).await;
    let snapshot = source_snapshots(&world, &source_key, 1).await.remove(0);
    // One attempt and its 3 retries: every answer is lost.
    world.sfn.lose_answers("start-copy", "serviceException", 4);

    let request = json!({"source": {"region": SOURCE, "snapshotId": snapshot}, "destination": {"region": WEST, "kmsKeyId": "alias/ferry-usw2"}});
    let execution = world.sfn.run(&request).await;
    report("lost answers beyond the retries", &execution);
    assert_eq!(execution.status, "FAILED");
    assert_eq!(execution.retries("StartCopy"), 3);
    let events = ferry_events(&world);
    let failed: Vec<&Value> = events
        .iter()
        .filter(|(kind, _)| kind == "Replication Failed")
        .map(|(_, detail)| detail)
        .collect();
    assert_eq!(failed.len(), 1, "no failure is silent: {events:?}");
    assert_eq!(failed[0]["failure"]["Error"], "Lambda.ServiceException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boot_check_that_crashes_between_launch_and_terminate_leaves_no_instance_running() {
    let world = World::start(
        policy(
            json!([{"region": WEST, "kmsKeyId": "alias/ferry-usw2"}]),
            20,
        ),
        1.0,
    )
    .await;
    world.aliased_key(WEST, "alias/ferry-usw2").await;
    let source_key = world.seed.key(SOURCE).await;
    let image = source_image(&world, &source_key).await;
    let subnet = world.seed.subnet(WEST).await;
    // The launch goes through, then the answer is lost: the first call and its 3 retries.
    world.sfn.lose_answers("boot-check", "serviceException", 4);

    let request = json!({"source": {"region": SOURCE, "imageId": image},
                         "destination": {"region": WEST, "kmsKeyId": "alias/ferry-usw2",
                                         "bootCheck": {"subnetId": subnet, "instanceType": "t3.micro"}}});
    let execution = world.sfn.run(&request).await;
    report("boot check crashed after its launch", &execution);
    assert_eq!(execution.status, "FAILED");
    assert_eq!(execution.retries("BootCheck"), 3);
    assert_eq!(execution.entered("EndBootCheck").len(), 1);
    let instances = world.seed.instances(WEST).await;
    assert_eq!(
        instances.len(),
        1,
        "4 calls with one run's ClientToken launched one instance: {instances:?}"
    );
    assert!(
        instances
            .iter()
            .all(|(_, state)| state == "shutting-down" || state == "terminated"),
        "EndBootCheck terminated it: {instances:?}"
    );
    let failed: Vec<(String, Value)> = ferry_events(&world)
        .into_iter()
        .filter(|(kind, _)| kind == "Replication Failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1["failure"]["Error"], "Lambda.ServiceException");
    assert_eq!(
        failed[0].1["bootCheckEnded"]["terminated"][0]["instanceId"],
        instances[0].0.as_str()
    );
    figure(
        "boot check crash",
        "the boot-check Lambda launched its instance and lost its answer 4 times (Lambda.ServiceException): 1 instance launched (one ClientToken per execution), EndBootCheck terminated it, 0 running, 1 Replication Failed event naming it",
    );
}

// --- Least privilege ------------------------------------------------------------------------------

/// Per principal (function binary, or the state machine), the actions infra/template.yaml allows
/// it: `direct` ones it calls itself, `onBehalf` ones AWS calls for it (tests/infra/cfn_template.py).
fn template_permissions() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let root = ferry_tests::local_aws::repo_root();
    let output = std::process::Command::new(ferry_tests::local_aws::venv().join("bin/python"))
        .arg(root.join("tests/infra/cfn_template.py"))
        .arg("permissions")
        .output()
        .expect("tests/infra/cfn_template.py runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("permissions JSON")
}

/// The IAM action that authorizes an API call, where their names differ (S3's ListObjectsV2 is
/// authorized by s3:ListBucket).
fn iam_action(service: &str, action: &str) -> String {
    match (service, action) {
        ("s3", "ListObjectsV2") => "s3:ListBucket".into(),
        _ => format!("{service}:{action}"),
    }
}

/// Every call each function and the state machine made, as IAM actions (`ec2:CopyImage`), by caller.
fn actions_by_caller(world: &World) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_caller: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for call in world.aws.calls() {
        let (caller, service, action) = (
            call["accessKeyId"].as_str(),
            call["service"].as_str(),
            call["action"].as_str(),
        );
        if let (Some(caller), Some(service), Some(action)) = (caller, service, action) {
            by_caller
                .entry(caller.to_string())
                .or_default()
                .insert(iam_action(service, action));
        }
    }
    by_caller
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_each_function_makes_is_allowed_by_its_own_policy_and_every_permission_it_is_granted_is_used(
) {
    let started = Instant::now();
    let destinations = json!([
        {"region": WEST, "kmsKeyId": "alias/ferry-usw2", "fsr": {"availabilityZones": ["us-west-2a"], "disableAfterHours": 24},
         "launchTemplates": [{"name": "web", "setDefault": true}], "ssmParameter": "/golden/web/ami",
         "retention": {"keep": 1, "groupBy": "app", "graceDays": 0}},
        {"region": SYDNEY, "kmsKeyId": "alias/ferry-apse2"},
    ]);
    let world = World::start(policy(destinations, 20), 1.0).await;
    world.seed.launch_template(WEST, "web").await;
    world.aliased_key(WEST, "alias/ferry-usw2").await;
    world.aliased_key(SYDNEY, "alias/ferry-apse2").await;
    let source_key = world.seed.key(SOURCE).await;
    let image = source_image(&world, &source_key).await;
    let snapshot = source_snapshots(&world, &source_key, 1).await.remove(0);
    // Every path that needs a permission: an AMI and a snapshot copied, verified, tagged, FSR
    // enabled then disabled; the AMI's replica wired (a launch-template version made default,
    // the SSM parameter); one copy AWS fails (removed, its key described, failure published).
    world.aws.configure(json!({"failNextCopies": {"count": 1, "code": "Server.InternalError", "message": "simulated EBS failure", "region": SYDNEY}}));
    let image_run = world.sfn.run(&ami_available(&image)).await;
    report("least privilege, AMI", &image_run);
    assert_eq!(
        (image_run.status.as_str(), image_run.error.as_deref()),
        ("FAILED", Some("CopyFailed")),
        "{:?}",
        image_run.cause
    );
    // A console request of its own, FSR due 3.6 s after it is requested.
    let snapshot_run = world
        .sfn
        .run(&json!({"source": {"region": SOURCE, "snapshotId": snapshot},
                     "destination": {"region": WEST, "kmsKeyId": "alias/ferry-usw2"},
                     "options": {"fsr": {"availabilityZones": ["us-west-2a"], "disableAfterHours": 0.001}}}))
        .await;
    report("least privilege, snapshot", &snapshot_run);
    assert_eq!(
        (snapshot_run.status.as_str(), snapshot_run.error.as_deref()),
        ("SUCCEEDED", None),
        "{:?}",
        snapshot_run.cause
    );
    // A newer AMI of the same family to us-west-2, boot-checked and wired in place of the
    // first: the scheduled step's retention then retires the first one.
    let subnet = world.seed.subnet(WEST).await;
    let root = world.seed.snapshot(SOURCE, Some(&source_key), 8).await;
    let newer = world
        .seed
        .image(SOURCE, "web-golden-2", &[("/dev/xvda", &root)])
        .await;
    let boot_run = world
        .sfn
        .run(&json!({"source": {"region": SOURCE, "imageId": newer},
                     "destination": {"region": WEST, "kmsKeyId": "alias/ferry-usw2",
                                     "launchTemplates": [{"name": "web", "setDefault": true}], "ssmParameter": "/golden/web/ami",
                                     "bootCheck": {"subnetId": subnet, "instanceType": "t3.micro"},
                                     "retention": {"keep": 1, "groupBy": "app", "graceDays": 0}}}))
        .await;
    report("least privilege, boot check", &boot_run);
    assert_eq!(
        (boot_run.status.as_str(), boot_run.error.as_deref()),
        ("SUCCEEDED", None),
        "{:?}",
        boot_run.cause
    );
    // FSR is due 3.6 s after it was requested: the next sweep's scheduled step disables it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sweep_run = world.sfn.run(&sweep()).await;
    report("least privilege, sweep disabling due FSR", &sweep_run);
    assert!(
        sweep_run.output["fsrDisabled"]["snapshots"].as_u64() >= Some(1),
        "{}",
        sweep_run.output
    );
    // The first AMI's replica, no longer used, is due; its FSR (not due for 24 h) is disabled
    // first, and the next sweep retires it.
    let awaiting = &sweep_run.output["retired"]["regions"][0];
    assert_eq!(
        (
            awaiting["deprecated"].as_array().map(Vec::len),
            awaiting["awaitingFsrDisable"].as_array().map(Vec::len)
        ),
        (Some(1), Some(1)),
        "{}",
        sweep_run.output
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let retire_run = world.sfn.run(&sweep()).await;
    report("least privilege, sweep retiring a replica", &retire_run);
    assert_eq!(
        retire_run.output["retired"]["regions"][0]["retired"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{}",
        retire_run.output
    );

    let allowed = template_permissions();
    let mut used = actions_by_caller(&world);
    used.remove(ferry_tests::local_aws::TEST_ACCESS_KEY_ID); // the test's own seeding
    let callers: BTreeSet<&String> = used.keys().collect();
    assert!(
        callers.iter().all(|caller| allowed.contains_key(*caller)),
        "a caller without a policy in the template: {callers:?}"
    );
    let mut granted = 0;
    for (principal, permissions) in &allowed {
        let calls = used.get(principal).cloned().unwrap_or_default();
        let direct = &permissions["direct"];
        let not_allowed: Vec<&String> = calls.difference(direct).collect();
        assert!(not_allowed.is_empty(), "{principal} calls {not_allowed:?}, which its policy does not allow (an action AWS calls on its behalf is never called directly)");
        if principal != ferry_tests::state_machine::STATE_MACHINE_ACCESS_KEY {
            let unused: Vec<&String> = direct.difference(&calls).collect();
            assert!(unused.is_empty(), "{principal} is granted {unused:?} but never calls it: an unneeded permission, or a path no test covers");
            granted += direct.len();
        }
    }
    assert!(
        used[ferry_tests::state_machine::STATE_MACHINE_ACCESS_KEY].contains("events:PutEvents"),
        "the failure path publishes"
    );
    figure(
        "least privilege",
        &format!(
            "{} functions made {} distinct (function, action) calls over 5 runs (AMI and snapshot, the AMI wired, a newer AMI wired and boot-checked, FSR enabled then disabled and the older replica retired by two scheduled sweeps, one copy failed and removed): every one allowed by the function's own policy, all {granted} directly granted permissions used, 0 actions AWS calls on a function's behalf called by it [{:.0?}]",
            allowed.len() - 1,
            used.iter().filter(|(caller, _)| caller.as_str() != ferry_tests::state_machine::STATE_MACHINE_ACCESS_KEY).map(|(_, calls)| calls.len()).sum::<usize>(),
            started.elapsed()
        ),
    );
}
