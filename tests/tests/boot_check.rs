//! The boot check against the local AWS through the real SDK adapters: a replica AMI copied
//! under the destination key boots with every volume under that key (EBS gives a volume its
//! snapshot's key) and passes its status checks; a volume under another key and an impaired
//! status check fail by name; every path leaves 0 instances running, and the sweep terminates
//! a boot-check instance that outlived its limit.

use ferry_core::handlers::boot_check;
use ferry_core::Config;
use ferry_tests::replicate_in_process;
use ferry_tests::seed::{tag_value, Key};
use ferry_tests::world::HandlerWorld as World;
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

/// A golden AMI in SOURCE, a destination key behind `alias/prod-ebs-usw2`, and a request that
/// replicates it with a boot check in a subnet of DESTINATION.
async fn world() -> (World, Value, Key) {
    let world = World::start(600.0, Config::default()).await;
    let (root_key, data_key) = (world.seed.key(SOURCE).await, world.seed.key(SOURCE).await);
    let (image, _) = world.seed.golden_image(SOURCE, &root_key, &data_key).await;
    let key = world.seed.key(DESTINATION).await;
    world
        .seed
        .alias(DESTINATION, "alias/prod-ebs-usw2", &key)
        .await;
    let subnet = world.seed.subnet(DESTINATION).await;
    let request = json!({
        "source": {"region": SOURCE, "imageId": image},
        "destination": {"region": DESTINATION, "kmsKeyId": "alias/prod-ebs-usw2",
                        "bootCheck": {"subnetId": subnet, "instanceType": "t3.micro"}}
    });
    (world, request, key)
}

/// Instances of DESTINATION neither terminated nor shutting down.
async fn running(world: &World) -> Vec<(String, String)> {
    // Let shutting-down instances finish terminating.
    world.aws.advance(5.0);
    world
        .seed
        .instances(DESTINATION)
        .await
        .into_iter()
        .filter(|(_, state)| state != "terminated")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_boots_with_every_volume_under_the_destination_key_and_nothing_is_left_running() {
    let (world, mut request, key) = world().await;
    request["destination"]["ssmParameter"] = json!("/golden/web/ami");
    let done = replicate_in_process(&world.aws, &world.deps, &request)
        .await
        .unwrap();
    let check = &done["evidence"]["bootCheck"];
    assert_eq!(check["status"], "passed", "{check}");
    let volumes = check["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 2, "root and data volume: {check}");
    for volume in volumes {
        assert_eq!(volume["encrypted"], true);
        assert_eq!(volume["kmsKeyId"], key.arn.as_str(), "{volume}");
    }
    assert!(check["secondsToRunning"].as_u64().is_some());
    assert!(check["secondsToStatusOk"].as_u64() >= check["secondsToRunning"].as_u64());
    assert_eq!(running(&world).await, vec![], "0 instances left running");
    assert_eq!(
        world.seed.instances(DESTINATION).await.len(),
        1,
        "one launch"
    );

    let replica = done["copy"]["destinationId"].as_str().unwrap();
    let image = world.seed.describe_image(DESTINATION, replica).await;
    let checked = tag_value(image.tags(), "ferry:boot-checked").expect("ferry:boot-checked");
    assert!(
        checked.starts_with("passed ") && checked.contains("t3.micro"),
        "{checked}"
    );

    // The instance carried ferry's tags from creation, and had no public address.
    let instance = &world
        .seed
        .ec2(DESTINATION)
        .describe_instances()
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .clone();
    assert_eq!(
        tag_value(instance.tags(), "ferry:managed-by").as_deref(),
        Some("ferry")
    );
    assert_eq!(
        tag_value(instance.tags(), "ferry:boot-check-for").as_deref(),
        Some(replica)
    );
    assert_eq!(instance.public_ip_address(), None);

    // The audit shows the last boot check and the parameter that holds the replica.
    let audited = ferry_core::audit::audit(&world.deps, &[DESTINATION.to_string()], &[])
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].boot_checked.as_deref(), Some(checked.as_str()));
    assert_eq!(audited[0].ssm_parameter.as_deref(), Some("/golden/web/ami"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_that_comes_up_under_another_key_fails_by_name_and_nothing_is_left_running() {
    let (world, request, _) = world().await;
    let other = world.seed.key(DESTINATION).await;
    world.aws.configure(
        json!({"launchVolumeKey": {"kmsKeyId": other.arn, "region": DESTINATION, "deviceName": "/dev/xvdb"}}),
    );
    let error = replicate_in_process(&world.aws, &world.deps, &request)
        .await
        .unwrap_err();
    assert_eq!(error.name(), "BootCheckWrongKey", "{error}");
    assert!(error.to_string().contains("/dev/xvdb"), "{error}");
    assert!(error.to_string().contains(&other.arn), "{error}");
    assert_eq!(running(&world).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_status_checks_fail_by_name_and_nothing_is_left_running() {
    let (world, request, _) = world().await;
    world
        .aws
        .configure(json!({"impairStatusChecks": {"times": 1, "check": "instance"}}));
    let error = replicate_in_process(&world.aws, &world.deps, &request)
        .await
        .unwrap_err();
    assert_eq!(error.name(), "BootCheckStatusFailed", "{error}");
    assert_eq!(running(&world).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subnet_the_region_does_not_have_is_a_refused_launch_naming_ec2s_code() {
    let (world, mut request, _) = world().await;
    request["destination"]["bootCheck"]["subnetId"] = json!("subnet-0badbadbadbadbad0");
    let error = replicate_in_process(&world.aws, &world.deps, &request)
        .await
        .unwrap_err();
    assert_eq!(error.name(), "BootCheckLaunchRefused", "{error}");
    assert!(error.to_string().contains("InvalidSubnetID"), "{error}");
    assert_eq!(running(&world).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_terminates_a_boot_check_instance_past_its_limit() {
    let (world, request, _) = world().await;
    // A check whose execution stopped mid-boot: launched, never looked at again.
    let copied = replicate_in_process(&world.aws, &world.deps, &{
        let mut r = request.clone();
        r["destination"]
            .as_object_mut()
            .unwrap()
            .remove("bootCheck");
        r
    })
    .await
    .unwrap();
    let mut document = copied;
    document["destination"]["bootCheck"] = request["destination"]["bootCheck"].clone();
    let launched = boot_check::step(&world.deps, serde_json::from_value(document).unwrap(), None)
        .await
        .unwrap();
    let instance = launched.evidence.boot_check.unwrap().instance_id;
    let sweep = json!({"operation": "sweep", "regions": [DESTINATION]});

    let early = boot_check::handle(&world.deps, sweep.clone())
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(early).unwrap()["terminated"],
        json!([])
    );
    // Past its 15-minute limit and the sweep's 15-minute grace.
    world.aws.advance(31.0 * 60.0);
    let late = boot_check::handle(&world.deps, sweep).await.unwrap();
    let terminated = serde_json::to_value(late).unwrap()["terminated"].clone();
    assert_eq!(
        terminated[0]["instanceId"],
        instance.as_str(),
        "{terminated}"
    );
    assert_eq!(running(&world).await, vec![]);
}
