//! Failure paths the emulator only shows when asked (issue 9): EC2's eventual consistency right
//! after a copy call.

use ferry_core::Config;
use ferry_tests::world::HandlerWorld;
use ferry_tests::{poll_until_settled, run_step, Step};
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

/// An AMI and a snapshot in the source Region, a key in the destination, copies pending 600 s.
async fn world() -> (HandlerWorld, String, String, String) {
    let world = HandlerWorld::start(600.0, Config::default()).await;
    let source_key = world.seed.key(SOURCE).await;
    let (image, [snapshot, _]) = world
        .seed
        .golden_image(SOURCE, &source_key, &source_key)
        .await;
    let key = world.seed.key(DESTINATION).await;
    (world, image, snapshot, key.arn)
}

fn request(source: Value, key_arn: &str) -> Value {
    json!({"source": source, "destination": {"region": DESTINATION, "kmsKeyId": key_arn}})
}

#[tokio::test]
async fn a_new_copy_ec2_does_not_find_yet_is_pending_and_then_completes_without_a_second_copy() {
    let (world, image, snapshot, key) = world().await;
    // EC2 answers NotFound for each new copy's first three describes.
    world.aws.configure(json!({"hideNewCopies": 3}));
    for source in [
        json!({"region": SOURCE, "imageId": image}),
        json!({"region": SOURCE, "snapshotId": snapshot}),
    ] {
        let started = run_step(Step::StartCopy, &world.deps, &request(source, &key))
            .await
            .unwrap();
        let checked = run_step(Step::CheckCopy, &world.deps, &started)
            .await
            .unwrap();
        assert_eq!(
            checked["copy"]["status"], "pending",
            "NotFound right after the copy call is not a failure: {checked}"
        );
        assert!(checked["copy"].get("failure").is_none(), "{checked}");
        assert!(checked["copy"].get("cleanedUp").is_none(), "{checked}");
        let (settled, checks) = poll_until_settled(&world.aws, &world.deps, checked)
            .await
            .unwrap();
        assert_eq!(settled["copy"]["status"], "completed", "{settled}");
        assert_eq!(
            settled["copy"]["destinationId"],
            started["copy"]["destinationId"]
        );
        assert!(checks >= 3, "{checks} checks");
    }
    assert_eq!(
        world.aws.stats()["hiddenDescribes"],
        6,
        "{}",
        world.aws.stats()
    );
    assert_eq!(
        (
            world.aws.count_calls("CopyImage"),
            world.aws.count_calls("CopySnapshot")
        ),
        (1, 1),
        "nothing copied twice"
    );
    assert_eq!(world.seed.owned_images(DESTINATION).await.len(), 1);
    ferry_tests::figure(
        "eventual consistency",
        "a new AMI copy and a new snapshot copy each answered NotFound for their first 3 describes: both read pending, then completed; 1 CopyImage, 1 CopySnapshot, nothing orphaned",
    );
}

#[tokio::test]
async fn a_copy_still_not_found_after_the_grace_window_fails_naming_the_missing_id() {
    let (world, image, _, key) = world().await;
    world.aws.configure(json!({"hideNewCopies": 1000}));
    let started = run_step(
        Step::StartCopy,
        &world.deps,
        &request(json!({"region": SOURCE, "imageId": image}), &key),
    )
    .await
    .unwrap();
    let copy = started["copy"]["destinationId"]
        .as_str()
        .unwrap()
        .to_string();
    let (failed, checks) = poll_until_settled(&world.aws, &world.deps, started)
        .await
        .unwrap();
    assert_eq!(failed["copy"]["status"], "failed", "{failed}");
    let failure = failed["copy"]["failure"].as_str().unwrap();
    assert!(
        failure.starts_with(&format!("{copy} was not found in {DESTINATION}")),
        "{failure}"
    );
    assert!(
        checks > 1,
        "pending within the grace window: {checks} checks"
    );
    assert_eq!(
        world.aws.count_calls("DeregisterImage"),
        0,
        "nothing found, nothing removed"
    );
}
