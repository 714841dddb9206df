//! "Exactly one key" as AWS defines it since 2025, on the port fakes: a replica snapshot with
//! another KMS key associated (AssociateKmsKeyId) fails verification and is drift to the audit;
//! an AMI replica must be a copy of the document's source by AWS's own lineage record
//! (DescribeImages SourceImageId/SourceImageRegion), whatever its tags claim.

use ferry_core::audit::{audit, Flag};
use ferry_core::fakes::FakeWorld;
use ferry_core::handlers::verify_encryption;
use ferry_core::ports::{DeviceSnapshot, ImageInfo, KeyInfo, SnapshotInfo, Tag};
use ferry_core::rules::lineage;
use ferry_core::{Config, FerryError};
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";
const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/destination";
const EXTRA: &str = "arn:aws:kms:us-west-2:111122223333:key/extra";
const SOURCE_IMAGE: &str = "ami-0000000000000source";
const REPLICA: &str = "ami-000000000000replica";
const REPLICA_SNAPSHOT: &str = "snap-00000000000replica";

/// A source AMI, its replica (AWS records it as CopyImage's copy of `recorded_source`) under
/// the destination key, tagged as ferry tags a verified replica, and the key itself.
fn world(recorded_source: &str, associated: &[&str]) -> FakeWorld {
    let world = FakeWorld::new(Config::default());
    world.keys.add_key(
        DESTINATION,
        KeyInfo {
            arn: KEY.into(),
            key_id: "destination".into(),
            state: "Enabled".into(),
            spec: "SYMMETRIC_DEFAULT".into(),
            usage: "ENCRYPT_DECRYPT".into(),
            multi_region: false,
        },
        &["alias/dr"],
    );
    let device = |snapshot_id: &str| DeviceSnapshot {
        device_name: "/dev/xvda".into(),
        snapshot_id: snapshot_id.into(),
        encrypted: true,
    };
    world.ec2.add_image(
        SOURCE,
        ImageInfo {
            image_id: SOURCE_IMAGE.into(),
            state: "available".into(),
            root_device_type: "ebs".into(),
            snapshots: vec![device("snap-0000000000000source")],
            ..Default::default()
        },
    );
    let tags = vec![
        Tag::new(lineage::MANAGED_BY, "ferry"),
        Tag::new(lineage::SOURCE_REGION, SOURCE),
        Tag::new(lineage::SOURCE_ID, SOURCE_IMAGE),
        Tag::new(lineage::KEY_ARN, KEY),
        Tag::new(lineage::VERIFIED_AT, "2026-11-30T00:00:00Z"),
    ];
    world.ec2.add_image(
        DESTINATION,
        ImageInfo {
            image_id: REPLICA.into(),
            state: "available".into(),
            root_device_type: "ebs".into(),
            snapshots: vec![device(REPLICA_SNAPSHOT)],
            tags: tags.clone(),
            source_image_region: Some(SOURCE.into()),
            source_image_id: Some(recorded_source.into()),
            ..Default::default()
        },
    );
    world.ec2.add_snapshot(
        DESTINATION,
        SnapshotInfo {
            snapshot_id: REPLICA_SNAPSHOT.into(),
            state: "completed".into(),
            encrypted: true,
            kms_key_id: Some(KEY.into()),
            associated_kms_key_ids: associated.iter().map(|k| k.to_string()).collect(),
            tags,
            ..Default::default()
        },
    );
    world
}

/// The replication document as check-copy hands it to verify-encryption.
fn copied() -> Value {
    json!({
        "replicationId": "fr-00000000000000000001",
        "source": {"region": SOURCE, "imageId": SOURCE_IMAGE},
        "destination": {"region": DESTINATION, "kmsKeyId": "alias/dr"},
        "key": {"arn": KEY, "keyId": "destination", "alias": "alias/dr", "multiRegion": false},
        "sourceSnapshots": [{"snapshotId": "snap-0000000000000source", "deviceName": "/dev/xvda", "encrypted": true, "kmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/source"}],
        "copy": {"destinationId": REPLICA, "status": "completed", "nextCheckSeconds": 30, "startedAt": 1_764_500_000u64, "checks": 3}
    })
}

#[tokio::test]
async fn a_replica_snapshot_with_another_key_associated_fails_verification_naming_snapshot_and_key()
{
    let world = world(SOURCE_IMAGE, &[EXTRA]);
    match verify_encryption::handle(&world.deps, copied())
        .await
        .unwrap_err()
    {
        error @ FerryError::ReplicaAssociatedKey { .. } => {
            let message = error.to_string();
            assert!(
                message.contains(&format!("{REPLICA_SNAPSHOT} (associated {EXTRA})")),
                "{message}"
            );
            assert_eq!(error.name(), "ReplicaAssociatedKey");
        }
        other => panic!("expected ReplicaAssociatedKey, got {other:?}"),
    }
}

#[tokio::test]
async fn a_replica_under_exactly_the_key_and_copied_from_the_source_records_awss_lineage_as_evidence(
) {
    let world = world(SOURCE_IMAGE, &[]);
    let verified = verify_encryption::handle(&world.deps, copied())
        .await
        .unwrap();
    let evidence = serde_json::to_value(&verified.evidence).unwrap();
    assert_eq!(
        evidence["verification"]["awsLineage"],
        json!({"sourceImageId": SOURCE_IMAGE, "sourceImageRegion": SOURCE})
    );
}

#[tokio::test]
async fn a_replica_aws_records_as_a_copy_of_another_ami_fails_verification_whatever_its_tags_say() {
    let world = world("ami-00000000000000other", &[]);
    match verify_encryption::handle(&world.deps, copied())
        .await
        .unwrap_err()
    {
        FerryError::ReplicaLineageMismatch {
            destination_id,
            expected,
            recorded,
        } => {
            assert_eq!(destination_id, REPLICA);
            assert_eq!(expected, format!("{SOURCE}/{SOURCE_IMAGE}"));
            assert_eq!(recorded, format!("{SOURCE}/ami-00000000000000other"));
        }
        other => panic!("expected ReplicaLineageMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn the_audit_flags_an_associated_key_as_drift_and_tags_that_awss_lineage_contradicts() {
    let clean = world(SOURCE_IMAGE, &[]);
    let audited = audit(&clean.deps, &[DESTINATION.to_string()], &[])
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].flags, vec![], "a compliant replica is clean");
    assert_eq!(
        audited[0].aws_source.as_deref(),
        Some("us-east-1/ami-0000000000000source")
    );

    let tampered = world("ami-00000000000000other", &[EXTRA]);
    let audited = audit(&tampered.deps, &[DESTINATION.to_string()], &[])
        .await
        .unwrap();
    assert_eq!(
        audited[0].flags,
        vec![
            Flag::AssociatedKey {
                snapshot_id: REPLICA_SNAPSHOT.into(),
                key_arns: vec![EXTRA.into()]
            },
            Flag::LineageContradicted {
                claimed: format!("{SOURCE}/{SOURCE_IMAGE}"),
                recorded: format!("{SOURCE}/ami-00000000000000other"),
            }
        ]
    );
    assert_eq!(audited[0].snapshots[0].associated_key_arns, vec![EXTRA]);
}
