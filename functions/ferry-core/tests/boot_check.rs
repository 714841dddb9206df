//! boot-check on the port fakes: the instance launched from the verified replica is looked at
//! once per call (booting is a returned status), passes only when running with both status
//! checks ok and every volume under the destination key, and is terminated on every verdict; a
//! retried launch gets its own instance back; `end` and `sweep` terminate only ferry's own.

use ferry_core::document::{BootStatus, Replication};
use ferry_core::fakes::{fixture, FakeWorld};
use ferry_core::handlers::boot_check::{handle, BootCheckOutput};
use ferry_core::ports::{AwsError, DeviceSnapshot, ImageInfo, InstanceInfo, SnapshotInfo, Tag};
use ferry_core::rules::boot_check::{BOOT_CHECK_FOR, EXPIRES_AT};
use ferry_core::rules::lineage::{rfc3339, MANAGED_BY};
use ferry_core::{Config, FerryError};
use serde_json::{json, Value};

const REGION: &str = "us-west-2";
const REPLICA: &str = "ami-0fedcba9876543210";
const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const OTHER_KEY: &str =
    "arn:aws:kms:us-west-2:111122223333:key/99999999-12ab-34cd-56ef-1234567890ab";
const RUN: &str = "arn:aws:states:us-east-1:111122223333:execution:ferry-replication:run-1";

/// A verified AMI replica whose destination asks for a boot check in a subnet, 10 minutes.
fn verified() -> Value {
    fixture("boot-check/verified-ami.json")
}

/// The replica in the destination Region: two devices, each snapshot under the destination key.
fn world() -> FakeWorld {
    let world = FakeWorld::new(Config::default());
    let snapshots = [
        ("/dev/xvda", "snap-0ccccccccccccccc1"),
        ("/dev/xvdb", "snap-0ccccccccccccccc2"),
    ];
    world.ec2.add_image(
        REGION,
        ImageInfo {
            image_id: REPLICA.into(),
            state: "available".into(),
            root_device_type: "ebs".into(),
            snapshots: snapshots
                .iter()
                .map(|(device, snapshot)| DeviceSnapshot {
                    device_name: (*device).into(),
                    snapshot_id: (*snapshot).into(),
                    encrypted: true,
                })
                .collect(),
            ..Default::default()
        },
    );
    for (_, snapshot) in snapshots {
        world.ec2.add_snapshot(
            REGION,
            SnapshotInfo {
                snapshot_id: snapshot.into(),
                state: "completed".into(),
                encrypted: true,
                kms_key_id: Some(KEY.into()),
                ..Default::default()
            },
        );
    }
    world
}

async fn call(world: &FakeWorld, document: &Value) -> Result<Replication, FerryError> {
    match handle(&world.deps, json!({"replication": document, "run": RUN})).await? {
        BootCheckOutput::Document(document) => Ok(*document),
        other => panic!("{other:?}"),
    }
}

fn as_json(document: &Replication) -> Value {
    serde_json::to_value(document).unwrap()
}

fn advance(world: &FakeWorld, seconds: u64) {
    let clock = world.deps.clock.now();
    world.set_clock(clock + seconds);
}

/// Launches, then makes the instance run with both checks ok; returns the booting document.
async fn launched(world: &FakeWorld) -> (Value, String) {
    let booting = call(world, &verified()).await.unwrap();
    let check = booting.evidence.boot_check.clone().unwrap();
    assert_eq!(check.status, BootStatus::Booting);
    (as_json(&booting), check.instance_id)
}

