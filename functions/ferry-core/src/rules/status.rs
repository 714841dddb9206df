//! What AWS's image and snapshot states mean for a copy in flight.

use crate::document::CopyStatus;
use crate::ports::{ImageInfo, KeyInfo, SnapshotInfo};
use crate::rules::polling::parse_progress;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReading {
    pub status: CopyStatus,
    /// The least progress among the copy's snapshots, when AWS reports it.
    pub progress_percent: Option<u32>,
    /// AWS's own StateReason / StateMessage for a failure.
    pub failure: Option<String>,
}

/// Whether an existing image copy is still the replication's copy, to reuse or to keep checking:
/// `pending` or `available`. A `failed`, `deregistered` (or any other) image is not.
pub fn image_copy_is_live(state: &str) -> bool {
    matches!(state, "pending" | "available")
}

/// Whether an existing snapshot copy is still the replication's copy, to reuse or to keep
/// checking: `pending` or `completed`. An `error` snapshot is not, nor one in the Recycle Bin
/// or archive states (`recoverable`, `recovering`), which cannot be verified or restored from.
pub fn snapshot_copy_is_live(state: &str) -> bool {
    matches!(state, "pending" | "completed")
}

/// The copy every execution of one replication keeps when deliveries at the same instant each
/// made one: the earliest created, ties to the lowest id, a copy with no creation time last.
/// Start-copy reuses it and check-copy converges on it, so all executions agree on one copy.
///
/// Times are compared as instants, never as text: EC2's timestamps, once printed, drop trailing
/// zeros of the fraction ("…:06.5Z" is later than "…:06.51Z" as text).
pub fn copy_to_keep<'a>(
    live_copies: impl IntoIterator<Item = (Option<i64>, &'a str)>,
) -> Option<&'a str> {
    live_copies
        .into_iter()
        .min_by_key(|(created_at_ms, id)| (created_at_ms.unwrap_or(i64::MAX), *id))
        .map(|(_, id)| id)
}

fn failed(message: String) -> CopyReading {
    CopyReading {
        status: CopyStatus::Failed,
        progress_percent: None,
        failure: Some(message),
    }
}

/// How long after `startedAt` a copy EC2 answers NotFound for is still read as pending.
///
/// EC2 is eventually consistent (EC2 developer guide, "Eventual consistency in the Amazon EC2
/// API"): describing a resource you just created may answer that it does not exist, and AWS
/// advises describing it again with exponential backoff "up to a few minutes" (about five
/// minutes in earlier versions of that page). Five minutes, then: a copy still unknown after
/// that is gone.
pub const NOT_FOUND_GRACE_SECONDS: u64 = 300;

/// Reads a copy EC2 did not find (`InvalidAMIID.NotFound`, `InvalidSnapshot.NotFound`, or no
/// such id in the answer): pending within [`NOT_FOUND_GRACE_SECONDS`] of the copy call, as EC2
/// may not see a just-created copy yet; a failure naming the missing id after it.
pub fn read_missing(destination_id: &str, region: &str, elapsed_seconds: u64) -> CopyReading {
    if elapsed_seconds <= NOT_FOUND_GRACE_SECONDS {
        return CopyReading {
            status: CopyStatus::Pending,
            progress_percent: None,
            failure: None,
        };
    }
    failed(format!(
        "{destination_id} was not found in {region} {elapsed_seconds} s after the copy started \
         (EC2 may not see a new copy for up to {NOT_FOUND_GRACE_SECONDS} s; it no longer exists)"
    ))
}

/// Reads a snapshot copy (or an image copy's snapshots) as pending, completed or failed.
pub fn read_snapshots(snapshots: &[SnapshotInfo]) -> CopyReading {
    if let Some(broken) = snapshots
        .iter()
        .find(|s| s.state != "pending" && s.state != "completed")
    {
        let message = broken
            .state_message
            .clone()
            .unwrap_or_else(|| "no StateMessage given".into());
        return failed(format!(
            "snapshot {} is {}: {message}",
            broken.snapshot_id, broken.state
        ));
    }
    let progress = snapshots
        .iter()
        .filter_map(|s| s.progress.as_deref().and_then(parse_progress))
        .min();
    let status = if snapshots.iter().all(|s| s.state == "completed") {
        CopyStatus::Completed
    } else {
        CopyStatus::Pending
    };
    CopyReading {
        status,
        progress_percent: progress,
        failure: None,
    }
}

/// Reads an image copy; its snapshots refine progress and reveal failures early.
pub fn read_image(image: &ImageInfo, snapshots: &[SnapshotInfo]) -> CopyReading {
    match image.state.as_str() {
        "available" => CopyReading {
            status: CopyStatus::Completed,
            progress_percent: Some(100),
            failure: None,
        },
        "pending" => {
            let reading = read_snapshots(snapshots);
            match reading.status {
                CopyStatus::Failed => reading,
                _ => CopyReading {
                    status: CopyStatus::Pending,
                    ..reading
                },
            }
        }
        other => {
            let reason = image
                .state_reason
                .clone()
                .unwrap_or_else(|| "no StateReason given".into());
            let snapshot_detail = read_snapshots(snapshots)
                .failure
                .map(|f| format!("; {f}"))
                .unwrap_or_default();
            failed(format!(
                "image {} is {other}: {reason}{snapshot_detail}",
                image.image_id
            ))
        }
    }
}

