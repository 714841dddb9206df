//! Fast Snapshot Restore rules: which states hold a quota slot, when enabling would exceed the
//! Region's quota, and when a replica's FSR is due to be disabled.
//!
//! Facts (../shared/AWS-FACTS.md, EBS user guide "Fast snapshot restore"): FSR is billed per
//! snapshot per Availability Zone per hour ($0.75 per DSU-hour in us-east-1); the default quota
//! is 5 snapshots per Region; `enabling`, `optimizing` and `enabled` hold it.

use crate::ports::{FsrState, Tag};
use crate::rules::lineage::{self, rfc3339};

/// FSR states that hold a quota slot (and are billed).
pub const ACTIVE_STATES: [&str; 3] = ["enabling", "optimizing", "enabled"];

/// Tag on a replica's snapshots: when its FSR is due to be disabled (RFC 3339 UTC).
pub const DISABLE_AT: &str = "ferry:fsr-disable-at";
/// Tag set once the scheduled step disabled it (RFC 3339 UTC).
pub const DISABLED_AT: &str = "ferry:fsr-disabled-at";

/// US East (N. Virginia) price of one FSR DSU-hour: one snapshot in one zone for an hour.
pub const DSU_HOUR_USD: f64 = 0.75;

pub fn is_active(state: &str) -> bool {
    ACTIVE_STATES.contains(&state)
}

/// An FSR failure code that means the Region's quota is full.
pub fn is_quota_code(code: &str) -> bool {
    code.contains("LimitExceeded") || code.contains("QuotaExceeded")
}

/// Why enabling FSR on `ours` would exceed `quota` given the Region's `entries`, if it would.
pub fn quota_shortfall(
    region: &str,
    entries: &[FsrState],
    ours: &[String],
    quota: usize,
) -> Option<String> {
    let mut others: Vec<&str> = entries
        .iter()
        .filter(|e| is_active(&e.state) && !ours.contains(&e.snapshot_id))
        .map(|e| e.snapshot_id.as_str())
        .collect();
    others.sort_unstable();
    others.dedup();
    (others.len() + ours.len() > quota).then(|| {
        format!(
            "{} snapshots already use FSR in {region} and the quota is {quota}; {} more would exceed it",
            others.len(),
            ours.len()
        )
    })
}

/// The `ferry:fsr-disable-at` tag for FSR requested at `now` for `hours`.
pub fn disable_at_tag(now: u64, hours: f64) -> Tag {
    Tag::new(DISABLE_AT, rfc3339(now + (hours * 3600.0).round() as u64))
}

/// Whether a replica tagged `tags` has FSR due to be disabled at `now`: it carries a
/// `ferry:fsr-disable-at` no later than now and was not disabled since.
pub fn is_due(tags: &[Tag], now: u64) -> bool {
    lineage::time_tag_reached(tags, DISABLE_AT, now) && !tags.iter().any(|t| t.key == DISABLED_AT)
}

/// Hourly cost of `zones` FSR entries at the us-east-1 price.
pub fn hourly_cost_usd(zones: usize) -> f64 {
    zones as f64 * DSU_HOUR_USD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(snapshot: &str, state: &str) -> FsrState {
        FsrState {
            snapshot_id: snapshot.into(),
            availability_zone: "us-west-2a".into(),
            state: state.into(),
        }
    }

    #[test]
    fn enabling_beyond_the_quota_says_how_many_use_it() {
        let entries = [
            state("snap-1", "enabled"),
            state("snap-2", "optimizing"),
            state("snap-3", "disabled"),
        ];
        assert_eq!(
            quota_shortfall("us-west-2", &entries, &["snap-9".into()], 3),
            None
        );
        let reason = quota_shortfall(
            "us-west-2",
            &entries,
            &["snap-8".into(), "snap-9".into()],
            3,
        )
        .unwrap();
        assert!(
            reason.starts_with("2 snapshots already use FSR in us-west-2 and the quota is 3"),
            "{reason}"
        );
        assert!(
            is_quota_code("FastSnapshotRestoreLimitExceeded")
                && !is_quota_code("InvalidSnapshot.NotFound")
        );
    }

    #[test]
    fn fsr_is_due_once_its_time_has_come_and_only_until_it_was_disabled() {
        let requested = 1_700_000_000;
        let tag = disable_at_tag(requested, 24.0);
        assert_eq!(tag.value, rfc3339(requested + 86_400));
        let tags = vec![tag];
        assert!(!is_due(&tags, requested + 86_399));
        assert!(is_due(&tags, requested + 86_400));
        let mut disabled = tags.clone();
        disabled.push(Tag::new(DISABLED_AT, rfc3339(requested + 90_000)));
        assert!(!is_due(&disabled, requested + 100_000));
        assert!(!is_due(&[], requested));
    }
}
