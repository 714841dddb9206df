//! Deliveries of one trigger at the same instant can each make a copy of the same replication.
//! Every execution converges on one copy, the earliest created, on the port fakes: a duplicate
//! removes itself once complete, and an execution whose copy was removed that way follows the
//! kept copy at once rather than waiting out EC2's not-found grace window.

use ferry_core::document::{CopyState, CopyStatus};
use ferry_core::fakes::{fixture, FakeWorld};
use ferry_core::handlers::check_copy;
use ferry_core::ports::{SnapshotInfo, Tag};
use ferry_core::rules::lineage::ownership_tags;
use ferry_core::Config;
use serde_json::Value;

const REGION: &str = "us-west-2";
/// The copy the fixture's execution follows.
const FOLLOWED: &str = "snap-0b0000000000000b1";
/// Another delivery's copy of the same replication.
const OTHER: &str = "snap-0f00000000000000a";

fn pending_snapshot_copy() -> Value {
    fixture("check-copy/pending-snapshot.json")
}

fn replication_id() -> String {
    pending_snapshot_copy()["replicationId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A copy of the fixture's replication, tagged as its own, started at `created_at_ms`.
fn copy(id: &str, state: &str, created_at_ms: i64) -> SnapshotInfo {
    SnapshotInfo {
        snapshot_id: id.into(),
        state: state.into(),
        progress: Some(if state == "completed" { "100%" } else { "40%" }.into()),
        encrypted: true,
        tags: ownership_tags(&replication_id())
            .into_iter()
            .chain([Tag::new("ferry:note", "duplicate test")])
            .collect(),
        created_at_ms: Some(created_at_ms),
        ..Default::default()
    }
}

/// Checks the fixture's copy once, with `copies` of its replication in the Region.
async fn checked_with(copies: Vec<SnapshotInfo>) -> (FakeWorld, CopyState) {
    let world = FakeWorld::new(Config::default());
    for copy in copies {
        world.ec2.add_snapshot(REGION, copy);
    }
    let checked = check_copy::handle(&world.deps, pending_snapshot_copy())
        .await
        .unwrap();
    (world, checked.copy.unwrap())
}

fn snapshots(world: &FakeWorld) -> Vec<String> {
    world.ec2.snapshots.lock().unwrap()[REGION]
        .iter()
        .map(|s| s.snapshot_id.clone())
        .collect()
}

#[tokio::test]
async fn a_copy_removed_as_another_executions_duplicate_is_followed_to_the_kept_copy_at_once() {
    let (world, copy) = checked_with(vec![copy(OTHER, "completed", 1_764_547_100_000)]).await;
    assert_eq!(copy.destination_id, OTHER);
    assert_eq!(
        copy.status,
        CopyStatus::Pending,
        "checked again, as the kept copy"
    );
    assert_eq!(copy.next_check_seconds, world.deps.config.poll.min_seconds);
    assert!(copy.failure.is_none() && copy.cleaned_up.is_empty());
    assert_eq!(snapshots(&world), [OTHER], "nothing removed");
}

#[tokio::test]
async fn a_missing_copy_with_no_other_copy_of_its_replication_stays_pending_within_the_grace_window(
) {
    let (_, copy) = checked_with(vec![]).await;
    assert_eq!(
        (copy.destination_id.as_str(), copy.status),
        (FOLLOWED, CopyStatus::Pending)
    );
}

#[tokio::test]
async fn a_duplicate_that_completes_removes_itself_and_follows_the_earliest_copy() {
    let (world, copy) = checked_with(vec![
        copy(OTHER, "pending", 1_764_547_100_500),
        copy(FOLLOWED, "completed", 1_764_547_100_510),
    ])
    .await;
    assert_eq!(copy.destination_id, OTHER);
    assert_eq!(copy.status, CopyStatus::Pending);
    assert_eq!(copy.cleaned_up, [FOLLOWED]);
    assert_eq!(snapshots(&world), [OTHER]);
}

#[tokio::test]
async fn the_earliest_copy_keeps_itself_while_a_later_duplicate_exists() {
    let (world, copy) = checked_with(vec![
        copy(FOLLOWED, "completed", 1_764_547_100_500),
        copy(OTHER, "pending", 1_764_547_100_510),
    ])
    .await;
    assert_eq!(
        (copy.destination_id.as_str(), copy.status),
        (FOLLOWED, CopyStatus::Completed)
    );
    assert!(copy.cleaned_up.is_empty());
    assert_eq!(snapshots(&world).len(), 2, "the later copy removes itself");
}