/// A failed copy's message, completed with the destination key's state when that key is the
/// likely cause: AWS's own words ("Given key ID is not accessible") never say why.
pub fn explain_failure(failure: String, key: Option<&KeyInfo>) -> String {
    match key {
        Some(key) if key.state != "Enabled" => format!(
            "{failure}; the destination key {} is {}",
            key.arn, key.state
        ),
        _ => failure,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_pending_or_finished_copies_are_live() {
        use super::{image_copy_is_live, snapshot_copy_is_live};
        assert!(image_copy_is_live("pending") && image_copy_is_live("available"));
        for state in [
            "failed",
            "deregistered",
            "invalid",
            "transient",
            "disabled",
            "",
        ] {
            assert!(!image_copy_is_live(state), "{state}");
        }
        assert!(snapshot_copy_is_live("pending") && snapshot_copy_is_live("completed"));
        for state in ["error", "recoverable", "recovering", ""] {
            assert!(!snapshot_copy_is_live(state), "{state}");
        }
    }

    use super::*;

    #[test]
    fn the_copy_kept_is_the_earliest_created_then_the_lowest_id_and_one_with_no_time_last() {
        let kept = |copies: &[(Option<i64>, &'static str)]| copy_to_keep(copies.iter().copied());
        assert_eq!(
            kept(&[(Some(2_500), "snap-a"), (Some(2_510), "snap-0")]),
            Some("snap-a")
        );
        assert_eq!(
            kept(&[(Some(7), "snap-b"), (Some(7), "snap-a")]),
            Some("snap-a")
        );
        assert_eq!(
            kept(&[(None, "snap-0"), (Some(9), "snap-z")]),
            Some("snap-z")
        );
        assert_eq!(kept(&[]), None);
    }

    fn snapshot(id: &str, state: &str, progress: &str, message: Option<&str>) -> SnapshotInfo {
        SnapshotInfo {
            snapshot_id: id.into(),
            state: state.into(),
            progress: Some(progress.into()),
            state_message: message.map(Into::into),
            ..Default::default()
        }
    }

    fn image(state: &str, reason: Option<&str>) -> ImageInfo {
        ImageInfo {
            image_id: "ami-1".into(),
            state: state.into(),
            state_reason: reason.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn a_pending_image_reports_its_slowest_snapshot() {
        let reading = read_image(
            &image("pending", None),
            &[
                snapshot("snap-1", "pending", "40%", None),
                snapshot("snap-2", "completed", "100%", None),
            ],
        );
        assert_eq!(
            reading,
            CopyReading {
                status: CopyStatus::Pending,
                progress_percent: Some(40),
                failure: None
            }
        );
    }

    #[test]
    fn a_failed_image_carries_aws_reason_and_snapshot_message() {
        let reading = read_image(
            &image(
                "failed",
                Some("Client.InvalidKMSKey.InvalidState: key is disabled"),
            ),
            &[snapshot(
                "snap-1",
                "error",
                "0%",
                Some("Given key ID is not accessible"),
            )],
        );
        assert_eq!(reading.status, CopyStatus::Failed);
        let failure = reading.failure.unwrap();
        assert!(
            failure.contains("key is disabled")
                && failure.contains("Given key ID is not accessible"),
            "{failure}"
        );
    }

    #[test]
    fn an_errored_snapshot_fails_a_still_pending_image_early() {
        let reading = read_image(
            &image("pending", None),
            &[snapshot(
                "snap-1",
                "error",
                "3%",
                Some("Given key ID is not accessible"),
            )],
        );
        assert_eq!(reading.status, CopyStatus::Failed);
    }

    #[test]
    fn snapshot_copies_complete_when_every_snapshot_completes() {
        assert_eq!(
            read_snapshots(&[snapshot("snap-1", "completed", "100%", None)]).status,
            CopyStatus::Completed
        );
        assert_eq!(
            read_snapshots(&[snapshot("snap-1", "pending", "0%", None)]).status,
            CopyStatus::Pending
        );
    }

    #[test]
    fn a_copy_ec2_does_not_find_yet_is_pending_within_the_grace_window() {
        for elapsed in [0, 31, NOT_FOUND_GRACE_SECONDS] {
            assert_eq!(
                read_missing("ami-1", "us-west-2", elapsed),
                CopyReading {
                    status: CopyStatus::Pending,
                    progress_percent: None,
                    failure: None
                },
                "{elapsed} s after the copy call"
            );
        }
    }

    #[test]
    fn a_copy_still_not_found_after_the_grace_window_fails_naming_the_missing_id() {
        let reading = read_missing("snap-0abc", "us-west-2", NOT_FOUND_GRACE_SECONDS + 1);
        assert_eq!(reading.status, CopyStatus::Failed);
        let failure = reading.failure.unwrap();
        assert!(
            failure
                .starts_with("snap-0abc was not found in us-west-2 301 s after the copy started"),
            "{failure}"
        );
    }

    fn key(state: &str) -> KeyInfo {
        KeyInfo {
            arn: "arn:aws:kms:us-west-2:123456789012:key/k".into(),
            state: state.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_failure_names_the_destination_key_state_when_the_key_is_no_longer_enabled() {
        let failure = explain_failure(
            "snapshot snap-1 is error: Given key ID is not accessible".into(),
            Some(&key("PendingDeletion")),
        );
        assert_eq!(
            failure,
            "snapshot snap-1 is error: Given key ID is not accessible; the destination key arn:aws:kms:us-west-2:123456789012:key/k is PendingDeletion"
        );
    }

    #[test]
    fn a_failure_under_an_enabled_or_unknown_key_keeps_aws_words_alone() {
        let aws = "snapshot snap-1 is error: source data could not be read";
        assert_eq!(explain_failure(aws.into(), Some(&key("Enabled"))), aws);
        assert_eq!(explain_failure(aws.into(), None), aws);
    }
}
