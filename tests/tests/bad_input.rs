//! Bad input, table-driven: every case ends in its named error with a message that says what to
//! fix, and with 0 copies started and 0 resources deleted. Prints the suite's figure.

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use ferry_core::policy::Policy;
use ferry_core::Config;
use ferry_tests::world::HandlerWorld;
use ferry_tests::{run_step, Step};
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";
const MUTATIONS: [&str; 6] = [
    "CopyImage",
    "CopySnapshot",
    "DeregisterImage",
    "DeleteSnapshot",
    "CreateTags",
    "EnableFastSnapshotRestores",
];

fn request(image: &str, key: &str) -> Value {
    json!({"source": {"region": SOURCE, "imageId": image}, "destination": {"region": DESTINATION, "kmsKeyId": key}})
}

fn with(mut base: Value, path: &[&str], value: Value) -> Value {
    let mut node = &mut base;
    for key in &path[..path.len() - 1] {
        node = node
            .as_object_mut()
            .unwrap()
            .entry(key.to_string())
            .or_insert_with(|| json!({}));
    }
    node[path[path.len() - 1]] = value;
    base
}

#[tokio::test]
async fn every_bad_input_gets_a_named_error_and_nothing_is_copied_or_deleted() {
    let HandlerWorld { aws, seed, deps } = HandlerWorld::start(600.0, Config::default()).await;
    let source_key = seed.key(SOURCE).await;
    let root = seed.snapshot(SOURCE, Some(&source_key), 8).await;
    let image = seed.image(SOURCE, "golden", &[("/dev/xvda", &root)]).await;
    let key = seed.key(DESTINATION).await;
    let elsewhere = seed.key("eu-west-1").await;
    let disabled = seed.key(DESTINATION).await;
    seed.disable_key(DESTINATION, &disabled).await;
    let doomed = seed.key(DESTINATION).await;
    seed.schedule_deletion(DESTINATION, &doomed).await;
    let asymmetric = seed
        .key_with(
            DESTINATION,
            KeySpec::Rsa2048,
            KeyUsageType::EncryptDecrypt,
            false,
        )
        .await;
    let signing = seed
        .key_with(
            DESTINATION,
            KeySpec::EccNistP256,
            KeyUsageType::SignVerify,
            false,
        )
        .await;
    let hmac = seed
        .key_with(
            DESTINATION,
            KeySpec::Hmac256,
            KeyUsageType::GenerateVerifyMac,
            false,
        )
        .await;
    let instance_store = seed.instance_store_image(SOURCE, "instance-store").await;
    let elsewhere_snapshot = seed.snapshot("eu-west-1", Some(&elsewhere), 8).await;
    let not_ready = seed
        .pending_copy("eu-west-1", &elsewhere_snapshot, SOURCE)
        .await;
    let good = request(&image, &key.id);
    let seeded = aws.calls().len();
    let snapshot_request = |snapshot: &str| json!({"source": {"region": SOURCE, "snapshotId": snapshot}, "destination": {"region": DESTINATION, "kmsKeyId": key.id}});

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a JSON string, not a document",
            json!("copy ami-0123 please"),
            "InvalidRequest",
        ),
        ("a JSON array", json!([good.clone()]), "InvalidRequest"),
        (
            "truncated: no destination",
            json!({"source": {"region": SOURCE, "imageId": image}}),
            "InvalidRequest",
        ),
        (
            "missing kmsKeyId",
            json!({"source": {"region": SOURCE, "imageId": image}, "destination": {"region": DESTINATION}}),
            "InvalidRequest",
        ),
        (
            "missing source Region",
            json!({"source": {"imageId": image}, "destination": {"region": DESTINATION, "kmsKeyId": key.id}}),
            "InvalidRequest",
        ),
        (
            "a wrong-typed id",
            with(good.clone(), &["source", "imageId"], json!(1234)),
            "InvalidRequest",
        ),
        (
            "a snapshot id given as imageId",
            with(good.clone(), &["source", "imageId"], json!(root)),
            "InvalidRequest",
        ),
        (
            "both imageId and snapshotId",
            with(good.clone(), &["source", "snapshotId"], json!(root)),
            "InvalidRequest",
        ),
        (
            "an unknown field",
            with(good.clone(), &["sourceRegion"], json!(SOURCE)),
            "InvalidRequest",
        ),
        (
            "a Region that does not exist",
            with(good.clone(), &["destination", "region"], json!("us-east-9")),
            "InvalidRequest",
        ),
        (
            "a made-up Region name",
            with(good.clone(), &["source", "region"], json!("moon-base-1")),
            "InvalidRequest",
        ),
        (
            "destination = source Region",
            with(good.clone(), &["destination", "region"], json!(SOURCE)),
            "InvalidRequest",
        ),
        (
            "completionDurationMinutes not a multiple of 15",
            with(
                good.clone(),
                &["options", "completionDurationMinutes"],
                json!(20),
            ),
            "InvalidRequest",
        ),
        (
            "completionDurationMinutes beyond 48 h",
            with(
                good.clone(),
                &["options", "completionDurationMinutes"],
                json!(2895),
            ),
            "InvalidRequest",
        ),
        (
            "an oversized batch tag value",
            with(good.clone(), &["options", "batch"], json!("b".repeat(300))),
            "InvalidRequest",
        ),
        (
            "a batch with control characters",
            with(
                good.clone(),
                &["options", "batch"],
                json!("nightly\u{1b}[31m\r\n"),
            ),
            "InvalidRequest",
        ),
        (
            "a batch with the reserved aws: prefix",
            with(
                good.clone(),
                &["options", "batch"],
                json!("aws:cloudformation:stack"),
            ),
            "InvalidRequest",
        ),
        (
            "an FSR zone in another Region",
            with(
                good.clone(),
                &["options", "fsr"],
                json!({"availabilityZones": ["us-east-1a"]}),
            ),
            "InvalidRequest",
        ),
        (
            "an FSR zone the Region lacks",
            with(
                good.clone(),
                &["options", "fsr"],
                json!({"availabilityZones": ["us-west-2z"]}),
            ),
            "InvalidRequest",
        ),
        (
            "a negative disableAfterHours",
            with(
                good.clone(),
                &["options", "fsr"],
                json!({"availabilityZones": ["us-west-2a"], "disableAfterHours": -3}),
            ),
            "InvalidRequest",
        ),
        (
            "a document over the size limit",
            with(
                good.clone(),
                &["options", "batch"],
                json!("x".repeat(70_000)),
            ),
            "InvalidRequest",
        ),
        (
            "a key ARN from another Region",
            request(&image, &elsewhere.arn),
            "KeyNotInDestinationRegion",
        ),
        (
            "a key id that only exists in another Region",
            request(&image, &elsewhere.id),
            "KeyNotFound",
        ),
        (
            "an alias that does not exist",
            request(&image, "alias/no-such-key"),
            "KeyNotFound",
        ),
        (
            "an asymmetric encryption key",
            request(&image, &asymmetric.id),
            "KeyNotSymmetric",
        ),
        (
            "a signing key",
            request(&image, &signing.id),
            "KeyNotSymmetric",
        ),
        ("an HMAC key", request(&image, &hmac.id), "KeyNotSymmetric"),
        (
            "a disabled key",
            request(&image, &disabled.arn),
            "KeyNotEnabled",
        ),
        (
            "a key pending deletion",
            request(&image, &doomed.id),
            "KeyNotEnabled",
        ),
        (
            "an AMI that does not exist (or another account's)",
            request("ami-0123456789abcdef0", &key.id),
            "SourceNotFound",
        ),
        (
            "a snapshot that does not exist (or another account's)",
            snapshot_request("snap-0123456789abcdef0"),
            "SourceNotFound",
        ),
        (
            "an instance-store AMI",
            request(&instance_store, &key.id),
            "SourceNotEbsBacked",
        ),
        (
            "a snapshot still being copied",
            snapshot_request(&not_ready),
            "SourceNotReady",
        ),
    ];
    let mut named = 0;
    for (case, input, expected) in &cases {
        let error = run_step(Step::StartCopy, &deps, input)
            .await
            .expect_err(case);
        assert_eq!(error.name(), *expected, "{case}: {error}");
        assert!(
            error.to_string().len() > 20,
            "{case}: the message says what to fix: {error}"
        );
        named += 1;
    }

    // The planner's own bad input: an unencrypted source under a policy that requires encryption.
    let ferry_calls = aws.calls()[seeded..].to_vec();
    let plain = seed.snapshot(SOURCE, None, 8).await;
    let plain_image = seed
        .image(SOURCE, "unencrypted", &[("/dev/xvda", &plain)])
        .await;
    let tag = aws_sdk_ec2::types::Tag::builder()
        .key("dr")
        .value("yes")
        .build();
    seed.ec2(SOURCE)
        .create_tags()
        .resources(&plain_image)
        .tags(tag)
        .send()
        .await
        .unwrap();
    let policy = Policy::parse(r#"{"selection": {"tagKey": "dr"}, "requireEncryptedSource": true, "destinations": [{"region": "us-west-2", "kmsKeyId": "alias/k"}]}"#).unwrap();
    let planner = aws
        .deps(Config {
            policy: Some(policy),
            ..Config::default()
        })
        .await;
    let event = json!({"detail-type": "EC2 AMI State Change", "source": "aws.ec2", "region": SOURCE, "detail": {"ImageId": plain_image, "State": "available"}});
    let planner_seeded = aws.calls().len();
    let error = ferry_core::handlers::plan::handle(&planner, event)
        .await
        .unwrap_err();
    assert_eq!(error.name(), "SourceNotEncrypted");
    named += 1;

    let ferry_calls: Vec<Value> = ferry_calls
        .into_iter()
        .chain(aws.calls()[planner_seeded..].iter().cloned())
        .collect();
    let mutations: Vec<&Value> = ferry_calls
        .iter()
        .filter(|call| MUTATIONS.iter().any(|m| call["action"] == *m))
        .collect();
    assert!(mutations.is_empty(), "ferry changed nothing: {mutations:?}");
    for read in ["DescribeKey", "DescribeImages", "DescribeSnapshots"] {
        assert!(
            ferry_calls.iter().any(|call| call["action"] == read),
            "the key and source cases were checked against AWS ({read})"
        );
    }
    assert!(seed.owned_images(DESTINATION).await.is_empty());
    ferry_tests::figure(
        "bad input",
        &format!(
            "{} cases, {named} named errors, 0 copies started, 0 resources deleted",
            cases.len() + 1
        ),
    );
}
