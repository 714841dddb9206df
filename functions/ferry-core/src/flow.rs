//! One replication, run in-process the way the deployed definition
//! (`statemachine/replication.asl.json`) runs it: StartCopy; then Wait the copy's
//! `nextCheckSeconds` and CheckCopy until the copy settles; then VerifyEncryption, BootCheck
//! (waiting its `nextCheckSeconds` while the instance boots; after a failure, its `end`
//! terminates the instance as the definition's EndBootCheck does), WireDestination, TagLineage
//! and EnableFsr. Each step retries the same error names with the same attempts and backoff as
//! the definition's Retry blocks ([`RETRIES`]); a failure publishes the same "Replication Failed"
//! event ([`REPORT_RETRY`]) and ends with the same error name. The CLI and the test harness run
//! replications through it, and a test runs the same scenarios through both.
//!
//! Nothing here waits by itself: a [`Pause`] lets time pass (a terminal sleeps, a test moves the
//! local AWS's clock). The Lambdas never use this module.

use std::hash::{BuildHasher, RandomState};

use async_trait::async_trait;
use tracing::warn;

use crate::deps::Deps;
use crate::document::{BootCheck, BootStatus, CopyState, CopyStatus, Replication};
use crate::error::FerryError;
use crate::handlers::boot_check::end as end_boot_check;
use crate::handlers::Step;

/// A Retry block of the definition: which error names it retries, how many times, and the
/// pause before each retry (`IntervalSeconds` × `BackoffRate`^(retry − 1), at most
/// `MaxDelaySeconds`, full jitter).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub errors: &'static [&'static str],
    pub interval_seconds: u64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
}

impl Retry {
    /// The longest pause before retry `retry` (1 for the first retry).
    pub fn ceiling_seconds(&self, retry: u32) -> f64 {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let ceiling = self.interval_seconds as f64 * self.backoff_rate.powi(exponent);
        match self.max_delay_seconds {
            Some(max) => ceiling.min(max as f64),
            None => ceiling,
        }
    }

    /// Whether this block retries `name`, and retry `retry` is still within its attempts.
    fn allows(&self, name: &str, retry: u32) -> bool {
        self.errors.contains(&name) && retry <= self.max_attempts
    }
}

/// The Retry blocks every Lambda Task state of the definition carries for ferry's own error
/// names, in order. (Its `Lambda.*`, `Runtime.*` and `Sandbox.*` retries are about invoking a
/// Lambda, which an in-process step never does.)
pub const RETRIES: [Retry; 2] = [
    Retry {
        errors: &["Throttled", "PublishFailed", "ParameterNotWritten"],
        interval_seconds: 5,
        max_attempts: 6,
        backoff_rate: 2.0,
        max_delay_seconds: Some(300),
    },
    // Waits for a copy slot: AWS's ResourceLimitExceeded is the per-Region semaphore shared with
    // every other copier; at most 100 retries of at most 15 min (a horizon of at most 25 h).
    Retry {
        errors: &["CopyQuotaExceeded"],
        interval_seconds: 60,
        max_attempts: 100,
        backoff_rate: 2.0,
        max_delay_seconds: Some(900),
    },
];

/// The definition's ReportFailure retry: `events:putEvents` of "Replication Failed" (here, any
/// failure of the Events port).
pub const REPORT_RETRY: Retry = Retry {
    errors: &[
        "EventBridge.FailedEntry",
        "EventBridge.EventBridgeException",
        "EventBridge.InternalException",
        "EventBridge.ResourceNotFoundException",
        "EventBridge.ThrottlingException",
        "States.TaskFailed",
    ],
    interval_seconds: 2,
    max_attempts: 4,
    backoff_rate: 2.0,
    max_delay_seconds: None,
};

/// The detail-type of the event a failed replication publishes.
pub const FAILED_EVENT: &str = "Replication Failed";

