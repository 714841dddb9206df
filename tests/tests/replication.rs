//! The five handlers, in order, against the local AWS through the real SDK clients.

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use ferry_core::{Config, FerryError};
use ferry_tests::seed::tag_value;
use ferry_tests::world::HandlerWorld as World;
use ferry_tests::{poll_until_settled, run_step, Step};
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

async fn world() -> World {
    World::start(600.0, Config::default()).await
}

/// An AMI in the source Region with a root and a data snapshot, each under its own key.
async fn two_key_image(world: &World) -> (String, Vec<String>) {
    let (root_key, data_key) = (world.seed.key(SOURCE).await, world.seed.key(SOURCE).await);
    let (image, snapshots) = world.seed.golden_image(SOURCE, &root_key, &data_key).await;
    (image, snapshots.to_vec())
}

fn image_request(image: &str, key: &str) -> Value {
    json!({"source": {"region": SOURCE, "imageId": image}, "destination": {"region": DESTINATION, "kmsKeyId": key}})
}

fn snapshot_request(snapshot: &str, key: &str) -> Value {
    json!({"source": {"region": SOURCE, "snapshotId": snapshot}, "destination": {"region": DESTINATION, "kmsKeyId": key}})
}

async fn replicate(world: &World, request: Value) -> Result<Value, FerryError> {
    ferry_tests::replicate_in_process(&world.aws, &world.deps, &request).await
}

fn destination_snapshot_ids(document: &Value) -> Vec<String> {
    document["evidence"]["verification"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshotId"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts, straight from EC2, that every snapshot is encrypted under exactly `key_arn`.
async fn assert_encrypted_under(world: &World, snapshot_ids: &[String], key_arn: &str) {
    let snapshots = world
        .seed
        .describe_snapshots(DESTINATION, snapshot_ids)
        .await;
    assert_eq!(snapshots.len(), snapshot_ids.len());
    for snapshot in snapshots {
        assert_eq!(snapshot.encrypted(), Some(true), "{snapshot:?}");
        assert_eq!(snapshot.kms_key_id(), Some(key_arn), "{snapshot:?}");
    }
}

fn copies_started(world: &World) -> usize {
    world.aws.count_calls("CopyImage") + world.aws.count_calls("CopySnapshot")
}

#[tokio::test]
async fn an_ami_with_two_differently_keyed_snapshots_is_replicated_under_an_alias_verified_tagged_and_fast_restored(
) {
    let world = world().await;
    let (image, source_snapshots) = two_key_image(&world).await;
    let key = world.seed.key(DESTINATION).await;
    world
        .seed
        .alias(DESTINATION, "alias/prod-ebs-usw2", &key)
        .await;
    let mut request = image_request(&image, "alias/prod-ebs-usw2");
    request["options"] = json!({"batch": "dr-nightly", "copySourceTags": true, "fsr": {"availabilityZones": ["us-west-2a", "us-west-2b"]}});

    let started = run_step(Step::StartCopy, &world.deps, &request)
        .await
        .unwrap();
    assert_eq!(started["copy"]["status"], "pending");
    assert_eq!(started["key"]["arn"], key.arn.as_str());
    let (copied, checks) = poll_until_settled(&world.aws, &world.deps, started)
        .await
        .unwrap();
    assert!(
        checks > 1,
        "the copy was pending for a while ({checks} checks)"
    );
    let verified = run_step(Step::VerifyEncryption, &world.deps, &copied)
        .await
        .unwrap();
    let tagged = run_step(Step::TagLineage, &world.deps, &verified)
        .await
        .unwrap();
    let done = run_step(Step::EnableFsr, &world.deps, &tagged)
        .await
        .unwrap();

    let replica_snapshots = destination_snapshot_ids(&done);
    assert_eq!(replica_snapshots.len(), 2);
    assert_encrypted_under(&world, &replica_snapshots, &key.arn).await;
    let source_keys: Vec<&str> = done["sourceSnapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kmsKeyArn"].as_str().unwrap())
        .collect();
    assert_ne!(
        source_keys[0], source_keys[1],
        "the source snapshots were under different keys"
    );

    let replica = world
        .seed
        .describe_image(DESTINATION, done["copy"]["destinationId"].as_str().unwrap())
        .await;
    assert_eq!(
        tag_value(replica.tags(), "ferry:source-id").as_deref(),
        Some(image.as_str())
    );
    assert_eq!(
        tag_value(replica.tags(), "ferry:source-region").as_deref(),
        Some(SOURCE)
    );
    assert_eq!(
        tag_value(replica.tags(), "ferry:key-arn").as_deref(),
        Some(key.arn.as_str())
    );
    assert_eq!(
        tag_value(replica.tags(), "ferry:key-alias").as_deref(),
        Some("alias/prod-ebs-usw2")
    );
    assert_eq!(
        tag_value(replica.tags(), "ferry:batch").as_deref(),
        Some("dr-nightly")
    );
    assert!(tag_value(replica.tags(), "ferry:verified-at").is_some());
    assert_eq!(
        tag_value(replica.tags(), "app").as_deref(),
        Some("web"),
        "copySourceTags keeps the source's tags"
    );
    for snapshot in world
        .seed
        .describe_snapshots(DESTINATION, &replica_snapshots)
        .await
    {
        let source = tag_value(snapshot.tags(), "ferry:source-snapshot-id")
            .expect("each snapshot names its source");
        assert!(source_snapshots.contains(&source));
        assert_eq!(
            tag_value(snapshot.tags(), "ferry:replication-id"),
            done["replicationId"].as_str().map(str::to_string)
        );
    }

    let events = world.aws.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0]["source"].as_str(),
            events[0]["detailType"].as_str()
        ),
        (Some("ferry"), Some("Replication Succeeded"))
    );
    let detail: Value = serde_json::from_str(events[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        detail["evidence"]["verification"]["keyArn"],
        key.arn.as_str()
    );

    assert_eq!(done["evidence"]["fsr"]["outcome"], "requested");
    assert_eq!(
        done["evidence"]["fsr"]["states"].as_array().unwrap().len(),
        4,
        "2 snapshots × 2 zones"
    );
    world.aws.advance(3600.0);
    let states = world
        .seed
        .ec2(DESTINATION)
        .describe_fast_snapshot_restores()
        .send()
        .await
        .unwrap();
    assert!(
        states
            .fast_snapshot_restores()
            .iter()
            .all(|s| s.state().map(|s| s.as_str()) == Some("enabled")),
        "{states:?}"
    );

    let source = world.seed.describe_image(SOURCE, &image).await;
    assert!(
        source
            .tags()
            .iter()
            .all(|t| !t.key().unwrap_or_default().starts_with("ferry:")),
        "the source is never modified"
    );
}

