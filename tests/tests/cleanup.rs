//! Cleanup of failed copies: ferry removes a copy AWS failed, with its snapshots, only when the
//! resources' own tags say this replication made them. Sources and look-alikes are never touched.

use ferry_core::Config;
use ferry_tests::seed::Key;
use ferry_tests::world::HandlerWorld;
use ferry_tests::{poll_until_settled, run_step, LocalAws, Seeder, Step};
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

async fn setup() -> (LocalAws, Seeder, ferry_core::Deps, String, Key) {
    let HandlerWorld { aws, seed, deps } = HandlerWorld::start(600.0, Config::default()).await;
    let source_key = seed.key(SOURCE).await;
    let (image, _) = seed.golden_image(SOURCE, &source_key, &source_key).await;
    let key = seed.key(DESTINATION).await;
    (aws, seed, deps, image, key)
}

fn request(image: &str, key: &Key, attempt: Option<u32>) -> Value {
    let mut request = json!({"source": {"region": SOURCE, "imageId": image}, "destination": {"region": DESTINATION, "kmsKeyId": key.arn}});
    if let Some(attempt) = attempt {
        request["options"] = json!({"attempt": attempt});
    }
    request
}

async fn enable_key(seed: &Seeder, key: &Key) {
    seed.kms(DESTINATION)
        .enable_key()
        .key_id(&key.id)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_copy_ferry_made_is_removed_with_its_snapshots_and_the_next_attempt_succeeds() {
    let (aws, seed, deps, image, key) = setup().await;
    let started = run_step(Step::StartCopy, &deps, &request(&image, &key, None))
        .await
        .unwrap();
    seed.disable_key(DESTINATION, &key).await;
    let (failed, _) = poll_until_settled(&aws, &deps, started).await.unwrap();
    assert_eq!(failed["copy"]["status"], "failed");
    assert!(
        failed["copy"]["failure"]
            .as_str()
            .unwrap()
            .contains("options.attempt = 2"),
        "{}",
        failed["copy"]["failure"]
    );
    let removed: Vec<String> = serde_json::from_value(failed["copy"]["cleanedUp"].clone()).unwrap();
    assert_eq!(
        removed.len(),
        3,
        "the image and its two snapshots: {removed:?}"
    );
    assert!(seed.owned_images(DESTINATION).await.is_empty());
    let replication_id = failed["replicationId"].as_str().unwrap();
    assert!(seed
        .snapshots_tagged(DESTINATION, "ferry:replication-id", replication_id)
        .await
        .is_empty());
    assert_eq!(
        (
            aws.count_calls("DeregisterImage"),
            aws.count_calls("DeleteSnapshot")
        ),
        (1, 2)
    );

    enable_key(&seed, &key).await;
    // The same attempt again maps to the removed copy (CopyImage's token): ferry says what to do.
    let same = run_step(Step::StartCopy, &deps, &request(&image, &key, None))
        .await
        .unwrap();
    let (again, _) = poll_until_settled(&aws, &deps, same).await.unwrap();
    assert_eq!(again["copy"]["status"], "failed");
    assert!(
        again["copy"]["failure"]
            .as_str()
            .unwrap()
            .contains("no longer exists"),
        "{}",
        again["copy"]["failure"]
    );
    // The next attempt copies afresh and verifies.
    let next = run_step(Step::StartCopy, &deps, &request(&image, &key, Some(2)))
        .await
        .unwrap();
    assert_ne!(
        next["copy"]["destinationId"],
        failed["copy"]["destinationId"]
    );
    let (copied, _) = poll_until_settled(&aws, &deps, next).await.unwrap();
    assert_eq!(copied["copy"]["status"], "completed");
    run_step(Step::VerifyEncryption, &deps, &copied)
        .await
        .unwrap();
    ferry_tests::figure(
        "cleanup",
        &format!("a copy AWS failed (key disabled mid-copy) is removed with its snapshots: {} resources deleted (1 image, 2 snapshots), each tagged with this replication; the next attempt copies afresh and verifies", removed.len()),
    );
}

#[tokio::test]
async fn sources_and_untagged_or_foreign_look_alikes_are_never_touched() {
    let (aws, seed, deps, image, key) = setup().await;
    let started = run_step(Step::StartCopy, &deps, &request(&image, &key, None))
        .await
        .unwrap();
    let (completed, _) = poll_until_settled(&aws, &deps, started).await.unwrap();
    let doomed = seed.key(DESTINATION).await;

    // A look-alike copy somebody else made, untagged, that AWS fails.
    let untagged = seed
        .ec2(DESTINATION)
        .copy_image()
        .source_region(SOURCE)
        .source_image_id(&image)
        .name("look-alike")
        .encrypted(true)
        .kms_key_id(&doomed.arn)
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_string();
    // One tagged as ferry's, but for another replication.
    let foreign = seed
        .ec2(DESTINATION)
        .copy_image()
        .source_region(SOURCE)
        .source_image_id(&image)
        .name("foreign")
        .encrypted(true)
        .kms_key_id(&doomed.arn)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Image)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("ferry:managed-by")
                        .value("ferry")
                        .build(),
                )
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("ferry:replication-id")
                        .value("fr-someone-else")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_string();
    seed.disable_key(DESTINATION, &doomed).await;
    aws.advance(3600.0);

    for look_alike in [&untagged, &foreign] {
        let mut document = completed.clone();
        document["copy"]["destinationId"] = json!(look_alike);
        let checked = run_step(Step::CheckCopy, &deps, &document).await.unwrap();
        assert_eq!(
            checked["copy"]["status"], "failed",
            "AWS failed the look-alike"
        );
        assert!(
            checked["copy"].get("cleanedUp").is_none(),
            "{look_alike} was left alone: {checked}"
        );
        assert_eq!(
            seed.describe_image(DESTINATION, look_alike)
                .await
                .state()
                .map(|s| s.as_str()),
            Some("failed")
        );
    }
    // A document pointing at the source itself: it is in another Region, so it reads as missing,
    // and check-copy follows the copy this replication keeps instead.
    let mut at_source = completed.clone();
    at_source["copy"]["destinationId"] = json!(image);
    let checked = run_step(Step::CheckCopy, &deps, &at_source).await.unwrap();
    assert_eq!(
        (
            &checked["copy"]["status"],
            &checked["copy"]["destinationId"]
        ),
        (&json!("pending"), &completed["copy"]["destinationId"])
    );
    assert_eq!(
        seed.describe_image(SOURCE, &image)
            .await
            .state()
            .map(|s| s.as_str()),
        Some("available")
    );
    assert_eq!(
        (
            aws.count_calls("DeregisterImage"),
            aws.count_calls("DeleteSnapshot")
        ),
        (0, 0),
        "nothing was deleted"
    );
    ferry_tests::figure(
        "cleanup look-alikes",
        "2 failed look-alike copies (untagged; tagged for another replication) and a document pointing at the source itself: 0 deregistered, 0 deleted",
    );
}
