//! "Exactly one key" as AWS defines it since 2025, proved on the local AWS through the real SDK
//! clients: a replica tampered after replication the way only AWS's own APIs can show it.
//! AssociateKmsKeyId gives a replica snapshot a second key (read back from DescribeSnapshots'
//! raw `associatedKmsKeySet`, which aws-sdk-ec2 does not model), and forged `ferry:source-*`
//! tags meet the lineage AWS recorded for CopyImage (DescribeImages SourceImageId/Region).

use ferry_core::audit::{audit, Flag, ReplicaAudit};
use ferry_core::error::SnapshotFinding;
use ferry_core::ports::Tag;
use ferry_core::rules::lineage;
use ferry_core::{Config, FerryError};
use ferry_tests::world::HandlerWorld as World;
use ferry_tests::{run_step, Step};
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

/// A two-snapshot AMI in the source Region, replicated through the five steps under a key of
/// the destination Region: (the world, the source image, the final document).
async fn replicated() -> (World, String, Value) {
    let world = World::start(600.0, Config::default()).await;
    let source_key = world.seed.key(SOURCE).await;
    let (image, _) = world
        .seed
        .golden_image(SOURCE, &source_key, &source_key)
        .await;
    let key = world.seed.key(DESTINATION).await;
    let request = json!({"source": {"region": SOURCE, "imageId": image}, "destination": {"region": DESTINATION, "kmsKeyId": key.arn}});
    let done = ferry_tests::replicate_in_process(&world.aws, &world.deps, &request)
        .await
        .unwrap();
    (world, image, done)
}

fn replica_snapshots(document: &Value) -> Vec<String> {
    document["evidence"]["verification"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshotId"].as_str().unwrap().to_string())
        .collect()
}

async fn audited(world: &World) -> Vec<ReplicaAudit> {
    audit(&world.deps, &[DESTINATION.to_string()], &[])
        .await
        .unwrap()
}

#[tokio::test]
async fn a_replica_snapshot_given_another_kms_key_fails_re_verification_and_is_drift_until_the_key_is_disassociated(
) {
    let (world, _, done) = replicated().await;
    assert!(
        audited(&world).await[0].flags.is_empty(),
        "a fresh replica is clean"
    );
    let data_snapshot = replica_snapshots(&done)[1].clone();
    let extra = world.seed.key(DESTINATION).await;
    world
        .aws
        .associate_kms_key(DESTINATION, &data_snapshot, &extra.id);

    match run_step(Step::VerifyEncryption, &world.deps, &done)
        .await
        .unwrap_err()
    {
        FerryError::ReplicaAssociatedKey {
            findings,
            expected_key_arn,
            ..
        } => {
            assert_eq!(expected_key_arn, done["key"]["arn"].as_str().unwrap());
            assert_eq!(
                findings,
                vec![SnapshotFinding {
                    snapshot_id: data_snapshot.clone(),
                    problem: format!("associated {}", extra.arn),
                }],
                "AWS reports the associated key by its ARN"
            );
        }
        other => panic!("expected ReplicaAssociatedKey, got {other:?}"),
    }
    let flags = audited(&world).await.remove(0).flags;
    assert_eq!(
        flags,
        vec![Flag::AssociatedKey {
            snapshot_id: data_snapshot.clone(),
            key_arns: vec![extra.arn.clone()],
        }]
    );

    world
        .aws
        .disassociate_kms_key(DESTINATION, &data_snapshot, &extra.arn);
    run_step(Step::VerifyEncryption, &world.deps, &done)
        .await
        .expect("under exactly the destination key again");
    assert!(audited(&world).await[0].flags.is_empty());
}

#[tokio::test]
async fn a_replica_whose_document_or_tags_claim_another_source_is_caught_by_the_lineage_aws_recorded(
) {
    let (world, image, done) = replicated().await;
    let replica = done["copy"]["destinationId"].as_str().unwrap().to_string();
    assert_eq!(
        done["evidence"]["verification"]["awsLineage"],
        json!({"sourceImageId": image, "sourceImageRegion": SOURCE}),
        "the evidence records AWS's own lineage"
    );

    // Another AMI of the same shape, which the replica is not a copy of.
    let other_key = world.seed.key(SOURCE).await;
    let (other, _) = world
        .seed
        .golden_image(SOURCE, &other_key, &other_key)
        .await;
    let mut pasted = done.clone();
    pasted["source"]["imageId"] = json!(other);
    match run_step(Step::VerifyEncryption, &world.deps, &pasted)
        .await
        .unwrap_err()
    {
        FerryError::ReplicaLineageMismatch {
            destination_id,
            expected,
            recorded,
        } => {
            assert_eq!(destination_id, replica);
            assert_eq!(expected, format!("{SOURCE}/{other}"));
            assert_eq!(recorded, format!("{SOURCE}/{image}"));
        }
        other => panic!("expected ReplicaLineageMismatch, got {other:?}"),
    }

    // Anyone with ec2:CreateTags can rewrite the lineage tags; AWS's record stays.
    world
        .deps
        .tagging
        .create_tags(
            DESTINATION,
            std::slice::from_ref(&replica),
            &[Tag::new(lineage::SOURCE_ID, &other)],
        )
        .await
        .unwrap();
    let entry = audited(&world).await.remove(0);
    assert_eq!(entry.aws_source, Some(format!("{SOURCE}/{image}")));
    assert_eq!(
        entry.flags,
        vec![Flag::LineageContradicted {
            claimed: format!("{SOURCE}/{other}"),
            recorded: format!("{SOURCE}/{image}"),
        }]
    );
}
