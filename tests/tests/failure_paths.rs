//! Failure paths the emulator only shows when asked (issue 9): EC2's eventual consistency right
//! after a copy call, time-based copies that cannot meet, or miss, their deadline, and a throttle
//! storm that must end as `Throttled` before the function's timeout.

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

/// An AMI whose data snapshot holds `data_gib` GiB, and a snapshot of that size, in the source.
async fn sized_sources(world: &HandlerWorld, data_gib: i32) -> (String, String) {
    let source_key = world.seed.key(SOURCE).await;
    let root = world.seed.snapshot(SOURCE, Some(&source_key), 8).await;
    let data = world
        .seed
        .snapshot(SOURCE, Some(&source_key), data_gib)
        .await;
    let image = world
        .seed
        .image(
            SOURCE,
            "big-data",
            &[("/dev/xvda", &root), ("/dev/xvdb", &data)],
        )
        .await;
    (image, data)
}

#[tokio::test]
async fn a_time_based_request_a_snapshot_cannot_meet_is_refused_with_the_earliest_feasible_duration_and_nothing_is_copied(
) {
    let world = HandlerWorld::start(600.0, Config::default()).await;
    let key = world.seed.key(DESTINATION).await;
    // 1 TiB at 500 MiB/s takes 35 min: 15 minutes cannot be met, 45 is the earliest step.
    let (image, data) = sized_sources(&world, 1024).await;
    for source in [
        json!({"region": SOURCE, "imageId": image}),
        json!({"region": SOURCE, "snapshotId": data}),
    ] {
        let mut request = request(source, &key.arn);
        request["options"] = json!({"completionDurationMinutes": 15});
        let error = run_step(Step::StartCopy, &world.deps, &request)
            .await
            .unwrap_err();
        assert_eq!(error.name(), "CompletionDurationTooShort", "{error}");
        let message = error.to_string();
        assert!(
            message.contains(&data) && message.contains("at least 45 minutes"),
            "{message}"
        );
        request["options"] = json!({"completionDurationMinutes": 45});
        let accepted = run_step(Step::StartCopy, &world.deps, &request)
            .await
            .unwrap();
        assert_eq!(accepted["copy"]["status"], "pending");
    }
    assert_eq!(
        (
            world.aws.count_calls("CopyImage"),
            world.aws.count_calls("CopySnapshot")
        ),
        (1, 1),
        "only the feasible requests copied"
    );
}

#[tokio::test]
async fn a_time_based_copy_records_whether_it_met_its_deadline_and_a_missed_one_still_completes() {
    let (world, image, snapshot, key) = world().await;
    for (source, copy_seconds, met) in [
        (json!({"region": SOURCE, "imageId": image}), 600.0, true),
        (
            json!({"region": SOURCE, "snapshotId": snapshot}),
            1800.0,
            false,
        ),
    ] {
        world.aws.configure(json!({ "copySeconds": copy_seconds }));
        let mut request = request(source, &key);
        request["options"] = json!({"completionDurationMinutes": 15});
        let started = run_step(Step::StartCopy, &world.deps, &request)
            .await
            .unwrap();
        let (settled, _) = poll_until_settled(&world.aws, &world.deps, started.clone())
            .await
            .unwrap();
        assert_eq!(settled["copy"]["status"], "completed", "{settled}");
        let outcome = &settled["evidence"]["timeBasedCopy"];
        let started_at = started["copy"]["startedAt"].as_u64().unwrap();
        assert_eq!(outcome["completionDurationMinutes"], 15, "{outcome}");
        assert_eq!(outcome["deadlineAt"], started_at + 900, "{outcome}");
        assert_eq!(outcome["met"], met, "{outcome}");
        // AWS's CompletionTime: the copy's own end, not when the poll saw it.
        let took = outcome["completedAt"].as_u64().unwrap() - started_at;
        assert!(
            (copy_seconds as u64 - 2..=copy_seconds as u64 + 2).contains(&took),
            "{outcome}"
        );
        let late = outcome["lateSeconds"].as_u64().unwrap();
        if met {
            assert_eq!(late, 0);
        } else {
            assert!((898..=902).contains(&late), "{outcome}");
        }
        let verified = run_step(Step::VerifyEncryption, &world.deps, &settled)
            .await
            .unwrap();
        assert_eq!(
            verified["evidence"]["timeBasedCopy"], *outcome,
            "the outcome travels with the evidence"
        );
    }
    ferry_tests::figure(
        "time-based copies",
        "a 15-minute time-based AMI copy done in 600 s is recorded met; a snapshot copy done in 1800 s is recorded missed by 900 s and still completes and verifies; a 1 TiB snapshot asked for in 15 minutes is refused (CompletionDurationTooShort, earliest 45) before any copy",
    );
}

