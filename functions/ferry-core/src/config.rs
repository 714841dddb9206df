//! Configuration, read once at cold start from the environment.

use std::time::Duration;

use crate::policy::Policy;
use crate::rules::polling::PollBounds;
use crate::rules::retry_budget::{SdkSettings, DEFAULT_FUNCTION_TIMEOUT};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// EventBridge bus for `Replication Succeeded` / `Replication Failed` (`FERRY_EVENT_BUS`).
    pub event_bus: String,
    /// Bounds of the adaptive wait between copy checks (`FERRY_POLL_MIN_SECONDS`, `FERRY_POLL_MAX_SECONDS`).
    pub poll: PollBounds,
    /// Snapshots with FSR per Region before FSR is skipped (`FERRY_FSR_QUOTA`, AWS default 5).
    pub fsr_quota_per_region: usize,
    /// The function's own timeout (`FERRY_FUNCTION_TIMEOUT_SECONDS`, the template's `Timeout`).
    pub function_timeout: Duration,
    /// SDK retries (`FERRY_SDK_MAX_ATTEMPTS`, `FERRY_SDK_INITIAL_BACKOFF_MS`), fitted inside
    /// `function_timeout` ([`SdkSettings::within`]).
    pub sdk: SdkSettings,
    /// The replication policy (`FERRY_POLICY`, JSON); only plan-replication needs it.
    pub policy: Option<Policy>,
    /// The stack's bucket for work lists and run manifests (`FERRY_WORK_BUCKET`); only
    /// plan-replication needs it.
    pub work_bucket: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            event_bus: "default".into(),
            poll: PollBounds::default(),
            fsr_quota_per_region: 5,
            function_timeout: DEFAULT_FUNCTION_TIMEOUT,
            sdk: SdkSettings::default(),
            policy: None,
            work_bucket: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration {name} is invalid: {reason} (value {value:?})")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

fn number<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| ConfigError {
            name,
            value,
            reason: "expected a whole number".into(),
        }),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Config::default();
        let poll = PollBounds {
            min_seconds: number(&lookup, "FERRY_POLL_MIN_SECONDS", defaults.poll.min_seconds)?,
            max_seconds: number(&lookup, "FERRY_POLL_MAX_SECONDS", defaults.poll.max_seconds)?,
        };
        if poll.min_seconds == 0 || poll.min_seconds > poll.max_seconds {
            return Err(ConfigError {
                name: "FERRY_POLL_MIN_SECONDS",
                value: poll.min_seconds.to_string(),
                reason: "must be 1..=FERRY_POLL_MAX_SECONDS".into(),
            });
        }
        let function_timeout = Duration::from_secs(number(
            &lookup,
            "FERRY_FUNCTION_TIMEOUT_SECONDS",
            defaults.function_timeout.as_secs(),
        )?);
        let max_attempts = number(&lookup, "FERRY_SDK_MAX_ATTEMPTS", defaults.sdk.max_attempts)?;
        let sdk = SdkSettings::within(
            function_timeout,
            max_attempts,
            Duration::from_millis(number(
                &lookup,
                "FERRY_SDK_INITIAL_BACKOFF_MS",
                defaults.sdk.initial_backoff.as_millis() as u64,
            )?),
        )
        .map_err(|error| ConfigError {
            name: "FERRY_SDK_MAX_ATTEMPTS",
            value: max_attempts.to_string(),
            reason: error.to_string(),
        })?;
        Ok(Config {
            event_bus: lookup("FERRY_EVENT_BUS")
                .filter(|bus| !bus.is_empty())
                .unwrap_or(defaults.event_bus),
            poll,
            fsr_quota_per_region: number(
                &lookup,
                "FERRY_FSR_QUOTA",
                defaults.fsr_quota_per_region,
            )?,
            function_timeout,
            sdk,
            work_bucket: lookup("FERRY_WORK_BUCKET").filter(|b| !b.trim().is_empty()),
            policy: match lookup("FERRY_POLICY").filter(|json| !json.trim().is_empty()) {
                None => None,
                Some(json) => Some(Policy::parse(&json).map_err(|error| ConfigError {
                    name: "FERRY_POLICY",
                    value: json.chars().take(80).collect(),
                    reason: error.to_string(),
                })?),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_give_the_documented_defaults() {
        assert_eq!(Config::from_lookup(|_| None).unwrap(), Config::default());
    }

    #[test]
    fn variables_override_and_bad_numbers_are_named() {
        let config = Config::from_lookup(|name| match name {
            "FERRY_EVENT_BUS" => Some("ferry".into()),
            "FERRY_POLL_MIN_SECONDS" => Some("5".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (config.event_bus.as_str(), config.poll.min_seconds),
            ("ferry", 5)
        );
        let error = Config::from_lookup(|name| (name == "FERRY_FSR_QUOTA").then(|| "five".into()))
            .unwrap_err();
        assert_eq!(error.name, "FERRY_FSR_QUOTA");
    }

    #[test]
    fn the_sdk_budget_is_derived_from_the_function_timeout() {
        let config = Config::from_lookup(|name| {
            (name == "FERRY_FUNCTION_TIMEOUT_SECONDS").then(|| "60".into())
        })
        .unwrap();
        assert_eq!(config.function_timeout, Duration::from_secs(60));
        assert_eq!(config.sdk.operation_timeout, Duration::from_secs(55));
        assert!(config.sdk.throttle_storm_worst_case() <= Duration::from_secs(55));
        let error = Config::from_lookup(|name| match name {
            "FERRY_FUNCTION_TIMEOUT_SECONDS" => Some("6".into()),
            "FERRY_SDK_MAX_ATTEMPTS" => Some("6".into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(error.name, "FERRY_SDK_MAX_ATTEMPTS");
    }
}
