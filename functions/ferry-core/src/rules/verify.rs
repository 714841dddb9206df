//! The compliance rule, fail-closed: every destination snapshot is complete, encrypted, and
//! under exactly the resolved destination key (no other key associated with it), an AMI replica
//! is a copy of the document's source by AWS's own lineage record, and the key is still Enabled.

use crate::document::{SourceSnapshot, VerifiedSnapshot};
use crate::error::{FerryError, SnapshotFinding};
use crate::ports::{ImageInfo, KeyInfo, SnapshotInfo};
use crate::rules::lineage::{aws_lineage_agrees, aws_recorded_source, source_label};

/// What verification looks at, gathered by the handler.
pub struct Replica<'a> {
    pub destination_id: &'a str,
    /// The destination image; `None` for a snapshot replication.
    pub image: Option<&'a ImageInfo>,
    /// Destination snapshot ids paired with their source snapshot (by device for images).
    pub expected: Vec<(String, Option<&'a SourceSnapshot>)>,
    pub source_snapshot_count: usize,
    pub described: &'a [SnapshotInfo],
    pub expected_key_arn: &'a str,
    pub key_now: &'a KeyInfo,
    /// The document's source `(region, image id)`, which AWS's lineage record of the replica
    /// image must name; `None` for a snapshot replication.
    pub expected_source: Option<(&'a str, &'a str)>,
}

fn incomplete(replica: &Replica, reason: String) -> FerryError {
    FerryError::ReplicaIncomplete {
        destination_id: replica.destination_id.into(),
        reason,
    }
}