#[tokio::test]
async fn a_snapshot_is_replicated_and_verified_under_the_destination_key() {
    let world = world().await;
    let source_key = world.seed.key(SOURCE).await;
    let snapshot = world.seed.snapshot(SOURCE, Some(&source_key), 50).await;
    let key = world.seed.key(DESTINATION).await;
    world
        .seed
        .alias(DESTINATION, "alias/snapshots-dr", &key)
        .await;
    let done = replicate(&world, snapshot_request(&snapshot, "alias/snapshots-dr"))
        .await
        .unwrap();
    let copy = done["copy"]["destinationId"].as_str().unwrap().to_string();
    assert!(copy.starts_with("snap-"));
    assert_encrypted_under(&world, std::slice::from_ref(&copy), &key.arn).await;
    assert_eq!(
        done["sourceSnapshots"][0]["kmsKeyArn"],
        source_key.arn.as_str(),
        "the evidence records the source key"
    );
    assert_eq!(
        done["evidence"]["verification"]["snapshots"][0]["sourceKmsKeyArn"],
        source_key.arn.as_str()
    );
    let tagged = world.seed.describe_snapshots(DESTINATION, &[copy]).await;
    assert_eq!(
        tag_value(tagged[0].tags(), "ferry:source-snapshot-id").as_deref(),
        Some(snapshot.as_str())
    );
    assert_eq!(done["evidence"]["fsr"]["outcome"], "notRequested");
}

#[tokio::test]
async fn a_multi_region_replica_key_serves_as_the_destination_key() {
    let world = world().await;
    let (image, _) = two_key_image(&world).await;
    let replica_key = world.seed.multi_region_replica(SOURCE, DESTINATION).await;
    assert!(replica_key.id.starts_with("mrk-"));
    let done = replicate(&world, image_request(&image, &replica_key.id))
        .await
        .unwrap();
    assert_eq!(done["key"]["multiRegion"], true);
    assert_eq!(done["key"]["arn"], replica_key.arn.as_str());
    assert!(replica_key.arn.contains(DESTINATION));
    assert_encrypted_under(&world, &destination_snapshot_ids(&done), &replica_key.arn).await;
}

