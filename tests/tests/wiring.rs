//! Destination wiring against the local AWS through the real SDK adapters: a verified replica
//! AMI gets a new version of each named launch template (ImageId the replica, every EBS mapping
//! under the destination key; the default moved when asked) and its SSM parameter
//! (`aws:ec2:image`), once; a missing template and a value SSM drops fail by name.

use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    RequestLaunchTemplateData, VolumeType,
};
use ferry_core::handlers::wire_destination;
use ferry_core::ports::NewTemplateVersion;
use ferry_core::{Config, FerryError};
use ferry_tests::seed::Key;
use ferry_tests::world::HandlerWorld as World;
use ferry_tests::{poll_until_settled, run_step, Step};
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";
const PARAMETER: &str = "/golden/web/ami";

/// The local AWS with a golden AMI replicated to DESTINATION under `alias/prod-ebs-usw2`, and
/// verified; the document asks for templates `web` (made default) and `batch`, and the
/// parameter. Both templates exist, launching an older AMI with a root volume under another
/// key and an unencrypted data volume.
async fn verified_replica() -> (World, Value, Key) {
    let world = World::start(600.0, Config::default()).await;
    let (root_key, data_key) = (world.seed.key(SOURCE).await, world.seed.key(SOURCE).await);
    let (image, _) = world.seed.golden_image(SOURCE, &root_key, &data_key).await;
    let key = world.seed.key(DESTINATION).await;
    world
        .seed
        .alias(DESTINATION, "alias/prod-ebs-usw2", &key)
        .await;
    let old_key = world.seed.key(DESTINATION).await;
    for name in ["web", "batch"] {
        template(&world, name, &old_key).await;
    }
    let request = json!({
        "source": {"region": SOURCE, "imageId": image},
        "destination": {"region": DESTINATION, "kmsKeyId": "alias/prod-ebs-usw2",
                        "launchTemplates": [{"name": "web", "setDefault": true}, {"name": "batch"}],
                        "ssmParameter": PARAMETER}
    });
    let started = run_step(Step::StartCopy, &world.deps, &request)
        .await
        .unwrap();
    let (copied, _) = poll_until_settled(&world.aws, &world.deps, started)
        .await
        .unwrap();
    assert_eq!(copied["copy"]["status"], "completed");
    let verified = run_step(Step::VerifyEncryption, &world.deps, &copied)
        .await
        .unwrap();
    (world, verified, key)
}

async fn template(world: &World, name: &str, old_key: &Key) {
    let ebs = |size: i32, key: Option<&Key>| {
        LaunchTemplateEbsBlockDeviceRequest::builder()
            .volume_size(size)
            .volume_type(VolumeType::Gp3)
            .set_encrypted(key.map(|_| true))
            .set_kms_key_id(key.map(|k| k.arn.clone()))
            .build()
    };
    let mapping = |device: &str, ebs| {
        LaunchTemplateBlockDeviceMappingRequest::builder()
            .device_name(device)
            .ebs(ebs)
            .build()
    };
    world
        .seed
        .ec2(DESTINATION)
        .create_launch_template()
        .launch_template_name(name)
        .version_description("hand-made")
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id("ami-0aaaaaaaaaaaaaaa0")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .block_device_mappings(mapping("/dev/xvda", ebs(30, Some(old_key))))
                .block_device_mappings(mapping("/dev/xvdb", ebs(100, None)))
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
}

async fn wire(world: &World, document: &Value) -> Result<Value, FerryError> {
    wire_destination::handle(&world.deps, document.clone())
        .await
        .map(|wired| serde_json::to_value(wired).unwrap())
}

