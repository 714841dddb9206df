//! enable-fsr on the port fakes: a Region whose FSR quota is full, whether ferry sees it
//! beforehand (`FERRY_FSR_QUOTA`) or AWS refuses the enable, records FSR as skipped with the
//! reason, or fails with `FsrQuotaExceeded` when the request says `failWhenQuotaFull`.

use std::sync::atomic::Ordering;

use ferry_core::document::{FsrEvidence, FsrOutcome};
use ferry_core::fakes::{fixture, FakeWorld};
use ferry_core::handlers::enable_fsr::{handle, FsrOutput};

use ferry_core::rules::fsr::{disable_at_tag, DISABLE_AT};
use ferry_core::{Config, FerryError};
use serde_json::{json, Value};

const REGION: &str = "us-west-2";
const ZONE: &str = "us-west-2a";
/// The replica's snapshots, as the fixture's verification lists them.
const OURS: [&str; 2] = ["snap-0ccccccccccccccc1", "snap-0ccccccccccccccc2"];

/// A verified AMI replica of two snapshots, asking for FSR with `fsr`.
fn verified(fsr: Value) -> Value {
    let mut document = fixture("tag-lineage/verified-ami.json");
    document["options"]["fsr"] = fsr;
    document
}

/// The replica in its Region, and `others` snapshots of someone else's with FSR enabled there.
fn world(ferry_quota: usize, others: usize) -> FakeWorld {
    let world = FakeWorld::new(Config {
        fsr_quota_per_region: ferry_quota,
        ..Config::default()
    });
    world.ec2.add_verified_replica(&verified(Value::Null));
    for i in 0..others {
        world
            .ec2
            .set_fsr(REGION, &format!("snap-0other{i:011}"), ZONE, "enabled");
    }
    world
}

async fn fsr_evidence(world: &FakeWorld, input: Value) -> Result<FsrEvidence, FerryError> {
    match handle(&world.deps, input).await? {
        FsrOutput::Document(document) => Ok(document.evidence.fsr.unwrap()),
        FsrOutput::Due(report) => panic!("a document, not {report:?}"),
    }
}

#[tokio::test]
async fn a_quota_other_snapshots_fill_is_recorded_as_skipped_with_the_reason_and_nothing_is_enabled(
) {
    let world = world(5, 4);
    let evidence = fsr_evidence(&world, verified(json!({"availabilityZones": [ZONE]})))
        .await
        .unwrap();
    assert_eq!(evidence.outcome, FsrOutcome::Skipped);
    assert_eq!(
        evidence.reason.as_deref(),
        Some("4 snapshots already use FSR in us-west-2 and the quota is 5; 2 more would exceed it")
    );
    assert!(evidence.states.is_empty());
    assert_eq!(world.ec2.calls_of("EnableFastSnapshotRestores"), 0);
}

#[tokio::test]
async fn a_full_quota_fails_with_fsr_quota_exceeded_when_the_request_says_fail_when_quota_full() {
    let world = world(5, 4);
    let error = fsr_evidence(
        &world,
        verified(json!({"availabilityZones": [ZONE], "failWhenQuotaFull": true})),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, FerryError::FsrQuotaExceeded { region, reason } if region == REGION && reason.starts_with("4 snapshots already use FSR")),
        "{error}"
    );
    assert!(!error.is_retryable(), "a full quota stays full on retry");
    assert_eq!(world.ec2.calls_of("EnableFastSnapshotRestores"), 0);
}

#[tokio::test]
async fn a_quota_refusal_from_aws_itself_is_skipped_or_fails_as_asked_like_a_quota_seen_beforehand()
{
    // ferry believes the quota is 100; AWS's is 1, and another snapshot holds it.
    let world = world(100, 1);
    world.ec2.fsr_quota.store(1, Ordering::SeqCst);
    let evidence = fsr_evidence(&world, verified(json!({"availabilityZones": [ZONE]})))
        .await
        .unwrap();
    assert_eq!(evidence.outcome, FsrOutcome::Skipped);
    assert!(
        evidence
            .reason
            .as_deref()
            .unwrap()
            .starts_with("FastSnapshotRestoreLimitExceeded: "),
        "{evidence:?}"
    );
    let error = fsr_evidence(
        &world,
        verified(json!({"availabilityZones": [ZONE], "failWhenQuotaFull": true})),
    )
    .await
    .unwrap_err();
    assert_eq!(error.name(), "FsrQuotaExceeded");
}

#[tokio::test]
async fn within_the_quota_fsr_is_requested_in_every_zone_and_its_disabling_is_scheduled() {
    let world = world(5, 3);
    let zones = ["us-west-2a", "us-west-2b"];
    let evidence = fsr_evidence(
        &world,
        verified(json!({"availabilityZones": zones, "disableAfterHours": 24})),
    )
    .await
    .unwrap();
    assert_eq!(evidence.outcome, FsrOutcome::Requested);
    assert_eq!(evidence.states.len(), OURS.len() * zones.len());
    assert!(evidence.states.iter().all(|s| s.state == "enabling"));
    assert_eq!(evidence.disable_after_seconds, Some(86_400));
    let due = disable_at_tag(world.deps.clock.now(), 24.0);
    for snapshot in &world.ec2.snapshots.lock().unwrap()[REGION] {
        assert!(
            snapshot.tags.contains(&due),
            "{} carries {DISABLE_AT}",
            snapshot.snapshot_id
        );
    }
}

#[tokio::test]
async fn an_explicit_disable_turns_fsr_off_in_the_requested_zones() {
    let world = world(5, 0);
    let requested = verified(json!({"availabilityZones": [ZONE]}));
    fsr_evidence(&world, requested.clone()).await.unwrap();
    let evidence = fsr_evidence(
        &world,
        json!({"operation": "disable", "replication": requested}),
    )
    .await
    .unwrap();
    assert_eq!(evidence.outcome, FsrOutcome::Disabled);
    let states: Vec<(&str, &str)> = evidence
        .states
        .iter()
        .map(|s| (s.snapshot_id.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [(OURS[0], "disabling"), (OURS[1], "disabling")],
        "both snapshots, in the one zone"
    );
}

#[tokio::test]
async fn a_quota_refusal_after_aws_enabled_part_of_the_request_turns_that_part_off_again() {
    // AWS allows 2 snapshots and another holds one: the first of ours is enabled, the second
    // refused. Recorded as skipped, the first must not keep billing with nothing to disable it.
    let world = world(100, 1);
    world.ec2.fsr_quota.store(2, Ordering::SeqCst);
    let zones = ["us-west-2a", "us-west-2b"];
    for fail_when_quota_full in [false, true] {
        let outcome = fsr_evidence(
            &world,
            verified(json!({"availabilityZones": zones, "failWhenQuotaFull": fail_when_quota_full, "disableAfterHours": 24})),
        )
        .await;
        match outcome {
            Ok(evidence) => assert_eq!(evidence.outcome, FsrOutcome::Skipped),
            Err(error) => assert_eq!(error.name(), "FsrQuotaExceeded"),
        }
        let ours: Vec<String> = OURS.iter().map(|s| s.to_string()).collect();
        let states = world
            .deps
            .fast_restore
            .describe(REGION, &ours)
            .await
            .unwrap();
        assert!(
            states
                .iter()
                .all(|s| s.state == "disabling" || s.state == "disabled"),
            "{states:?}"
        );
        assert!(
            world.ec2.snapshots.lock().unwrap()[REGION]
                .iter()
                .all(|s| !s.tags.iter().any(|t| t.key == DISABLE_AT)),
            "nothing scheduled: nothing is left on"
        );
    }
}