pub fn verify(replica: &Replica) -> Result<Vec<VerifiedSnapshot>, FerryError> {
    if let Some(image) = replica.image {
        if image.state != "available" {
            let reason = image
                .state_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            return Err(incomplete(
                replica,
                format!("image is {}{reason}, not available", image.state),
            ));
        }
    }
    if replica.expected.len() != replica.source_snapshot_count {
        return Err(incomplete(
            replica,
            format!(
                "{} EBS snapshots, but the source has {}",
                replica.expected.len(),
                replica.source_snapshot_count
            ),
        ));
    }
    let (mut unencrypted, mut wrong_key, mut associated, mut unfinished, mut verified) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (snapshot_id, source) in &replica.expected {
        let Some(snapshot) = replica
            .described
            .iter()
            .find(|s| &s.snapshot_id == snapshot_id)
        else {
            unfinished.push(SnapshotFinding {
                snapshot_id: snapshot_id.clone(),
                problem: "not found".into(),
            });
            continue;
        };
        let key = snapshot.kms_key_id.clone().unwrap_or_default();
        if !snapshot.encrypted {
            unencrypted.push(SnapshotFinding {
                snapshot_id: snapshot_id.clone(),
                problem: "Encrypted=false".into(),
            });
        } else if key != replica.expected_key_arn {
            let shown = if key.is_empty() {
                "no KmsKeyId"
            } else {
                key.as_str()
            };
            wrong_key.push(SnapshotFinding {
                snapshot_id: snapshot_id.clone(),
                problem: format!("under {shown}"),
            });
        }
        if !snapshot.associated_kms_key_ids.is_empty() {
            associated.push(SnapshotFinding {
                snapshot_id: snapshot_id.clone(),
                problem: format!("associated {}", snapshot.associated_kms_key_ids.join(", ")),
            });
        }
        if snapshot.state != "completed" {
            unfinished.push(SnapshotFinding {
                snapshot_id: snapshot_id.clone(),
                problem: format!("state {}", snapshot.state),
            });
        }
        verified.push(VerifiedSnapshot {
            snapshot_id: snapshot_id.clone(),
            source_snapshot_id: source.map(|s| s.snapshot_id.clone()),
            source_kms_key_arn: source.and_then(|s| s.kms_key_arn.clone()),
            kms_key_arn: key,
            encrypted: snapshot.encrypted,
        });
    }
    let destination_id = replica.destination_id.to_string();
    if !unencrypted.is_empty() {
        unencrypted.extend(wrong_key);
        return Err(FerryError::ReplicaNotEncrypted {
            destination_id,
            findings: unencrypted,
        });
    }
    if !wrong_key.is_empty() {
        return Err(FerryError::ReplicaWrongKey {
            destination_id,
            expected_key_arn: replica.expected_key_arn.into(),
            findings: wrong_key,
        });
    }
    if !associated.is_empty() {
        return Err(FerryError::ReplicaAssociatedKey {
            destination_id,
            expected_key_arn: replica.expected_key_arn.into(),
            findings: associated,
        });
    }
    if let (Some(image), Some((region, image_id))) = (replica.image, replica.expected_source) {
        if !aws_lineage_agrees(image, region, image_id) {
            return Err(FerryError::ReplicaLineageMismatch {
                destination_id,
                expected: source_label(Some(region), Some(image_id)),
                recorded: aws_recorded_source(image),
            });
        }
    }
    if !unfinished.is_empty() {
        let listed = unfinished
            .iter()
            .map(|f| format!("{} ({})", f.snapshot_id, f.problem))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(incomplete(
            replica,
            format!("snapshots not completed: {listed}"),
        ));
    }
    if replica.key_now.state != "Enabled" {
        return Err(FerryError::KeyNotEnabled {
            key_arn: replica.key_now.arn.clone(),
            state: replica.key_now.state.clone(),
            hint: "the replica cannot be restored while its key is not Enabled; enable the key, then re-verify".into(),
        });
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/good";

    fn snapshot(id: &str, encrypted: bool, key: Option<&str>, state: &str) -> SnapshotInfo {
        SnapshotInfo {
            snapshot_id: id.into(),
            state: state.into(),
            encrypted,
            kms_key_id: key.map(Into::into),
            ..Default::default()
        }
    }

    fn enabled_key() -> KeyInfo {
        KeyInfo {
            arn: KEY.into(),
            state: "Enabled".into(),
            ..Default::default()
        }
    }

    fn check(
        described: &[SnapshotInfo],
        image_state: &str,
        source_count: usize,
        key_now: &KeyInfo,
    ) -> Result<Vec<VerifiedSnapshot>, FerryError> {
        let image = ImageInfo {
            image_id: "ami-1".into(),
            state: image_state.into(),
            ..copied_from_source()
        };
        check_image(described, &image, source_count, key_now)
    }

    /// An image AWS recorded as CopyImage's copy of `us-east-1/ami-source`.
    fn copied_from_source() -> ImageInfo {
        ImageInfo {
            image_id: "ami-1".into(),
            state: "available".into(),
            source_image_id: Some("ami-source".into()),
            source_image_region: Some("us-east-1".into()),
            ..Default::default()
        }
    }

    fn check_image(
        described: &[SnapshotInfo],
        image: &ImageInfo,
        source_count: usize,
        key_now: &KeyInfo,
    ) -> Result<Vec<VerifiedSnapshot>, FerryError> {
        let replica = Replica {
            destination_id: "ami-1",
            image: Some(image),
            expected: vec![("snap-root".into(), None), ("snap-data".into(), None)],
            source_snapshot_count: source_count,
            described,
            expected_key_arn: KEY,
            key_now,
            expected_source: Some(("us-east-1", "ami-source")),
        };
        verify(&replica)
    }

    fn good_pair() -> Vec<SnapshotInfo> {
        vec![
            snapshot("snap-root", true, Some(KEY), "completed"),
            snapshot("snap-data", true, Some(KEY), "completed"),
        ]
    }

    #[test]
    fn a_complete_replica_under_the_resolved_key_verifies() {
        let verified = check(&good_pair(), "available", 2, &enabled_key()).unwrap();
        assert_eq!(verified.len(), 2);
        assert!(verified.iter().all(|s| s.encrypted && s.kms_key_arn == KEY));
    }

    #[test]
    fn a_snapshot_under_another_key_is_named() {
        let mut described = good_pair();
        described[1].kms_key_id = Some("arn:aws:kms:us-west-2:111122223333:key/other".into());
        match check(&described, "available", 2, &enabled_key()).unwrap_err() {
            FerryError::ReplicaWrongKey { findings, .. } => {
                assert_eq!(findings.len(), 1);
                assert_eq!(findings[0].snapshot_id, "snap-data");
                assert!(findings[0].problem.contains("key/other"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unencrypted_snapshot_outranks_every_other_finding() {
        let mut described = good_pair();
        described[0] = snapshot("snap-root", false, None, "completed");
        described[1].kms_key_id = None;
        let error = check(&described, "available", 2, &enabled_key()).unwrap_err();
        assert_eq!(error.name(), "ReplicaNotEncrypted");
        assert!(
            error.to_string().contains("snap-root (Encrypted=false)")
                && error.to_string().contains("snap-data (under no KmsKeyId)")
        );
    }

    #[test]
    fn missing_pending_or_uncounted_snapshots_are_incomplete() {
        assert_eq!(
            check(&good_pair(), "pending", 2, &enabled_key())
                .unwrap_err()
                .name(),
            "ReplicaIncomplete"
        );
        assert_eq!(
            check(&good_pair(), "available", 3, &enabled_key())
                .unwrap_err()
                .name(),
            "ReplicaIncomplete"
        );
        assert_eq!(
            check(&good_pair()[..1], "available", 2, &enabled_key())
                .unwrap_err()
                .name(),
            "ReplicaIncomplete"
        );
        let mut described = good_pair();
        described[1].state = "pending".into();
        assert_eq!(
            check(&described, "available", 2, &enabled_key())
                .unwrap_err()
                .name(),
            "ReplicaIncomplete"
        );
    }

    #[test]
    fn a_snapshot_with_another_key_associated_is_not_under_exactly_the_key() {
        let mut described = good_pair();
        described[1].associated_kms_key_ids =
            vec!["arn:aws:kms:us-west-2:111122223333:key/extra".into()];
        match check(&described, "available", 2, &enabled_key()).unwrap_err() {
            FerryError::ReplicaAssociatedKey {
                findings,
                expected_key_arn,
                ..
            } => {
                assert_eq!(expected_key_arn, KEY);
                assert_eq!(
                    findings,
                    vec![SnapshotFinding {
                        snapshot_id: "snap-data".into(),
                        problem: "associated arn:aws:kms:us-west-2:111122223333:key/extra".into()
                    }]
                );
            }
            other => panic!("{other:?}"),
        }
        described[1].associated_kms_key_ids = vec![KEY.into()];
        assert_eq!(
            check(&described, "available", 2, &enabled_key())
                .unwrap_err()
                .name(),
            "ReplicaAssociatedKey",
            "even the destination key itself, associated again: the set must be empty"
        );
    }

    #[test]
    fn an_image_aws_records_as_a_copy_of_another_source_fails_verification() {
        let other = ImageInfo {
            source_image_id: Some("ami-other".into()),
            ..copied_from_source()
        };
        match check_image(&good_pair(), &other, 2, &enabled_key()).unwrap_err() {
            FerryError::ReplicaLineageMismatch {
                expected, recorded, ..
            } => {
                assert_eq!(expected, "us-east-1/ami-source");
                assert_eq!(recorded, "us-east-1/ami-other");
            }
            other => panic!("{other:?}"),
        }
        let registered = ImageInfo {
            source_image_id: None,
            source_image_region: None,
            ..copied_from_source()
        };
        let error = check_image(&good_pair(), &registered, 2, &enabled_key()).unwrap_err();
        assert_eq!(error.name(), "ReplicaLineageMismatch");
        assert!(error.to_string().contains("none recorded"), "{error}");
    }

    #[test]
    fn a_key_disabled_since_the_copy_fails_verification() {
        let disabled = KeyInfo {
            state: "Disabled".into(),
            ..enabled_key()
        };
        assert_eq!(
            check(&good_pair(), "available", 2, &disabled)
                .unwrap_err()
                .name(),
            "KeyNotEnabled"
        );
    }
}