/// Lets time pass between checks and before retries.
#[async_trait]
pub trait Pause: Send + Sync {
    async fn pause(&self, seconds: f64);
}

/// Where a replication is, for whoever shows progress.
#[derive(Debug)]
pub enum Stage<'a> {
    /// A step is about to run.
    Running(Step),
    /// The copy is in flight; the next check is `copy.next_check_seconds` away.
    Copying(&'a CopyState),
    /// The boot-check instance is booting; the next look is `check.next_check_seconds` away.
    Booting(&'a BootCheck),
    /// A step failed with a retried error; it runs again after `seconds`.
    Retrying {
        step: Step,
        error: &'a FerryError,
        retry: u32,
        seconds: f64,
    },
}

/// Shows progress; the default shows nothing.
pub trait Observe: Send + Sync {
    fn stage(&self, _stage: Stage<'_>) {}
}

impl Observe for () {}

/// One replication's driver: its dependencies, how time passes, and who watches.
pub struct Flow<'a> {
    pub deps: &'a Deps,
    pub pause: &'a dyn Pause,
    pub observe: &'a dyn Observe,
}

impl Flow<'_> {
    /// Runs `request` to the end: the verified, tagged document, or the error the execution
    /// would end with (after publishing "Replication Failed").
    pub async fn replicate(&self, request: Replication) -> Result<Replication, FerryError> {
        let mut document = request;
        match self.run(&mut document).await {
            Ok(()) => Ok(document),
            Err(error) => {
                self.report_failure(&document, &error).await;
                Err(error)
            }
        }
    }

    /// Waits and checks until the copy is no longer pending; returns the document with the
    /// copy completed or failed (a failed copy is not an error here: the caller decides).
    pub async fn follow_copy(&self, mut document: Replication) -> Result<Replication, FerryError> {
        loop {
            let copy = document.copy_state()?;
            if copy.status != CopyStatus::Pending {
                return Ok(document);
            }
            self.observe.stage(Stage::Copying(copy));
            self.pause.pause(copy.next_check_seconds as f64).await;
            document = self.step(Step::CheckCopy, &document).await?;
        }
    }

    /// Launches the boot check (when the destination asks for one) and looks again after each
    /// `nextCheckSeconds` until it has a verdict. On a failure, this replication's boot-check
    /// instances are terminated before the error is returned.
    async fn follow_boot_check(
        &self,
        mut document: Replication,
    ) -> Result<Replication, FerryError> {
        loop {
            match self.step(Step::BootCheck, &document).await {
                Ok(next) => document = next,
                Err(error) => {
                    if let Some(replication_id) = &document.replication_id {
                        let region = &document.destination.region;
                        if let Err(lost) = end_boot_check(self.deps, replication_id, region).await {
                            warn!(error = %lost, "ending the boot check failed: the sweep terminates its instance");
                        }
                    }
                    return Err(error);
                }
            }
            match &document.evidence.boot_check {
                Some(check) if check.status == BootStatus::Booting => {
                    self.observe.stage(Stage::Booting(check));
                    self.pause.pause(check.next_check_seconds as f64).await;
                }
                _ => return Ok(document),
            }
        }
    }

    /// On error, `document` is the input of the state that failed, as the definition's Catch
    /// leaves it.
    async fn run(&self, document: &mut Replication) -> Result<(), FerryError> {
        *document = self.step(Step::StartCopy, document).await?;
        *document = self.follow_copy(document.clone()).await?;
        let copy = document.copy_state()?;
        if copy.status != CopyStatus::Completed {
            return Err(FerryError::CopyFailed {
                destination_id: copy.destination_id.clone(),
                reason: copy.failure.clone().unwrap_or_default(),
            });
        }
        *document = self.step(Step::VerifyEncryption, document).await?;
        *document = self.follow_boot_check(document.clone()).await?;
        for step in [Step::WireDestination, Step::TagLineage, Step::EnableFsr] {
            *document = self.step(step, document).await?;
        }
        Ok(())
    }

    /// One Task state: the step, retried as its Retry blocks say.
    async fn step(&self, step: Step, document: &Replication) -> Result<Replication, FerryError> {
        let mut retries = [0u32; RETRIES.len()];
        loop {
            self.observe.stage(Stage::Running(step));
            let error = match step.run(self.deps, document).await {
                Ok(next) => return Ok(next),
                Err(error) => error,
            };
            let Some(block) = RETRIES
                .iter()
                .position(|r| r.errors.contains(&error.name()))
            else {
                return Err(error);
            };
            retries[block] += 1;
            let retry = retries[block];
            if !RETRIES[block].allows(error.name(), retry) {
                return Err(error);
            }
            let seconds = full_jitter(RETRIES[block].ceiling_seconds(retry));
            warn!(?step, error = error.name(), retry, seconds, "retrying");
            self.observe.stage(Stage::Retrying {
                step,
                error: &error,
                retry,
                seconds,
            });
            self.pause.pause(seconds).await;
        }
    }

    /// The definition's ReportFailure: publishes the document as far as it got, with the
    /// failure's name and cause. A failure to report is logged and changes nothing else
    /// (ReportLost): the replication still ends with its own error.
    async fn report_failure(&self, document: &Replication, error: &FerryError) {
        let mut detail = serde_json::to_value(document).unwrap_or_default();
        detail["failure"] = serde_json::json!({"Error": error.name(), "Cause": cause(error)});
        let mut retry = 0;
        loop {
            match self.deps.events.publish(FAILED_EVENT, &detail, &[]).await {
                Ok(()) => return,
                Err(lost) if retry < REPORT_RETRY.max_attempts => {
                    retry += 1;
                    warn!(error = %lost, retry, "publishing the failure failed: retrying");
                    self.pause
                        .pause(full_jitter(REPORT_RETRY.ceiling_seconds(retry)))
                        .await;
                }
                Err(lost) => {
                    warn!(error = %lost, failure = error.name(), "the failure could not be published: it ends the replication all the same");
                    return;
                }
            }
        }
    }
}

