//! wire-destination on the port fakes: a verified replica AMI gets a new version of each named
//! launch template (the replica as ImageId, every EBS mapping under the destination key) and
//! the SSM parameter; a retried step creates nothing new; a missing template and a parameter
//! SSM dropped fail by name; an unverified document is never wired.

use ferry_core::fakes::{fixture, FakeWorld};
use ferry_core::handlers::wire_destination::handle;
use ferry_core::ports::{ParameterInfo, TemplateEbs, TemplateMapping};
use ferry_core::rules::wiring::all_under_key;
use ferry_core::Config;
use serde_json::{json, Value};

const REGION: &str = "us-west-2";
const REPLICA: &str = "ami-0fedcba9876543210";
const OLD_AMI: &str = "ami-0aaaaaaaaaaaaaaa0";
const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const PARAMETER: &str = "/golden/web/ami";

/// A verified AMI replica whose destination names templates `web` (made default) and `batch`,
/// and the parameter `/golden/web/ami`.
fn verified() -> Value {
    fixture("wire-destination/verified-ami.json")
}

/// `$Latest` of each template: a root volume under an old key, a data volume unencrypted, and
/// an instance-store volume.
fn mappings() -> Vec<TemplateMapping> {
    vec![
        TemplateMapping {
            device_name: Some("/dev/xvda".into()),
            ebs: Some(TemplateEbs {
                encrypted: Some(true),
                kms_key_id: Some("alias/old-key".into()),
                volume_size: Some(30),
                volume_type: Some("gp3".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        TemplateMapping {
            device_name: Some("/dev/xvdb".into()),
            ebs: Some(TemplateEbs {
                volume_size: Some(100),
                ..Default::default()
            }),
            ..Default::default()
        },
        TemplateMapping {
            device_name: Some("/dev/sdc".into()),
            virtual_name: Some("ephemeral0".into()),
            ..Default::default()
        },
    ]
}

/// The replica and its snapshots in the destination Region, and both templates there.
fn world() -> FakeWorld {
    let world = FakeWorld::new(Config::default());
    world.ec2.add_verified_replica(&verified());
    for name in ["web", "batch"] {
        world
            .launch_templates
            .add_template(REGION, name, OLD_AMI, mappings());
    }
    world
}

fn parameter(world: &FakeWorld) -> Option<ParameterInfo> {
    world.parameters.parameter(REGION, PARAMETER)
}

#[tokio::test]
async fn a_new_version_launches_the_replica_with_every_ebs_mapping_under_the_destination_key() {
    let world = world();
    let wired = handle(&world.deps, verified()).await.unwrap();

    for name in ["web", "batch"] {
        let template = world.launch_templates.template(REGION, name).unwrap();
        assert_eq!(template.versions.len(), 2, "{name}: one new version");
        let new = &template.versions[1];
        assert_eq!(new.image_id.as_deref(), Some(REPLICA));
        assert!(all_under_key(&new.block_device_mappings, KEY), "{name}");
        assert_eq!(
            new.block_device_mappings.len(),
            3,
            "every mapping given back"
        );
        assert_eq!(
            new.block_device_mappings[0]
                .ebs
                .as_ref()
                .unwrap()
                .volume_size,
            Some(30)
        );
        assert_eq!(new.block_device_mappings[2], mappings()[2]);
    }
    assert_eq!(
        world
            .launch_templates
            .template(REGION, "web")
            .unwrap()
            .info
            .default_version,
        2,
        "web asked for the default"
    );
    assert_eq!(
        world
            .launch_templates
            .template(REGION, "batch")
            .unwrap()
            .info
            .default_version,
        1,
        "batch did not"
    );
    let stored = parameter(&world).unwrap();
    assert_eq!((stored.value.as_str(), stored.version), (REPLICA, 1));

    let evidence = serde_json::to_value(&wired.evidence.wiring).unwrap();
    assert_eq!(
        evidence,
        json!({
            "launchTemplates": [
                {"name": "web", "templateId": "lt-00000000000000001", "version": 2, "isDefault": true, "created": true},
                {"name": "batch", "templateId": "lt-00000000000000002", "version": 2, "isDefault": false, "created": true}
            ],
            "ssmParameter": {"name": PARAMETER, "version": 1, "written": true}
        })
    );
}

#[tokio::test]
async fn a_retried_step_creates_no_second_version_and_writes_the_parameter_once() {
    let world = world();
    let first = handle(&world.deps, verified()).await.unwrap();
    let again = handle(&world.deps, verified()).await.unwrap();

    for name in ["web", "batch"] {
        assert_eq!(
            world
                .launch_templates
                .template(REGION, name)
                .unwrap()
                .versions
                .len(),
            2,
            "{name}"
        );
    }
    assert_eq!(
        world
            .launch_templates
            .calls_of("CreateLaunchTemplateVersion"),
        2,
        "one per template, on the first run only"
    );
    assert_eq!(world.launch_templates.calls_of("ModifyLaunchTemplate"), 1);
    assert_eq!(world.parameters.calls_of("PutParameter"), 1);
    assert_eq!(parameter(&world).unwrap().version, 1);

    let wiring = again.evidence.wiring.unwrap();
    let earlier = first.evidence.wiring.unwrap();
    for (retried, first) in wiring
        .launch_templates
        .iter()
        .zip(&earlier.launch_templates)
    {
        assert_eq!(
            (retried.version, retried.is_default, retried.created),
            (first.version, first.is_default, false)
        );
    }
    assert_eq!(
        wiring.ssm_parameter.map(|p| (p.version, p.written)),
        Some((1, false))
    );
}

#[tokio::test]
async fn the_client_token_answers_the_same_version_when_the_lookup_misses_it() {
    let world = world();
    handle(&world.deps, verified()).await.unwrap();
    // The version's description is gone from the lookup (as if DescribeLaunchTemplateVersions
    // lagged): the retried create carries the same token and parameters, and gets it back.
    for template in world
        .launch_templates
        .templates
        .lock()
        .unwrap()
        .get_mut(REGION)
        .unwrap()
    {
        template.versions[1].description = None;
    }
    let again = handle(&world.deps, verified()).await.unwrap();
    let wiring = again.evidence.wiring.unwrap();
    assert!(wiring
        .launch_templates
        .iter()
        .all(|t| t.version == 2 && t.created));
    assert_eq!(
        world
            .launch_templates
            .template(REGION, "web")
            .unwrap()
            .versions
            .len(),
        2
    );
}

#[tokio::test]
async fn a_missing_template_is_launch_template_not_found_and_ferry_creates_none() {
    let world = world();
    let mut document = verified();
    document["destination"]["launchTemplates"] = json!([{"name": "web"}, {"name": "no-such"}]);
    let error = handle(&world.deps, document).await.unwrap_err();
    assert_eq!(error.name(), "LaunchTemplateNotFound");
    assert!(error.to_string().contains("\"no-such\""), "{error}");
    assert!(error.to_string().contains(REGION), "{error}");
    assert!(world.launch_templates.template(REGION, "no-such").is_none());
    assert_eq!(
        world.parameters.calls_of("PutParameter"),
        0,
        "the step stopped at the missing template"
    );
}

#[tokio::test]
async fn a_parameter_ssm_drops_is_parameter_not_written() {
    let world = world();
    // SSM validates aws:ec2:image asynchronously: a value it rejects answers success and
    // changes nothing.
    world
        .parameters
        .validation_fails
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut document = verified();
    document["destination"]["launchTemplates"] = json!([]);
    let error = handle(&world.deps, document).await.unwrap_err();
    assert_eq!(error.name(), "ParameterNotWritten");
    assert!(error.is_retryable(), "validation may still be running");
    assert!(error.to_string().contains("no such parameter"), "{error}");
    assert_eq!(world.parameters.calls_of("PutParameter"), 1);
    assert!(parameter(&world).is_none());
}

#[tokio::test]
async fn a_parameter_already_holding_the_replica_is_not_written_again() {
    let world = world();
    world.parameters.parameters.lock().unwrap().insert(
        (REGION.into(), PARAMETER.into()),
        ParameterInfo {
            value: REPLICA.into(),
            version: 7,
            data_type: Some("aws:ec2:image".into()),
        },
    );
    let wired = handle(&world.deps, verified()).await.unwrap();
    assert_eq!(world.parameters.calls_of("PutParameter"), 0);
    let evidence = wired.evidence.wiring.unwrap().ssm_parameter.unwrap();
    assert_eq!((evidence.version, evidence.written), (7, false));
}

#[tokio::test]
async fn an_unverified_document_is_never_wired() {
    let world = world();
    let mut document = verified();
    document["evidence"]
        .as_object_mut()
        .unwrap()
        .remove("verification");
    let error = handle(&world.deps, document).await.unwrap_err();
    assert_eq!(error.name(), "InvalidRequest");
    assert!(
        error.to_string().contains("evidence.verification"),
        "{error}"
    );

    let mut other_key = verified();
    other_key["evidence"]["verification"]["keyArn"] =
        json!("arn:aws:kms:us-west-2:111122223333:key/other");
    let error = handle(&world.deps, other_key).await.unwrap_err();
    assert_eq!(error.name(), "InvalidRequest");

    assert_eq!(world.launch_templates.calls.lock().unwrap().len(), 0);
    assert_eq!(world.parameters.calls.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn a_document_without_wiring_passes_through_without_a_call() {
    let world = world();
    let document = fixture("tag-lineage/verified-ami.json");
    let output = handle(&world.deps, document.clone()).await.unwrap();
    assert_eq!(serde_json::to_value(&output).unwrap(), document);
    assert_eq!(world.launch_templates.calls.lock().unwrap().len(), 0);
    assert_eq!(world.parameters.calls.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn a_snapshot_replication_with_wiring_is_an_invalid_request() {
    let world = world();
    let mut document = verified();
    document["source"] = json!({"region": "us-east-1", "snapshotId": "snap-0aaaaaaaaaaaaaaaa"});
    let error = handle(&world.deps, document).await.unwrap_err();
    assert_eq!(error.name(), "InvalidRequest");
    assert!(
        error.to_string().contains("destination.launchTemplates"),
        "{error}"
    );
    assert_eq!(world.launch_templates.calls.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn a_rerun_with_a_new_replica_gets_a_version_of_its_own() {
    let world = world();
    handle(&world.deps, verified()).await.unwrap();
    let mut rerun = verified();
    let new_replica = "ami-0bbbbbbbbbbbbbbb1";
    rerun["copy"]["destinationId"] = json!(new_replica);
    world.ec2.add_image(
        REGION,
        ferry_core::ports::ImageInfo {
            image_id: new_replica.into(),
            state: "available".into(),
            ..Default::default()
        },
    );
    let wired = handle(&world.deps, rerun).await.unwrap();
    let web = &wired.evidence.wiring.as_ref().unwrap().launch_templates[0];
    assert_eq!((web.version, web.created, web.is_default), (3, true, true));
    assert_eq!(parameter(&world).unwrap().value, new_replica);
    assert_eq!(parameter(&world).unwrap().version, 2);
}

#[tokio::test]
async fn a_replica_deregistered_since_verification_is_never_wired() {
    let world = world();
    world.ec2.images.lock().unwrap().clear();
    let error = handle(&world.deps, verified()).await.unwrap_err();
    assert_eq!(error.name(), "ReplicaIncomplete");
    assert!(error.to_string().contains("not found"), "{error}");
    assert_eq!(world.launch_templates.calls.lock().unwrap().len(), 0);
    assert_eq!(world.parameters.calls.lock().unwrap().len(), 0);
}
