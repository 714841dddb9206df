//! How much the SDK may retry one call: a budget derived from the function's timeout, so that a
//! throttled or silent AWS ends as a named error before Lambda kills the function.

use std::time::Duration;

/// What the SDK may spend on one call, retries included, is derived from the function's timeout
/// (`FERRY_FUNCTION_TIMEOUT_SECONDS`, the template's `Timeout`) less this margin, left for the
/// handler's own work and its answer. A function killed at its timeout is `Sandbox.Timedout` to
/// the state machine ("a named error needs the function to return before it", AWS-FACTS:
/// Step Functions error handling): a throttled call must end as `Throttled` before that.
pub const FUNCTION_MARGIN: Duration = Duration::from_secs(5);
/// The functions' timeout in infra/template.yaml (Globals).
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The backoff cap the SDK uses when the budget has room for it.
const PREFERRED_MAX_BACKOFF: Duration = Duration::from_secs(20);
/// The longest one attempt may take (a slow answer), when the budget has room for it.
const PREFERRED_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// What a throttled answer is allowed to take, per attempt, when fitting a throttle storm.
pub const THROTTLED_ANSWER_ALLOWANCE: Duration = Duration::from_secs(1);

/// How the SDK retries. Standard mode retries throttling, 5xx and timeouts with exponential
/// backoff and full jitter (before retry k, at most `min(max_backoff, initial_backoff ×
/// 2^(k-1))`); ferry only sees what is left after these attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct SdkSettings {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// One attempt, connection included.
    pub attempt_timeout: Duration,
    /// The whole call, every attempt and backoff included (the SDK's operation timeout): the
    /// function's timeout less [`FUNCTION_MARGIN`]. A call it stops ends as `Throttled` (code
    /// `Timeout`), so the function always answers with a name before it is killed.
    pub operation_timeout: Duration,
}

impl Default for SdkSettings {
    fn default() -> Self {
        SdkSettings::within(DEFAULT_FUNCTION_TIMEOUT, 6, Duration::from_millis(500))
            .expect("the defaults fit the default timeout")
    }
}

/// Too many SDK attempts for the function's timeout: a throttle storm would outlive it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{attempts} attempts do not fit a {} s function timeout: a throttle storm needs {} s of it at least, and {} s are left once {} s are kept for the handler",
    .function_timeout.as_secs(), (THROTTLED_ANSWER_ALLOWANCE * *.attempts).as_secs(), .budget.as_secs(), FUNCTION_MARGIN.as_secs())]
pub struct AttemptsDoNotFit {
    pub attempts: u32,
    pub function_timeout: Duration,
    /// The function's timeout less [`FUNCTION_MARGIN`].
    pub budget: Duration,
}

