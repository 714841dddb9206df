//! Terminal output shared by the commands: named errors with their hint, progress lines.

use std::io::IsTerminal;
use std::process::ExitCode;

use ferry_core::flow::{Observe, Stage};
use ferry_core::handlers::Step;
use ferry_core::FerryError;
use indicatif::{ProgressBar, ProgressStyle};

pub const FAILED: u8 = 1;
pub const FLAGGED: u8 = 3;

/// A Region flag's value: an AWS Region code that exists, surrounding spaces ignored. Anything
/// else is a usage error (exit 2) naming the value, before any AWS call.
pub fn region(value: &str) -> Result<String, String> {
    let region = value.trim();
    if ferry_core::rules::request::is_region(region) {
        Ok(region.to_string())
    } else {
        Err(format!("{region:?} is not an AWS Region (e.g. us-west-2)"))
    }
}

/// `values` in their order, each once.
pub fn each_once(values: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

/// Prints a named error the way every command does, and returns the exit code for it.
pub fn error(context: &str, error: &FerryError) -> ExitCode {
    eprintln!("error[{}]: {context}: {error}", error.name());
    eprintln!("  hint: {}", error.hint());
    ExitCode::from(FAILED)
}

/// Progress of one long-running thing: a spinner with elapsed time on a terminal, plain lines
/// otherwise (CI logs, pipes).
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
}

impl Progress {
    pub fn new(label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix}: {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
        }
    }

    pub fn update(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None => eprintln!("[{}] {message}", self.label),
        }
    }

    pub fn finish(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(message.to_string()),
            None => eprintln!("[{}] {message}", self.label),
        }
    }
}

impl Observe for Progress {
    fn stage(&self, stage: Stage<'_>) {
        let message = match stage {
            Stage::Running(Step::StartCopy) => "preflight: key, zones, source".to_string(),
            Stage::Running(Step::CheckCopy) => return,
            Stage::Running(Step::VerifyEncryption) => "verifying encryption".to_string(),
            Stage::Running(Step::WireDestination) => {
                "wiring launch templates and parameter".to_string()
            }
            Stage::Running(Step::TagLineage) => "tagging lineage, publishing evidence".to_string(),
            Stage::Running(Step::EnableFsr) => "fast snapshot restore".to_string(),
            Stage::Copying(copy) => format!(
                "copying → {} {} (check {}, next in {} s)",
                copy.destination_id,
                copy.progress.as_deref().unwrap_or_default(),
                copy.checks,
                copy.next_check_seconds
            ),
            Stage::Retrying {
                step,
                error,
                retry,
                seconds,
            } => format!(
                "{step:?}: {}, retry {retry} in {seconds:.0} s",
                error.name()
            ),
        };
        self.update(&message);
    }
}

#[cfg(test)]
mod tests {
    use super::{each_once, region};

    #[test]
    fn a_region_flag_takes_a_real_region_with_spaces_trimmed_and_names_a_typo() {
        assert_eq!(region(" eu-west-1").unwrap(), "eu-west-1");
        let typo = region("us-wset-2").unwrap_err();
        assert!(
            typo.contains("\"us-wset-2\" is not an AWS Region"),
            "{typo}"
        );
    }

    #[test]
    fn repeated_values_count_once_in_their_first_place() {
        let regions = ["us-west-2", "eu-west-1", "us-west-2"]
            .map(String::from)
            .to_vec();
        assert_eq!(each_once(regions), ["us-west-2", "eu-west-1"]);
    }
}
