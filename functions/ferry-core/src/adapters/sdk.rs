//! SDK configuration (retries set deliberately), per-Region clients, and error translation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::ports::AwsError;
use crate::rules::retry_budget::SdkSettings;

/// Error codes AWS uses for throttling, across EC2, KMS and EventBridge.
const THROTTLING_CODES: [&str; 6] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "ThrottledException",
    "SlowDown",
];

/// Loads the shared SDK configuration (credentials, endpoint override from `AWS_ENDPOINT_URL`,
/// default Region) with ferry's retry and timeout settings.
pub async fn load_sdk_config(settings: &SdkSettings) -> SdkConfig {
    with_settings(aws_config::defaults(BehaviorVersion::latest()), settings)
        .load()
        .await
}

/// `loader` with ferry's retries and timeouts: the attempt timeout, and the operation timeout
/// that bounds the whole call.
pub fn with_settings(loader: ConfigLoader, settings: &SdkSettings) -> ConfigLoader {
    loader.retry_config(retry_config(settings)).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(settings.attempt_timeout.min(Duration::from_secs(5)))
            .operation_attempt_timeout(settings.attempt_timeout)
            .operation_timeout(settings.operation_timeout)
            .build(),
    )
}

pub fn retry_config(settings: &SdkSettings) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(settings.max_attempts)
        .with_initial_backoff(settings.initial_backoff)
        .with_max_backoff(settings.max_backoff)
}

/// One client per Region, built on first use from a shared configuration and kept.
pub struct Regional<C> {
    make: Box<dyn Fn(&str) -> C + Send + Sync>,
    clients: Mutex<HashMap<String, C>>,
}

impl<C: Clone> Regional<C> {
    pub fn new(make: impl Fn(&str) -> C + Send + Sync + 'static) -> Self {
        Regional {
            make: Box::new(make),
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, region: &str) -> C {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| (self.make)(region))
            .clone()
    }
}

/// Translates an SDK error into the domain's `AwsError`.
pub fn aws_error<E, R>(error: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(_) => {
            let code = error.code().unwrap_or("Unknown").to_string();
            let message = error.message().unwrap_or("no message").to_string();
            if THROTTLING_CODES.contains(&code.as_str()) {
                AwsError::Throttled { code, message }
            } else {
                AwsError::Service { code, message }
            }
        }
        // No answer in time after the SDK's retries (attempt or operation timeout): AWS is
        // overloaded as far as ferry can tell. Retryable like throttling, and named before the
        // function's own timeout would kill it.
        SdkError::TimeoutError(_) => AwsError::Throttled {
            code: "Timeout".into(),
            message: error_chain(&error),
        },
        SdkError::DispatchFailure(failure) if failure.is_timeout() => AwsError::Throttled {
            code: "Timeout".into(),
            message: error_chain(&error),
        },
        _ => AwsError::Transport(error_chain(&error)),
    }
}

/// An error and its causes in one line (`dispatch failure: io error: … Connection refused`),
/// each cause once. The SDK's `DisplayErrorContext` ends with the whole error's `Debug` form
/// (raw responses included), which is logged at DEBUG here and never put in a message.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    tracing::debug!(error = %DisplayErrorContext(error), "AWS call failed");
    let mut parts: Vec<String> = vec![];
    let mut next = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}