#[tokio::test]
async fn a_good_replica_boots_with_every_volume_under_the_destination_key_and_its_instance_is_terminated(
) {
    let world = world();
    let (booting, instance) = launched(&world).await;
    let request = world
        .instances
        .instance(&instance)
        .unwrap()
        .request
        .unwrap();
    assert_eq!(request.image_id, REPLICA);
    assert_eq!(request.subnet_id, "subnet-0123456789abcdef0");
    assert_eq!(request.delete_on_termination, ["/dev/xvda", "/dev/xvdb"]);
    assert!(request.tags.contains(&Tag::new(MANAGED_BY, "ferry")));
    assert!(request.tags.contains(&Tag::new(BOOT_CHECK_FOR, REPLICA)));

    // Still pending: a status, not a wait.
    advance(&world, 20);
    let still = call(&world, &booting).await.unwrap();
    let check = still.evidence.boot_check.clone().unwrap();
    assert_eq!((check.status, check.checks), (BootStatus::Booting, 1));
    assert!(check.next_check_seconds >= 1);

    world.instances.set_state(&instance, "running", None);
    world.instances.set_checks(&instance, "ok", "initializing");
    advance(&world, 30);
    let running = call(&world, &as_json(&still)).await.unwrap();
    assert_eq!(
        running.evidence.boot_check.as_ref().unwrap().status,
        BootStatus::Booting
    );

    world.instances.set_checks(&instance, "ok", "ok");
    advance(&world, 60);
    let passed = call(&world, &as_json(&running)).await.unwrap();
    let check = passed.evidence.boot_check.clone().unwrap();
    assert_eq!(check.status, BootStatus::Passed);
    assert_eq!(
        (check.seconds_to_running, check.seconds_to_status_ok),
        (Some(50), Some(110))
    );
    assert_eq!(check.volumes.len(), 2);
    assert!(check
        .volumes
        .iter()
        .all(|v| v.kms_key_id.as_deref() == Some(KEY)));
    assert!(check.terminated_at.is_some());
    assert!(
        world.instances.live().is_empty(),
        "0 instances left running"
    );

    // A rerun of the passed document launches nothing.
    let again = call(&world, &as_json(&passed)).await.unwrap();
    assert_eq!(again.evidence.boot_check, passed.evidence.boot_check);
    assert_eq!(world.instances.calls_of("RunInstances"), 1);
}

#[tokio::test]
async fn a_volume_under_another_key_fails_by_name_and_the_instance_is_terminated() {
    let world = world();
    let (booting, instance) = launched(&world).await;
    world.instances.set_state(&instance, "running", None);
    world.instances.rekey_volumes(&instance, OTHER_KEY);
    let error = call(&world, &booting).await.unwrap_err();
    match &error {
        FerryError::BootCheckWrongKey {
            findings,
            expected_key_arn,
            ..
        } => {
            assert_eq!(expected_key_arn, KEY);
            assert_eq!(findings.len(), 2);
            assert!(findings[0].problem.contains(OTHER_KEY));
        }
        other => panic!("{other:?}"),
    }
    assert!(world.instances.live().is_empty());
}

#[tokio::test]
async fn failed_status_checks_fail_by_name_and_the_instance_is_terminated() {
    let world = world();
    let (booting, instance) = launched(&world).await;
    world.instances.set_state(&instance, "running", None);
    world.instances.set_checks(&instance, "ok", "impaired");
    let error = call(&world, &booting).await.unwrap_err();
    assert!(
        matches!(&error, FerryError::BootCheckStatusFailed { check, .. } if check == "instance"),
        "{error:?}"
    );
    assert!(world.instances.live().is_empty());
}

#[tokio::test]
async fn an_instance_ec2_ends_at_boot_is_a_refused_launch_with_ec2s_reason() {
    let world = world();
    let (booting, instance) = launched(&world).await;
    let reason = "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state";
    world
        .instances
        .set_state(&instance, "terminated", Some(reason));
    let error = call(&world, &booting).await.unwrap_err();
    assert_eq!(error.name(), "BootCheckLaunchRefused");
    assert!(error.to_string().contains("InvalidKMSKey"), "{error}");
}

#[tokio::test]
async fn a_launch_ec2_refuses_is_named_with_ec2s_code_and_nothing_runs() {
    let world = world();
    *world.instances.refuse_next.lock().unwrap() = Some(AwsError::Service {
        code: "InvalidSubnetID.NotFound".into(),
        message: "The subnet ID 'subnet-0123456789abcdef0' does not exist".into(),
    });
    let error = call(&world, &verified()).await.unwrap_err();
    assert_eq!(error.name(), "BootCheckLaunchRefused");
    assert!(error.to_string().contains("InvalidSubnetID.NotFound"));
    assert!(world.instances.live().is_empty());
}

#[tokio::test]
async fn an_instance_that_never_passes_times_out_by_name_and_is_terminated() {
    let world = world();
    let (booting, instance) = launched(&world).await;
    world.instances.set_state(&instance, "running", None);
    world.instances.set_checks(&instance, "ok", "initializing");
    advance(&world, 10 * 60);
    let error = call(&world, &booting).await.unwrap_err();
    assert!(
        matches!(&error, FerryError::BootCheckTimedOut { minutes: 10, .. }),
        "{error:?}"
    );
    assert!(world.instances.live().is_empty());
}

