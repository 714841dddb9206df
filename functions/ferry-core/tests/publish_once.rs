//! tag-lineage publishes a verification's `Replication Succeeded` evidence once, on the port
//! fakes: a retried or rerun tag-lineage finds `ferry:evidence-published` on the replica and
//! does not publish it again; a publish that failed left no marker, so its retry publishes.

use std::sync::atomic::Ordering;

use ferry_core::fakes::{fixture, FakeWorld};
use ferry_core::handlers::tag_lineage::{handle, SUCCEEDED};
use ferry_core::ports::Tag;
use ferry_core::rules::lineage::{rfc3339, EVIDENCE_PUBLISHED};
use ferry_core::Config;
use serde_json::{json, Value};

const REGION: &str = "us-west-2";
const REPLICA_AMI: &str = "ami-0fedcba9876543210";
const REPLICA_SNAPSHOTS: [&str; 2] = ["snap-0ccccccccccccccc1", "snap-0ccccccccccccccc2"];

/// A verified AMI replica of two snapshots.
fn verified_ami() -> Value {
    fixture("tag-lineage/verified-ami.json")
}

/// The same replication's first snapshot, replicated on its own.
fn verified_snapshot() -> Value {
    let mut document = verified_ami();
    document["source"] = json!({"region": "us-east-1", "snapshotId": "snap-0aaaaaaaaaaaaaaaa"});
    document["copy"]["destinationId"] = json!(REPLICA_SNAPSHOTS[0]);
    let verification = &mut document["evidence"]["verification"];
    verification["snapshots"]
        .as_array_mut()
        .unwrap()
        .truncate(1);
    verification.as_object_mut().unwrap().remove("awsLineage");
    document
}

/// The replica AMI and its snapshots in the destination Region.
fn world() -> FakeWorld {
    let world = FakeWorld::new(Config::default());
    world.ec2.add_verified_replica(&verified_ami());
    world
}

/// The detail type and replication id of every event published so far.
fn published(world: &FakeWorld) -> Vec<(String, Value)> {
    world
        .events
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|(detail_type, detail)| (detail_type.clone(), detail["replicationId"].clone()))
        .collect()
}

fn replica_tags(world: &FakeWorld, id: &str) -> Vec<Tag> {
    let images = world.ec2.images.lock().unwrap();
    let snapshots = world.ec2.snapshots.lock().unwrap();
    images[REGION]
        .iter()
        .filter(|i| i.image_id == id)
        .map(|i| i.tags.clone())
        .chain(
            snapshots[REGION]
                .iter()
                .filter(|s| s.snapshot_id == id)
                .map(|s| s.tags.clone()),
        )
        .next()
        .unwrap()
}

#[tokio::test]
async fn a_retried_tag_lineage_publishes_the_replication_succeeded_event_once() {
    for (document, replica) in [
        (verified_ami(), REPLICA_AMI),
        (verified_snapshot(), REPLICA_SNAPSHOTS[0]),
    ] {
        let world = world();
        let first = handle(&world.deps, document.clone()).await.unwrap();
        let retried = handle(&world.deps, document.clone()).await.unwrap();
        assert_eq!(
            published(&world),
            [(SUCCEEDED.to_string(), document["replicationId"].clone())],
            "{replica}: one event for two runs"
        );
        assert_eq!(
            first, retried,
            "{replica}: the retry answers the same document"
        );
        assert!(retried.evidence.lineage.unwrap().event_published);
        let verified_at = rfc3339(
            document["evidence"]["verification"]["verifiedAt"]
                .as_u64()
                .unwrap(),
        );
        assert!(
            replica_tags(&world, replica).contains(&Tag::new(EVIDENCE_PUBLISHED, &verified_at)),
            "{replica} is marked with the verification it was published for"
        );
    }
}

#[tokio::test]
async fn a_new_verification_of_the_same_replica_publishes_its_own_evidence() {
    let world = world();
    let document = verified_ami();
    handle(&world.deps, document.clone()).await.unwrap();
    let mut reverified = document;
    reverified["evidence"]["verification"]["verifiedAt"] = json!(1_795_086_000);
    handle(&world.deps, reverified.clone()).await.unwrap();
    handle(&world.deps, reverified).await.unwrap();
    assert_eq!(published(&world).len(), 2, "one per verification");
}

#[tokio::test]
async fn a_publish_that_failed_is_retried_and_then_published_once() {
    let world = world();
    world.events.refusals.store(1, Ordering::SeqCst);
    let document = verified_ami();
    let error = handle(&world.deps, document.clone()).await.unwrap_err();
    assert_eq!(error.name(), "PublishFailed");
    assert!(error.is_retryable(), "the state machine retries it");
    assert!(
        !replica_tags(&world, REPLICA_AMI)
            .iter()
            .any(|t| t.key == EVIDENCE_PUBLISHED),
        "no marker for evidence that was not published"
    );
    handle(&world.deps, document.clone()).await.unwrap();
    handle(&world.deps, document).await.unwrap();
    assert_eq!(published(&world).len(), 1);
}
