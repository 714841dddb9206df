//! Time-based copies (`completionDurationMinutes`): whether a deadline can be met at all, and
//! whether it was.
//!
//! AWS (EBS user guide, "Time-based copies for Amazon EBS snapshots and EBS-backed AMIs"): the
//! completion duration is 15 minutes to 48 hours in 15-minute steps; the throughput a copy needs
//! is its snapshot data divided by the duration, and a single time-based snapshot copy achieves
//! at most **500 MiB/s** (not adjustable; for an AMI, per snapshot). A copy that finishes late is
//! billed at the tier of its actual duration and EventBridge gets `EBS Copy Snapshot Missed
//! Completion Duration`.

use serde::{Deserialize, Serialize};

use crate::error::FerryError;

/// The most a single time-based snapshot copy achieves, MiB/s (quota "Snapshot copy operation
/// throughput", not adjustable).
pub const PER_SNAPSHOT_MIB_PER_SECOND: u64 = 500;
/// Completion durations come in steps of this many minutes...
pub const STEP_MINUTES: u64 = 15;
/// ...up to 48 hours.
pub const MAX_MINUTES: u64 = 2880;

const MIB: u64 = 1024 * 1024;

/// AWS's list price per GiB of a time-based copy at the fastest tier (15 minutes)...
pub const FASTEST_USD_PER_GIB: f64 = 0.020;
/// ...and from 16 hours on (EBS pricing, us-east-1; ../shared/AWS-FACTS.md). The tiers between
/// are priced per duration band, which ferry does not hard-code.
pub const SLOWEST_USD_PER_GIB: f64 = 0.005;
const SLOWEST_FROM_MINUTES: u64 = 16 * 60;

/// The price tier a time-based copy of `minutes` is listed at: exact at the two ends, else the
/// range it falls in. A copy that finishes late is billed at the tier of its actual duration.
pub fn price_tier(minutes: u64) -> String {
    if minutes <= STEP_MINUTES {
        format!("${FASTEST_USD_PER_GIB:.3}/GiB (the 15-minute tier)")
    } else if minutes >= SLOWEST_FROM_MINUTES {
        format!("${SLOWEST_USD_PER_GIB:.3}/GiB (the 16-hour-and-longer tier)")
    } else {
        format!("the {minutes}-minute tier, between ${SLOWEST_USD_PER_GIB:.3} and ${FASTEST_USD_PER_GIB:.3}/GiB (EBS pricing)")
    }
}

/// The shortest completion duration AWS accepts (a multiple of 15 minutes, at least 15) in
/// which `bytes` of snapshot data can be copied at 500 MiB/s.
pub fn earliest_feasible_minutes(bytes: u64) -> u64 {
    let bytes_per_step = PER_SNAPSHOT_MIB_PER_SECOND * MIB * 60 * STEP_MINUTES;
    bytes.div_ceil(bytes_per_step).max(1) * STEP_MINUTES
}

/// Refuses a time-based request that some source snapshot cannot meet at 500 MiB/s, naming the
/// largest such snapshot and the earliest feasible duration. `snapshots` are (id, full size in
/// bytes); a size AWS did not report is never refused (ferry only refuses what cannot succeed).
pub fn check_feasible(
    requested_minutes: Option<i64>,
    snapshots: &[(String, Option<u64>)],
) -> Result<(), FerryError> {
    let Some(requested) = requested_minutes.and_then(|m| u64::try_from(m).ok()) else {
        return Ok(());
    };
    let Some((snapshot_id, bytes)) = snapshots
        .iter()
        .filter_map(|(id, bytes)| bytes.map(|b| (id, b)))
        .max_by_key(|(_, bytes)| *bytes)
    else {
        return Ok(());
    };
    let earliest = earliest_feasible_minutes(bytes);
    if earliest <= requested {
        return Ok(());
    }
    Err(FerryError::CompletionDurationTooShort {
        requested_minutes: requested,
        snapshot_id: snapshot_id.clone(),
        size_gib: format!("{:.1}", bytes as f64 / (1024.0 * MIB as f64)),
        earliest_minutes: earliest,
        advice: if earliest <= MAX_MINUTES {
            format!("request completionDurationMinutes {earliest} or more, or none")
        } else {
            format!("that is beyond the {MAX_MINUTES}-minute maximum: drop completionDurationMinutes (a standard copy)")
        },
    })
}