#[tokio::test]
async fn a_crash_retried_launch_gets_its_own_instance_back_and_a_vanished_one_is_replaced() {
    let world = world();
    let (_, first) = launched(&world).await;
    // The step crashed after RunInstances: its retry has the same input and the same run.
    let (booting, again) = launched(&world).await;
    assert_eq!(first, again, "the ClientToken answers the same instance");
    assert_eq!(world.instances.live().len(), 1);

    // Its instance ended before a verdict (the step that terminated it crashed): another one.
    world.instances.set_state(
        &first,
        "terminated",
        Some("Client.UserInitiatedShutdown: User initiated shutdown"),
    );
    let relaunched = call(&world, &booting).await.unwrap();
    let check = relaunched.evidence.boot_check.unwrap();
    assert_eq!(check.launches, 2);
    assert_ne!(check.instance_id, first);
    assert_eq!(world.instances.live().len(), 1);
}

#[tokio::test]
async fn end_terminates_this_replications_boot_instances_and_nothing_else() {
    let world = world();
    let (_, instance) = launched(&world).await;
    world.instances.add_instance(
        REGION,
        InstanceInfo {
            instance_id: "i-0someoneelse0000".into(),
            state: "running".into(),
            tags: vec![
                Tag::new(MANAGED_BY, "ferry"),
                Tag::new(BOOT_CHECK_FOR, REPLICA),
            ],
            ..Default::default()
        },
    );
    let output = handle(
        &world.deps,
        json!({"operation": "end", "replicationId": "fr-5a1d0c7e9b2f4a6c8d0e", "region": REGION}),
    )
    .await
    .unwrap();
    let output = serde_json::to_value(output).unwrap();
    assert_eq!(output["terminated"][0]["instanceId"], instance.as_str());
    assert_eq!(output["terminated"].as_array().unwrap().len(), 1);
    let live: Vec<String> = world
        .instances
        .live()
        .into_iter()
        .map(|i| i.info.instance_id)
        .collect();
    assert_eq!(
        live,
        ["i-0someoneelse0000"],
        "another replication's instance is not this one's"
    );
}

#[tokio::test]
async fn the_sweep_terminates_only_ferry_boot_instances_past_their_limit() {
    let world = world();
    let now = world.deps.clock.now();
    let instance = |id: &str, tags: Vec<Tag>| InstanceInfo {
        instance_id: id.into(),
        state: "running".into(),
        tags,
        ..Default::default()
    };
    let boot_tags = |expires: u64| {
        vec![
            Tag::new(MANAGED_BY, "ferry"),
            Tag::new(BOOT_CHECK_FOR, REPLICA),
            Tag::new(EXPIRES_AT, rfc3339(expires)),
        ]
    };
    world
        .instances
        .add_instance(REGION, instance("i-expired", boot_tags(now - 1)));
    world
        .instances
        .add_instance(REGION, instance("i-current", boot_tags(now + 600)));
    // Looks like ferry's, but is not tagged as ferry's own.
    world.instances.add_instance(
        REGION,
        instance(
            "i-lookalike",
            vec![
                Tag::new(BOOT_CHECK_FOR, REPLICA),
                Tag::new(EXPIRES_AT, rfc3339(now - 1)),
            ],
        ),
    );
    let output = handle(
        &world.deps,
        json!({"operation": "sweep", "regions": [REGION]}),
    )
    .await
    .unwrap();
    let output = serde_json::to_value(output).unwrap();
    assert_eq!(
        output["terminated"],
        json!([{"region": REGION, "instanceId": "i-expired"}])
    );
    let mut live: Vec<String> = world
        .instances
        .live()
        .into_iter()
        .map(|i| i.info.instance_id)
        .collect();
    live.sort();
    assert_eq!(live, ["i-current", "i-lookalike"]);
}

#[tokio::test]
async fn a_document_without_a_boot_check_passes_through_and_a_snapshot_cannot_ask_for_one() {
    let world = world();
    let plain = fixture("wire-destination/verified-ami.json");
    let through = call(&world, &plain).await.unwrap();
    assert!(through.evidence.boot_check.is_none());
    assert_eq!(world.instances.calls_of("RunInstances"), 0);

    let mut snapshot = verified();
    snapshot["source"] = json!({"region": "us-east-1", "snapshotId": "snap-0aaaaaaaaaaaaaaaa"});
    let error = call(&world, &snapshot).await.unwrap_err();
    assert_eq!(error.name(), "InvalidRequest");
    assert!(error.to_string().contains("destination.bootCheck"));
}
