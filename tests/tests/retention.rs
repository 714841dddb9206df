//! Retention against the local AWS through the real SDK adapters: of five replicas of one image
//! family, the newest and those a launch template, the managed SSM parameter or an instance uses
//! are kept; the rest is deprecated, then after the grace period deregistered with its
//! snapshots, with a `Replica Retired` event; a look-alike ferry does not own is never touched;
//! what the assessment (`ferry prune`'s dry run) shows is exactly what the apply retires.

use ferry_core::handlers::retire::{apply, assess, RETIRED_EVENT};
use ferry_core::rules::retention::{Action, RetentionTarget};
use ferry_core::Config;
use ferry_tests::replicate_in_process;
use ferry_tests::seed::tag_value;
use ferry_tests::world::HandlerWorld as World;
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";
const PARAMETER: &str = "/golden/web/ami";
const DAY: f64 = 86_400.0;

fn target() -> RetentionTarget {
    serde_json::from_value(json!({
        "region": DESTINATION,
        "retention": {"keep": 1, "groupBy": "app", "graceDays": 7},
        "ssmParameter": PARAMETER
    }))
    .unwrap()
}

/// Five AMIs of the family `app=web` replicated to DESTINATION in order, a day apart.
async fn family(world: &World) -> Vec<String> {
    let key = world.seed.key(SOURCE).await;
    let destination_key = world.seed.key(DESTINATION).await;
    world
        .seed
        .alias(DESTINATION, "alias/dr", &destination_key)
        .await;
    let mut replicas = vec![];
    for n in 0..5 {
        let root = world.seed.snapshot(SOURCE, Some(&key), 8).await;
        let image = world
            .seed
            .image(SOURCE, &format!("web-{n}"), &[("/dev/xvda", &root)])
            .await;
        let request = json!({
            "source": {"region": SOURCE, "imageId": image},
            "destination": {"region": DESTINATION, "kmsKeyId": "alias/dr",
                            "retention": {"keep": 1, "groupBy": "app", "graceDays": 7}}
        });
        let done = replicate_in_process(&world.aws, &world.deps, &request)
            .await
            .unwrap();
        assert_eq!(done["group"], "app=web");
        replicas.push(done["copy"]["destinationId"].as_str().unwrap().to_string());
        world.aws.advance(DAY);
    }
    replicas
}

fn verdicts_of(verdicts: &[ferry_core::rules::retention::Verdict]) -> Vec<(String, Action)> {
    verdicts
        .iter()
        .map(|v| (v.image_id.clone(), v.action))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_and_what_is_used_and_retires_the_rest_after_its_grace() {
    let world = World::start(60.0, Config::default()).await;
    let replicas = family(&world).await;
    let ec2 = world.seed.ec2(DESTINATION);
    // replicas[1]: a launch template's default version launches it.
    world
        .seed
        .launch_template_of(DESTINATION, "web", &replicas[1])
        .await;
    // replicas[2]: the managed parameter holds it.
    world
        .deps
        .parameters
        .put_image_id(DESTINATION, PARAMETER, &replicas[2])
        .await
        .unwrap();
    // replicas[3]: an instance runs from it.
    ec2.run_instances()
        .image_id(&replicas[3])
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    // A look-alike: ferry's group and verification tags, but not ferry's own.
    let snapshot = world.seed.snapshot(DESTINATION, None, 8).await;
    let lookalike = world
        .seed
        .image(DESTINATION, "lookalike", &[("/dev/xvda", &snapshot)])
        .await;
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    ec2.create_tags()
        .resources(&lookalike)
        .tags(tag("ferry:group", "app=web"))
        .tags(tag("ferry:verified-at", "2020-01-01T00:00:00Z"))
        .send()
        .await
        .unwrap();

    let target = target();
    let planned = assess(&world.deps, &target).await.unwrap();
    let expected = vec![
        (replicas[4].clone(), Action::Keep),
        (replicas[3].clone(), Action::Keep),
        (replicas[2].clone(), Action::Keep),
        (replicas[1].clone(), Action::Keep),
        (replicas[0].clone(), Action::Deprecate),
    ];
    assert_eq!(verdicts_of(&planned), expected, "{planned:#?}");
    let reasons: Vec<&str> = planned.iter().map(|v| v.reason.as_str()).collect();
    assert!(reasons[0].contains("newest"), "{reasons:?}");
    assert!(reasons[1].contains("instance"), "{reasons:?}");
    assert!(reasons[2].contains(PARAMETER), "{reasons:?}");
    assert!(reasons[3].contains("launch template web"), "{reasons:?}");
    assert!(reasons[4].contains("beyond the newest 1"), "{reasons:?}");

    // The audit shows what uses each replica and what retention would do with it.
    let audited = ferry_core::audit::audit(
        &world.deps,
        &[DESTINATION.to_string()],
        std::slice::from_ref(&target),
    )
    .await
    .unwrap();
    let of = |id: &str| audited.iter().find(|r| r.destination_id == id).unwrap();
    assert_eq!(
        of(&replicas[1]).launch_templates,
        ["web (default version 1)"]
    );
    assert_eq!(
        of(&replicas[0]).retention.as_ref().map(|r| r.action),
        Some(Action::Deprecate)
    );
    assert_eq!(
        of(&replicas[4]).retention.as_ref().map(|r| r.action),
        Some(Action::Keep)
    );

    // The apply does exactly what the dry run showed.
    let applied = apply(&world.deps, &target, &planned).await.unwrap();
    let shown: Vec<String> = planned
        .iter()
        .filter(|v| v.action != Action::Keep)
        .map(|v| v.image_id.clone())
        .collect();
    assert_eq!(applied.deprecated, shown);
    assert!(applied.retired.is_empty(), "deprecated first");
    let image = world.seed.describe_image(DESTINATION, &replicas[0]).await;
    assert!(image.deprecation_time().is_some(), "EC2 deprecates it");
    assert!(tag_value(image.tags(), "ferry:retire-after").is_some());

    // Within the grace period: waiting; after it: deregistered with its snapshot.
    let waiting = assess(&world.deps, &target).await.unwrap();
    assert_eq!(waiting[4].action, Action::AwaitGrace);
    let snapshots: Vec<String> = image
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string))
        .collect();
    world.aws.advance(7.0 * DAY + 60.0);
    let due = assess(&world.deps, &target).await.unwrap();
    assert_eq!(due[4].action, Action::Deregister);
    let applied = apply(&world.deps, &target, &due).await.unwrap();
    assert_eq!(applied.retired, vec![replicas[0].clone()]);
    let owned: Vec<String> = world
        .seed
        .owned_images(DESTINATION)
        .await
        .iter()
        .filter_map(|i| i.image_id().map(str::to_string))
        .collect();
    assert!(!owned.contains(&replicas[0]), "deregistered");
    assert!(owned.contains(&lookalike), "the look-alike is untouched");
    for kept in &replicas[1..] {
        assert!(owned.contains(kept), "{kept} kept");
    }
    let left = world
        .deps
        .snapshots
        .describe_snapshots(DESTINATION, &snapshots)
        .await
        .unwrap();
    assert!(left.is_empty(), "its snapshots deleted: {left:?}");

    let events: Vec<Value> = world
        .aws
        .events()
        .into_iter()
        .filter(|e| e["detailType"] == RETIRED_EVENT)
        .map(|e| serde_json::from_str(e["detail"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["imageId"], replicas[0].as_str());
    assert_eq!(events[0]["group"], "app=web");
    assert!(events[0]["removed"]
        .as_array()
        .unwrap()
        .contains(&json!(snapshots[0])));
}