/// The `Cause` Step Functions gives a caught error: AWS's own reason for a copy AWS failed (the
/// definition's CopyFailed state), else the Lambda's error object.
fn cause(error: &FerryError) -> String {
    match error {
        FerryError::CopyFailed { reason, .. } => reason.clone(),
        other => serde_json::json!({"errorType": other.name(), "errorMessage": other.to_string()})
            .to_string(),
    }
}

/// Full jitter, as the definition's `"JitterStrategy": "FULL"`: anywhere up to `ceiling`.
fn full_jitter(ceiling: f64) -> f64 {
    let unit = RandomState::new().hash_one(std::time::SystemTime::now()) as f64 / u64::MAX as f64;
    ceiling * unit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_retry_pause_doubles_up_to_its_cap() {
        let throttled = &RETRIES[0];
        let pauses: Vec<f64> = (1..=8).map(|n| throttled.ceiling_seconds(n)).collect();
        assert_eq!(pauses, [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]);
        assert_eq!(REPORT_RETRY.ceiling_seconds(4), 16.0);
    }

    #[test]
    fn the_flow_retries_exactly_the_retryable_names() {
        let mut retried: Vec<&str> = RETRIES
            .iter()
            .flat_map(|r| r.errors.iter().copied())
            .collect();
        retried.sort_unstable();
        let mut retryable = FerryError::RETRYABLE.to_vec();
        retryable.sort_unstable();
        assert_eq!(retried, retryable);
    }

    #[test]
    fn a_block_allows_only_its_own_names_and_attempts() {
        let quota = &RETRIES[1];
        assert!(quota.allows("CopyQuotaExceeded", 100));
        assert!(!quota.allows("CopyQuotaExceeded", 101));
        assert!(!quota.allows("Throttled", 1));
    }
}