#[tokio::test]
async fn a_time_based_copy_asks_aws_for_its_completion_duration() {
    let world = world().await;
    let (image, _) = two_key_image(&world).await;
    let key = world.seed.key(DESTINATION).await;
    let mut request = image_request(&image, &key.arn);
    request["options"] = json!({"completionDurationMinutes": 30});
    let done = replicate(&world, request).await.unwrap();
    for snapshot in world
        .seed
        .describe_snapshots(DESTINATION, &destination_snapshot_ids(&done))
        .await
    {
        assert_eq!(
            snapshot.transfer_type().map(|t| t.as_str()),
            Some("time-based")
        );
        assert_eq!(snapshot.completion_duration_minutes(), Some(30));
    }
}

#[tokio::test]
async fn bad_destination_keys_get_their_named_error_and_nothing_is_copied() {
    let world = world().await;
    let (image, _) = two_key_image(&world).await;
    let elsewhere = world.seed.key("eu-west-1").await;
    let disabled = world.seed.key(DESTINATION).await;
    world.seed.disable_key(DESTINATION, &disabled).await;
    let doomed = world.seed.key(DESTINATION).await;
    world.seed.schedule_deletion(DESTINATION, &doomed).await;
    let asymmetric = world
        .seed
        .key_with(
            DESTINATION,
            KeySpec::Rsa2048,
            KeyUsageType::EncryptDecrypt,
            false,
        )
        .await;
    let hmac = world
        .seed
        .key_with(
            DESTINATION,
            KeySpec::Hmac256,
            KeyUsageType::GenerateVerifyMac,
            false,
        )
        .await;
    let cases = [
        (elsewhere.arn.clone(), "KeyNotInDestinationRegion"),
        (elsewhere.id.clone(), "KeyNotFound"),
        ("alias/does-not-exist".to_string(), "KeyNotFound"),
        (disabled.arn.clone(), "KeyNotEnabled"),
        (doomed.id.clone(), "KeyNotEnabled"),
        (asymmetric.id.clone(), "KeyNotSymmetric"),
        (hmac.id.clone(), "KeyNotSymmetric"),
    ];
    for (key, expected) in cases {
        let error = run_step(Step::StartCopy, &world.deps, &image_request(&image, &key))
            .await
            .unwrap_err();
        assert_eq!(error.name(), expected, "{key}: {error}");
    }
    assert_eq!(copies_started(&world), 0);
    assert!(world.seed.owned_images(DESTINATION).await.is_empty());
}

#[tokio::test]
async fn bad_sources_and_zones_are_refused_before_any_copy() {
    let world = world().await;
    let (image, snapshots) = two_key_image(&world).await;
    let key = world.seed.key(DESTINATION).await;
    let missing = run_step(
        Step::StartCopy,
        &world.deps,
        &image_request("ami-0123456789abcdef0", &key.id),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.name(), "SourceNotFound");
    let missing = run_step(
        Step::StartCopy,
        &world.deps,
        &snapshot_request("snap-0123456789abcdef0", &key.id),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.name(), "SourceNotFound");
    let mut bad_zone = image_request(&image, &key.id);
    bad_zone["options"] = json!({"fsr": {"availabilityZones": ["us-west-2z"]}});
    let error = run_step(Step::StartCopy, &world.deps, &bad_zone)
        .await
        .unwrap_err();
    assert_eq!(error.name(), "InvalidRequest");
    assert!(error.to_string().contains("us-west-2z"), "{error}");
    let swapped = run_step(
        Step::StartCopy,
        &world.deps,
        &image_request(&snapshots[0], &key.id),
    )
    .await
    .unwrap_err();
    assert_eq!(swapped.name(), "InvalidRequest");
    assert_eq!(copies_started(&world), 0);
}

#[tokio::test]
async fn a_key_disabled_right_after_the_copy_starts_fails_the_copy_with_aws_message_and_nothing_succeeds(
) {
    let world = world().await;
    let (image, _) = two_key_image(&world).await;
    let key = world.seed.key(DESTINATION).await;
    let started = run_step(
        Step::StartCopy,
        &world.deps,
        &image_request(&image, &key.arn),
    )
    .await
    .unwrap();
    world.seed.disable_key(DESTINATION, &key).await;
    let (settled, _) = poll_until_settled(&world.aws, &world.deps, started)
        .await
        .unwrap();
    assert_eq!(settled["copy"]["status"], "failed", "{settled}");
    let failure = settled["copy"]["failure"].as_str().unwrap();
    assert!(
        failure.contains("not accessible"),
        "AWS's own message is carried: {failure}"
    );
    let error = run_step(Step::VerifyEncryption, &world.deps, &settled)
        .await
        .unwrap_err();
    assert!(
        ["ReplicaIncomplete", "KeyNotEnabled"].contains(&error.name()),
        "{error}"
    );
    assert!(run_step(Step::TagLineage, &world.deps, &settled)
        .await
        .is_err());
    assert!(world.aws.events().is_empty(), "nothing reports success");
}