#[tokio::test]
async fn a_throttle_storm_under_the_deployed_timeout_ends_as_throttled_within_the_sdk_budget() {
    let (world, image, _, key) = world().await;
    // As deployed: the template's 30 s timeout, the SDK settings derived from it.
    let config =
        Config::from_lookup(|name| (name == "FERRY_FUNCTION_TIMEOUT_SECONDS").then(|| "30".into()))
            .unwrap();
    let budget = config.function_timeout - ferry_core::rules::retry_budget::FUNCTION_MARGIN;
    assert!(
        config.sdk.throttle_storm_worst_case() <= budget,
        "{:?}",
        config.sdk
    );
    let deps = world.aws.deps_as_deployed(config.clone()).await;
    let request = request(json!({"region": SOURCE, "imageId": image}), &key);
    // KMS answers ThrottlingException (HTTP 400), EC2 RequestLimitExceeded (HTTP 503), to every
    // attempt.
    for action in ["DescribeKey", "DescribeImages"] {
        world
            .aws
            .configure(json!({"throttle": {"actions": [action], "times": 1000}}));
        let before = throttled(&world, action);
        let started = std::time::Instant::now();
        let error = run_step(Step::StartCopy, &deps, &request)
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(error.name(), "Throttled", "{action}: {error}");
        assert!(
            took <= budget,
            "{action}: {took:?} is past the SDK budget {budget:?}"
        );
        assert_eq!(
            throttled(&world, action) - before,
            config.sdk.max_attempts as usize,
            "{action}: every attempt the SDK is allowed, and no more"
        );
        world
            .aws
            .configure(json!({"throttle": {"actions": [], "times": 0}}));
        ferry_tests::figure(
            "throttle storm",
            &format!(
                "every {action} throttled: start-copy ends as Throttled after {} attempts in {:.1} s, inside the 30 s function (a throttle storm's worst case {:.1} s, the SDK's operation timeout {} s)",
                config.sdk.max_attempts,
                took.as_secs_f64(),
                config.sdk.throttle_storm_worst_case().as_secs_f64(),
                budget.as_secs()
            ),
        );
    }
    assert_eq!(world.aws.count_calls("CopyImage"), 0, "nothing copied");
}

#[tokio::test]
async fn a_call_aws_answers_too_slowly_ends_as_throttled_before_the_function_timeout() {
    let (world, image, _, key) = world().await;
    // A 10 s function with 2 attempts: a 5 s budget, attempts of at most 2.5 s.
    let config = Config::from_lookup(|name| match name {
        "FERRY_FUNCTION_TIMEOUT_SECONDS" => Some("10".into()),
        "FERRY_SDK_MAX_ATTEMPTS" => Some("2".into()),
        _ => None,
    })
    .unwrap();
    let budget = config.sdk.operation_timeout;
    assert_eq!(budget, std::time::Duration::from_secs(5));
    let deps = world.aws.deps_as_deployed(config).await;
    // Every EC2 and KMS answer takes 4 s: longer than an attempt may.
    world.aws.configure(json!({"delaySeconds": 4.0}));
    let started = std::time::Instant::now();
    let error = run_step(
        Step::StartCopy,
        &deps,
        &request(json!({"region": SOURCE, "imageId": image}), &key),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    world.aws.configure(json!({"delaySeconds": 0.0}));
    assert_eq!(error.name(), "Throttled", "{error}");
    assert!(
        error.to_string().contains("timed out"),
        "AWS's silence is named: {error}"
    );
    assert!(
        took <= budget + std::time::Duration::from_millis(500),
        "{took:?} past the {budget:?} budget"
    );
    assert_eq!(world.aws.count_calls("CopyImage"), 0, "nothing copied");
}

/// How many calls of `action` the emulator answered throttled.
fn throttled(world: &HandlerWorld, action: &str) -> usize {
    world
        .aws
        .calls()
        .iter()
        .filter(|call| call["action"] == action && call["throttled"] == true)
        .count()
}