/// (version number, ImageId, each EBS mapping's (device, encrypted, key)) of every version.
async fn versions(world: &World, name: &str) -> Vec<(i64, String, Vec<(String, bool, String)>)> {
    let output = world
        .seed
        .ec2(DESTINATION)
        .describe_launch_template_versions()
        .launch_template_name(name)
        .send()
        .await
        .expect("DescribeLaunchTemplateVersions");
    let mut versions: Vec<_> = output
        .launch_template_versions()
        .iter()
        .map(|v| {
            let data = v.launch_template_data().unwrap();
            (
                v.version_number().unwrap(),
                data.image_id().unwrap_or_default().to_string(),
                data.block_device_mappings()
                    .iter()
                    .map(|m| {
                        let ebs = m.ebs().unwrap();
                        (
                            m.device_name().unwrap_or_default().to_string(),
                            ebs.encrypted().unwrap_or(false),
                            ebs.kms_key_id().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    versions.sort();
    versions
}

async fn default_version(world: &World, name: &str) -> i64 {
    world
        .seed
        .ec2(DESTINATION)
        .describe_launch_templates()
        .launch_template_names(name)
        .send()
        .await
        .expect("DescribeLaunchTemplates")
        .launch_templates()[0]
        .default_version_number()
        .unwrap()
}

async fn parameter(world: &World) -> Option<(String, i64, Option<String>)> {
    world
        .deps
        .parameters
        .get(DESTINATION, PARAMETER)
        .await
        .unwrap()
        .map(|p| (p.value, p.version, p.data_type))
}

#[tokio::test]
async fn a_verified_replica_gets_a_launch_template_version_under_the_destination_key_and_its_parameter(
) {
    let (world, verified, key) = verified_replica().await;
    let replica = verified["copy"]["destinationId"].as_str().unwrap();
    let wired = wire(&world, &verified).await.unwrap();

    for name in ["web", "batch"] {
        let versions = versions(&world, name).await;
        assert_eq!(versions.len(), 2, "{name}: {versions:?}");
        let (number, image, mappings) = &versions[1];
        assert_eq!((*number, image.as_str()), (2, replica), "{name}");
        assert_eq!(
            mappings,
            &vec![
                ("/dev/xvda".to_string(), true, key.arn.clone()),
                ("/dev/xvdb".to_string(), true, key.arn.clone()),
            ],
            "{name}: every EBS mapping under the destination key"
        );
    }
    assert_eq!(default_version(&world, "web").await, 2);
    assert_eq!(default_version(&world, "batch").await, 1);
    assert_eq!(
        parameter(&world).await,
        Some((replica.to_string(), 1, Some("aws:ec2:image".to_string())))
    );
    let evidence = &wired["evidence"]["wiring"];
    assert_eq!(evidence["launchTemplates"][0]["version"], 2);
    assert_eq!(evidence["launchTemplates"][0]["isDefault"], true);
    assert!(evidence["launchTemplates"][0]["templateId"]
        .as_str()
        .unwrap()
        .starts_with("lt-"));
    assert_eq!(evidence["launchTemplates"][1]["isDefault"], false);
    assert_eq!(
        evidence["ssmParameter"],
        json!({"name": PARAMETER, "version": 1, "written": true})
    );
}

#[tokio::test]
async fn a_retried_wiring_creates_no_second_version_and_writes_the_parameter_once() {
    let (world, verified, _) = verified_replica().await;
    let first = wire(&world, &verified).await.unwrap();
    let again = wire(&world, &verified).await.unwrap();

    for name in ["web", "batch"] {
        assert_eq!(versions(&world, name).await.len(), 2, "{name}");
    }
    assert_eq!(world.aws.count_calls("CreateLaunchTemplateVersion"), 2);
    assert_eq!(world.aws.count_calls("PutParameter"), 1);
    assert_eq!(parameter(&world).await.unwrap().1, 1);
    assert_eq!(
        again["evidence"]["wiring"]["launchTemplates"][0]["version"],
        first["evidence"]["wiring"]["launchTemplates"][0]["version"]
    );
    assert_eq!(
        again["evidence"]["wiring"]["launchTemplates"][0]["created"],
        false
    );
    assert_eq!(
        again["evidence"]["wiring"]["ssmParameter"]["written"],
        false
    );
}

#[tokio::test]
async fn the_same_client_token_gets_the_same_version_from_aws_and_other_parameters_are_refused() {
    let (world, verified, key) = verified_replica().await;
    let replica = verified["copy"]["destinationId"].as_str().unwrap();
    let info = world
        .deps
        .launch_templates
        .describe_template(DESTINATION, "web")
        .await
        .unwrap()
        .unwrap();
    let request = NewTemplateVersion {
        template_id: info.template_id.clone(),
        source_version: "$Latest".into(),
        client_token: "ferry-lt-test-token".into(),
        description: format!("ferry fr-test: {replica} under {}", key.arn),
        image_id: replica.into(),
        block_device_mappings: vec![],
    };
    let templates = &world.deps.launch_templates;
    let first = templates
        .create_version(DESTINATION, &request)
        .await
        .unwrap();
    let again = templates
        .create_version(DESTINATION, &request)
        .await
        .unwrap();
    assert_eq!((first, again), (2, 2));
    assert_eq!(versions(&world, "web").await.len(), 2);
    let other = NewTemplateVersion {
        image_id: "ami-0bbbbbbbbbbbbbbb0".into(),
        ..request
    };
    let refused = templates
        .create_version(DESTINATION, &other)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "IdempotentParameterMismatch");
}

#[tokio::test]
async fn a_missing_template_is_launch_template_not_found_and_nothing_is_wired() {
    let (world, mut verified, _) = verified_replica().await;
    verified["destination"]["launchTemplates"] = json!([{"name": "no-such-template"}]);
    let error = wire(&world, &verified).await.unwrap_err();
    assert_eq!(error.name(), "LaunchTemplateNotFound");
    assert!(error.to_string().contains("no-such-template"), "{error}");
    assert_eq!(world.aws.count_calls("CreateLaunchTemplateVersion"), 0);
    assert_eq!(world.aws.count_calls("PutParameter"), 0);
    assert_eq!(parameter(&world).await, None);
}

#[tokio::test]
async fn a_replica_deregistered_since_verification_is_never_wired_and_ssm_would_have_dropped_it_silently(
) {
    let (world, verified, _) = verified_replica().await;
    // An earlier replica the parameter holds, as a previous replication left it.
    let snapshot = world.seed.snapshot(DESTINATION, None, 8).await;
    let earlier = world
        .seed
        .image(DESTINATION, "earlier", &[("/dev/xvda", &snapshot)])
        .await;
    let parameters = &world.deps.parameters;
    parameters
        .put_image_id(DESTINATION, PARAMETER, &earlier)
        .await
        .unwrap();
    assert_eq!(parameter(&world).await.unwrap().0, earlier);
    let replica = verified["copy"]["destinationId"].as_str().unwrap();
    world
        .seed
        .ec2(DESTINATION)
        .deregister_image()
        .image_id(replica)
        .send()
        .await
        .expect("DeregisterImage");

    let error = wire(&world, &verified).await.unwrap_err();
    assert_eq!(error.name(), "ReplicaIncomplete");
    assert!(error.to_string().contains(replica), "{error}");
    assert_eq!(world.aws.count_calls("CreateLaunchTemplateVersion"), 0);
    assert_eq!(world.aws.count_calls("PutParameter"), 1, "the seeding only");

    // Why wire-destination reads the parameter back: SSM answers success for an image it
    // cannot validate, and keeps the value it had.
    parameters
        .put_image_id(DESTINATION, PARAMETER, replica)
        .await
        .expect("PutParameter answers success");
    let (held, version, _) = parameter(&world).await.unwrap();
    assert_eq!((held, version), (earlier, 1), "unchanged");
}