#[tokio::test]
async fn the_same_request_twice_makes_one_copy() {
    let world = world().await;
    let (image, snapshots) = two_key_image(&world).await;
    let key = world.seed.key(DESTINATION).await;
    world.seed.alias(DESTINATION, "alias/dr", &key).await;
    let first = run_step(
        Step::StartCopy,
        &world.deps,
        &image_request(&image, "alias/dr"),
    )
    .await
    .unwrap();
    let again = run_step(
        Step::StartCopy,
        &world.deps,
        &image_request(&image, &key.arn),
    )
    .await
    .unwrap();
    assert_eq!(
        first["copy"]["destinationId"],
        again["copy"]["destinationId"]
    );
    assert_eq!(world.seed.owned_images(DESTINATION).await.len(), 1);

    let first = run_step(
        Step::StartCopy,
        &world.deps,
        &snapshot_request(&snapshots[1], &key.id),
    )
    .await
    .unwrap();
    let again = run_step(
        Step::StartCopy,
        &world.deps,
        &snapshot_request(&snapshots[1], "alias/dr"),
    )
    .await
    .unwrap();
    assert_eq!(
        first["copy"]["destinationId"],
        again["copy"]["destinationId"]
    );
    assert_eq!(
        world
            .seed
            .snapshots_tagged(DESTINATION, "ferry:source-id", &snapshots[1])
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn verification_names_the_replica_snapshot_under_another_key() {
    let world = world().await;
    let (image, _) = two_key_image(&world).await;
    let key = world.seed.key(DESTINATION).await;
    let started = run_step(
        Step::StartCopy,
        &world.deps,
        &image_request(&image, &key.id),
    )
    .await
    .unwrap();
    let (mut copied, _) = poll_until_settled(&world.aws, &world.deps, started)
        .await
        .unwrap();
    // A look-alike replica in the destination: the root under the right key, the data volume under another.
    let other = world.seed.key(DESTINATION).await;
    let root = world.seed.snapshot(DESTINATION, Some(&key), 8).await;
    let stray = world.seed.snapshot(DESTINATION, Some(&other), 20).await;
    let look_alike = world
        .seed
        .image(
            DESTINATION,
            "look-alike",
            &[("/dev/xvda", &root), ("/dev/xvdb", &stray)],
        )
        .await;
    copied["copy"]["destinationId"] = json!(look_alike);
    match run_step(Step::VerifyEncryption, &world.deps, &copied)
        .await
        .unwrap_err()
    {
        FerryError::ReplicaWrongKey {
            findings,
            expected_key_arn,
            ..
        } => {
            assert_eq!(expected_key_arn, key.arn);
            assert_eq!(findings.len(), 1);
            assert_eq!(findings[0].snapshot_id, stray);
            assert!(findings[0].problem.contains(&other.arn));
        }
        other => panic!("expected ReplicaWrongKey, got {other:?}"),
    }
}

#[tokio::test]
async fn a_full_fsr_quota_is_recorded_as_skipped_or_fails_when_asked() {
    let world = world().await;
    world.aws.configure(json!({"fsrQuotaPerRegion": 1}));
    let deps = world
        .aws
        .deps(Config {
            fsr_quota_per_region: 1,
            ..Config::default()
        })
        .await;
    let (image, _) = two_key_image(&world).await;
    let key = world.seed.key(DESTINATION).await;
    let mut request = image_request(&image, &key.id);
    request["options"] = json!({"fsr": {"availabilityZones": ["us-west-2a"]}});
    let world = World { deps, ..world };
    let done = replicate(&world, request.clone()).await.unwrap();
    assert_eq!(done["evidence"]["fsr"]["outcome"], "skipped");
    assert!(done["evidence"]["fsr"]["reason"]
        .as_str()
        .unwrap()
        .contains("quota"));
    let mut strict = done.clone();
    strict["options"]["fsr"]["failWhenQuotaFull"] = json!(true);
    let error = run_step(Step::EnableFsr, &world.deps, &strict)
        .await
        .unwrap_err();
    assert_eq!(error.name(), "FsrQuotaExceeded");
}

#[tokio::test]
async fn fsr_can_be_disabled_again() {
    let world = world().await;
    let source_key = world.seed.key(SOURCE).await;
    let snapshot = world.seed.snapshot(SOURCE, Some(&source_key), 8).await;
    let key = world.seed.key(DESTINATION).await;
    let mut request = snapshot_request(&snapshot, &key.id);
    request["options"] =
        json!({"fsr": {"availabilityZones": ["us-west-2a"], "disableAfterHours": 1}});
    let enabled = replicate(&world, request).await.unwrap();
    assert_eq!(enabled["evidence"]["fsr"]["outcome"], "requested");
    let disabled = run_step(
        Step::EnableFsr,
        &world.deps,
        &json!({"operation": "disable", "replication": enabled}),
    )
    .await
    .unwrap();
    assert_eq!(disabled["evidence"]["fsr"]["outcome"], "disabled");
    assert_eq!(
        disabled["evidence"]["fsr"]["states"][0]["state"],
        "disabling"
    );
}

#[tokio::test]
async fn a_rerun_with_another_batch_reuses_the_copy_in_flight_and_one_with_other_copy_options_is_refused(
) {
    let world = world().await;
    let (image, _) = two_key_image(&world).await;
    let key = world.seed.key(DESTINATION).await;
    let first = run_step(
        Step::StartCopy,
        &world.deps,
        &image_request(&image, &key.id),
    )
    .await
    .unwrap();
    let mut other_batch = image_request(&image, &key.id);
    other_batch["options"] = json!({"batch": "another-label"});
    let again = run_step(Step::StartCopy, &world.deps, &other_batch)
        .await
        .unwrap();
    assert_eq!(
        again["copy"]["destinationId"],
        first["copy"]["destinationId"]
    );
    assert_eq!(again["copy"]["reused"], true);

    let mut timed = image_request(&image, &key.id);
    timed["options"] = json!({"completionDurationMinutes": 15});
    let refused = run_step(Step::StartCopy, &world.deps, &timed)
        .await
        .unwrap_err();
    assert_eq!(refused.name(), "InvalidRequest");
    assert!(
        refused
            .to_string()
            .contains("completionDurationMinutes=standard"),
        "{refused}"
    );
    assert_eq!(world.seed.owned_images(DESTINATION).await.len(), 1);
    assert_eq!(world.aws.count_calls("CopyImage"), 1);
}

#[tokio::test]
async fn tagging_lineage_again_changes_nothing_and_publishes_the_same_evidence_once() {
    let world = world().await;
    let (image, _) = two_key_image(&world).await;
    let key = world.seed.key(DESTINATION).await;
    let started = run_step(
        Step::StartCopy,
        &world.deps,
        &image_request(&image, &key.id),
    )
    .await
    .unwrap();
    let (copied, _) = poll_until_settled(&world.aws, &world.deps, started)
        .await
        .unwrap();
    let verified = run_step(Step::VerifyEncryption, &world.deps, &copied)
        .await
        .unwrap();
    let first = run_step(Step::TagLineage, &world.deps, &verified)
        .await
        .unwrap();
    let replica = first["copy"]["destinationId"].as_str().unwrap().to_string();
    let tags_once = world
        .seed
        .describe_image(DESTINATION, &replica)
        .await
        .tags()
        .to_vec();
    let again = run_step(Step::TagLineage, &world.deps, &verified)
        .await
        .unwrap();
    assert_eq!(first["evidence"]["lineage"], again["evidence"]["lineage"]);
    let mut tags_twice = world
        .seed
        .describe_image(DESTINATION, &replica)
        .await
        .tags()
        .to_vec();
    let mut tags_once = tags_once;
    tags_once.sort_by_key(|t| t.key().map(str::to_string));
    tags_twice.sort_by_key(|t| t.key().map(str::to_string));
    assert_eq!(tags_once, tags_twice);
    assert_eq!(
        world.aws.events().len(),
        1,
        "the evidence of one verification is published once"
    );
    let published = tag_value(&tags_twice, "ferry:evidence-published");
    assert_eq!(
        published.as_deref(),
        tag_value(&tags_twice, "ferry:verified-at").as_deref(),
        "the replica records what was published"
    );

    // A later re-verification is new evidence, published again.
    world.aws.advance(60.0);
    let reverified = run_step(Step::VerifyEncryption, &world.deps, &first)
        .await
        .unwrap();
    run_step(Step::TagLineage, &world.deps, &reverified)
        .await
        .unwrap();
    assert_eq!(world.aws.events().len(), 2);
}