/// Whether a time-based copy met its deadline, as the evidence records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadlineOutcome {
    pub completion_duration_minutes: u64,
    /// Unix seconds: `copy.startedAt` plus the requested duration.
    pub deadline_at: u64,
    /// Unix seconds: the latest `CompletionTime` of the copy's snapshots, or when check-copy saw
    /// the copy complete if AWS reported none.
    pub completed_at: u64,
    pub met: bool,
    /// How late it completed (0 when met).
    pub late_seconds: u64,
}

/// The outcome of a copy started at `started_at` for `minutes` that completed at `completed_at`.
/// A missed deadline is reported, never failed: the copy is as good, only billed differently.
pub fn deadline_outcome(started_at: u64, minutes: u64, completed_at: u64) -> DeadlineOutcome {
    let deadline_at = started_at + minutes * 60;
    DeadlineOutcome {
        completion_duration_minutes: minutes,
        deadline_at,
        completed_at,
        met: completed_at <= deadline_at,
        late_seconds: completed_at.saturating_sub(deadline_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * MIB;

    #[test]
    fn the_earliest_feasible_duration_is_the_next_quarter_hour_at_500_mib_per_second() {
        // 500 MiB/s for 15 minutes moves 450,000 MiB (about 439.5 GiB).
        assert_eq!(earliest_feasible_minutes(0), 15);
        assert_eq!(earliest_feasible_minutes(8 * GIB), 15);
        assert_eq!(earliest_feasible_minutes(450_000 * MIB), 15);
        assert_eq!(earliest_feasible_minutes(450_000 * MIB + 1), 30);
        assert_eq!(earliest_feasible_minutes(1024 * GIB), 45);
        assert_eq!(earliest_feasible_minutes(16 * 1024 * GIB), 570);
    }

    fn sizes(gib: &[(&str, Option<u64>)]) -> Vec<(String, Option<u64>)> {
        gib.iter()
            .map(|(id, g)| (id.to_string(), g.map(|g| g * GIB)))
            .collect()
    }

    #[test]
    fn a_deadline_the_largest_snapshot_cannot_meet_is_refused_with_the_earliest_feasible_duration()
    {
        let error = check_feasible(
            Some(15),
            &sizes(&[("snap-small", Some(8)), ("snap-big", Some(1024))]),
        )
        .unwrap_err();
        assert_eq!(error.name(), "CompletionDurationTooShort");
        assert_eq!(
            error,
            FerryError::CompletionDurationTooShort {
                requested_minutes: 15,
                snapshot_id: "snap-big".into(),
                size_gib: "1024.0".into(),
                earliest_minutes: 45,
                advice: "request completionDurationMinutes 45 or more, or none".into(),
            }
        );
        assert!(error.to_string().contains("45"), "{error}");
    }

    #[test]
    fn feasible_untimed_or_unsized_requests_pass() {
        let big = sizes(&[("snap-big", Some(1024))]);
        assert!(check_feasible(Some(45), &big).is_ok());
        assert!(check_feasible(None, &big).is_ok());
        assert!(check_feasible(Some(15), &sizes(&[("snap-unknown", None)])).is_ok());
    }

    #[test]
    fn a_snapshot_no_time_based_copy_can_meet_says_to_drop_the_option() {
        let error =
            check_feasible(Some(2880), &sizes(&[("snap-huge", Some(90 * 1024))])).unwrap_err();
        assert!(
            error.to_string().contains("drop completionDurationMinutes"),
            "{error}"
        );
    }

    #[test]
    fn a_copy_completed_after_its_deadline_is_reported_late_not_failed() {
        assert_eq!(
            deadline_outcome(1_000, 15, 1_900),
            DeadlineOutcome {
                completion_duration_minutes: 15,
                deadline_at: 1_900,
                completed_at: 1_900,
                met: true,
                late_seconds: 0
            }
        );
        let late = deadline_outcome(1_000, 15, 2_500);
        assert_eq!((late.met, late.late_seconds), (false, 600));
    }
}