impl SdkSettings {
    /// Settings derived from the function's timeout. The budget is `function_timeout` less
    /// [`FUNCTION_MARGIN`]; the SDK's operation timeout is the budget, so no call outlives it
    /// whatever AWS does. Within it, a throttle storm (every attempt throttled, each answer
    /// within [`THROTTLED_ANSWER_ALLOWANCE`]) must exhaust its attempts and end as `Throttled`:
    /// the backoff cap is lowered from 20 s until the worst-case backoffs fit. One attempt may
    /// take up to 10 s, or half the budget if less. Err when even backoffs of 0 s leave no
    /// room for the attempts (too many attempts for the timeout).
    pub fn within(
        function_timeout: Duration,
        max_attempts: u32,
        initial_backoff: Duration,
    ) -> Result<SdkSettings, AttemptsDoNotFit> {
        let max_attempts = max_attempts.max(1);
        let budget = function_timeout.saturating_sub(FUNCTION_MARGIN);
        let Some(backoff_room) = budget.checked_sub(THROTTLED_ANSWER_ALLOWANCE * max_attempts)
        else {
            return Err(AttemptsDoNotFit {
                attempts: max_attempts,
                function_timeout,
                budget,
            });
        };
        // The largest cap (in ms, up to 20 s) whose worst-case backoffs fit the room.
        let (mut low, mut high) = (0u64, PREFERRED_MAX_BACKOFF.as_millis() as u64);
        while low < high {
            let mid = (low + high).div_ceil(2);
            let total =
                backoff_worst_case(max_attempts, initial_backoff, Duration::from_millis(mid));
            if total <= backoff_room {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        Ok(SdkSettings {
            max_attempts,
            initial_backoff,
            max_backoff: Duration::from_millis(low),
            attempt_timeout: PREFERRED_ATTEMPT_TIMEOUT.min(budget / 2),
            operation_timeout: budget,
        })
    }

    /// The longest a fully throttled call takes before the SDK returns it: the longest backoff
    /// before each retry, and each throttled answer within [`THROTTLED_ANSWER_ALLOWANCE`].
    pub fn throttle_storm_worst_case(&self) -> Duration {
        THROTTLED_ANSWER_ALLOWANCE * self.max_attempts
            + backoff_worst_case(self.max_attempts, self.initial_backoff, self.max_backoff)
    }

    /// The longest any call takes before the SDK returns it: every attempt timing out after
    /// the longest backoffs, or the operation timeout, whichever comes first.
    pub fn worst_case(&self) -> Duration {
        (self.attempt_timeout * self.max_attempts
            + backoff_worst_case(self.max_attempts, self.initial_backoff, self.max_backoff))
        .min(self.operation_timeout)
    }
}

/// The sum of the longest backoffs before retries 1..attempts (full jitter only shortens them).
fn backoff_worst_case(attempts: u32, initial: Duration, cap: Duration) -> Duration {
    (0..attempts.saturating_sub(1))
        .map(|k| {
            2u32.checked_pow(k)
                .and_then(|factor| initial.checked_mul(factor))
                .unwrap_or(cap)
                .min(cap)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_and_every_throttle_storm_fit_inside_the_function_timeout_less_the_margin() {
        for (timeout, attempts, initial_ms) in [
            (30, 6, 500),
            (30, 6, 50),
            (30, 3, 1000),
            (10, 2, 500),
            (60, 6, 500),
            (900, 10, 500),
        ] {
            let timeout = Duration::from_secs(timeout);
            let settings =
                SdkSettings::within(timeout, attempts, Duration::from_millis(initial_ms)).unwrap();
            let budget = timeout - FUNCTION_MARGIN;
            assert_eq!(settings.operation_timeout, budget, "{settings:?}");
            assert!(settings.worst_case() <= budget, "{settings:?}");
            assert!(
                settings.throttle_storm_worst_case() <= budget,
                "{settings:?}: a throttle storm takes up to {:?}",
                settings.throttle_storm_worst_case()
            );
            assert!(settings.attempt_timeout <= budget / 2, "{settings:?}");
            assert_eq!(settings.max_attempts, attempts);
        }
    }

    #[test]
    fn the_defaults_keep_six_attempts_and_the_20_s_backoff_cap_inside_thirty_seconds() {
        let settings = SdkSettings::default();
        assert_eq!(
            settings,
            SdkSettings {
                max_attempts: 6,
                initial_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(20),
                attempt_timeout: Duration::from_secs(10),
                operation_timeout: Duration::from_secs(25),
            }
        );
        // Backoffs of at most 0.5 + 1 + 2 + 4 + 8 s, and 6 answers of at most 1 s.
        assert_eq!(
            settings.throttle_storm_worst_case(),
            Duration::from_millis(21_500)
        );
    }

    #[test]
    fn a_short_timeout_lowers_the_backoff_cap_until_a_throttle_storm_fits() {
        let settings =
            SdkSettings::within(Duration::from_secs(15), 6, Duration::from_millis(500)).unwrap();
        // 10 s budget, 6 s for the answers: backoffs 0.5 + 1 + 0.83 × 3 fit the 4 s left.
        assert!(
            settings.max_backoff < Duration::from_secs(1),
            "{settings:?}"
        );
        assert!(settings.throttle_storm_worst_case() <= Duration::from_secs(10));
    }

    #[test]
    fn too_many_attempts_for_the_timeout_are_refused() {
        let error = SdkSettings::within(Duration::from_secs(10), 20, Duration::from_millis(500))
            .unwrap_err();
        assert_eq!(
            error,
            AttemptsDoNotFit {
                attempts: 20,
                function_timeout: Duration::from_secs(10),
                budget: Duration::from_secs(5),
            }
        );
        assert!(
            error.to_string().starts_with(
                "20 attempts do not fit a 10 s function timeout: a throttle storm needs 20 s of it at least, and 5 s are left"
            ),
            "{error}"
        );
    }
}
