//! Adaptive polling: how long the state machine waits before the next check-copy.

/// Bounds for the wait between checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollBounds {
    pub min_seconds: u64,
    pub max_seconds: u64,
}

impl Default for PollBounds {
    fn default() -> Self {
        PollBounds {
            min_seconds: 30,
            max_seconds: 900,
        }
    }
}

/// A quarter of the elapsed time (so the detection lag stays under 25 % of the copy's duration),
/// shortened to the estimated time left when AWS reports progress, within the bounds.
pub fn next_check_seconds(
    elapsed_seconds: u64,
    progress_percent: Option<u32>,
    bounds: PollBounds,
) -> u64 {
    let mut wait = elapsed_seconds / 4;
    if let Some(done) = progress_percent.filter(|p| (1..100).contains(p)) {
        let remaining = elapsed_seconds * u64::from(100 - done) / u64::from(done);
        wait = wait.min(remaining);
    }
    wait.clamp(bounds.min_seconds, bounds.max_seconds)
}

/// Parses AWS's snapshot progress ("37%").
pub fn parse_progress(progress: &str) -> Option<u32> {
    progress
        .trim()
        .trim_end_matches('%')
        .parse()
        .ok()
        .filter(|p| *p <= 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates a copy of `duration` seconds; returns (checks, detection lag in seconds).
    fn simulate(duration: u64) -> (u32, u64) {
        let (mut now, mut checks) = (0, 0);
        let mut wait = next_check_seconds(0, None, PollBounds::default());
        loop {
            now += wait;
            checks += 1;
            if now >= duration {
                return (checks, now - duration);
            }
            wait = next_check_seconds(now, None, PollBounds::default());
        }
    }

    #[test]
    fn waits_grow_with_elapsed_time_within_bounds() {
        let bounds = PollBounds::default();
        assert_eq!(next_check_seconds(0, None, bounds), 30);
        assert_eq!(next_check_seconds(600, None, bounds), 150);
        assert_eq!(next_check_seconds(7200, None, bounds), 900);
    }

    #[test]
    fn a_two_hour_copy_takes_tens_of_checks_not_hundreds() {
        let (checks, lag) = simulate(2 * 3600);
        assert!(checks <= 30, "{checks} checks");
        assert!(lag <= 900, "{lag} s lag");
        let (short_checks, short_lag) = simulate(5 * 60);
        assert!(
            short_checks <= 10 && short_lag <= 75,
            "{short_checks} checks, {short_lag} s lag"
        );
    }

    #[test]
    fn reported_progress_shortens_the_wait_near_the_end() {
        let bounds = PollBounds::default();
        assert_eq!(next_check_seconds(3000, Some(95), bounds), 157);
        assert_eq!(next_check_seconds(3000, Some(10), bounds), 750);
        assert_eq!(parse_progress("37%"), Some(37));
        assert_eq!(parse_progress("n/a"), None);
    }
}
