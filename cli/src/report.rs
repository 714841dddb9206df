//! Terminal output shared by the commands: the exit codes, `--output`, named errors with their
//! hint, warnings, progress lines.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_core::flow::{Observe, Stage};
use ferry_core::handlers::Step;
use ferry_core::FerryError;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

pub const DONE: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const FLAGGED: u8 = 3;
pub const UNREACHABLE: u8 = 4;
pub const INTERRUPTED: u8 = 130;

/// Every exit code and its meaning, declared once: `--help` shows this table, and a test holds
/// the README's to it.
pub const EXIT_CODES: [(u8, &str); 6] = [
    (DONE, "done; nothing flagged"),
    (FAILED, "a replication failed (`error[Name]: …` and a `hint:` line on stderr), or what `status` names does not exist"),
    (USAGE, "usage error: a flag or its value (the message names the flag); nothing was done"),
    (FLAGGED, "`audit` (or `status`) flagged something"),
    (UNREACHABLE, "AWS could not be used: no Region, no or refused credentials, an unreachable endpoint, or an invalid FERRY_* setting"),
    (INTERRUPTED, "interrupted (Ctrl-C): copies already started go on in AWS; the same command resumes them"),
];

/// The exit-code table as `--help` prints it.
pub fn exit_codes_help() -> String {
    let rows: Vec<String> = EXIT_CODES
        .iter()
        .map(|(code, meaning)| format!("  {code:<4}{meaning}"))
        .collect();
    format!("Exit codes:\n{}", rows.join("\n"))
}

/// A command's `--help` epilogue: its examples, then the exit codes.
pub fn long_help(examples: &str) -> String {
    format!("{examples}\n\n{}", exit_codes_help())
}

/// `--output`, as the AWS CLI's: what goes to stdout. Progress, warnings and errors always go
/// to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
    Csv,
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// What Ctrl-C prints before ferry exits 130; the last one set wins.
static ON_INTERRUPT: std::sync::Mutex<Option<fn() -> String>> = std::sync::Mutex::new(None);

/// On Ctrl-C, print `message()` on stderr and exit 130 (the handler is installed once).
pub fn on_interrupt(message: fn() -> String) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    *ON_INTERRUPT.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            let message = *ON_INTERRUPT.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(message) = message {
                eprintln!("\n{}", message());
            }
            std::process::exit(INTERRUPTED.into());
        });
    });
}

/// `-q`: only results and errors; no progress lines or warnings.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A warning, by name, on stderr (not with `-q`).
pub fn warn(name: &str, message: &str) {
    if !is_quiet() {
        eprintln!("warning[{name}]: {message}");
    }
}

/// One failure: `error[Name]: message` and a `hint:` line on stderr; returns `code`.
pub fn failure(name: &str, message: &str, hint: &str, code: u8) -> ExitCode {
    eprintln!("error[{name}]: {message}");
    eprintln!("  hint: {hint}");
    ExitCode::from(code)
}

/// A usage error (exit 2) naming the flag, before anything was done.
pub fn usage(flag: &str, message: &str, command: &str) -> ExitCode {
    failure(
        "InvalidRequest",
        &format!("{flag}: {message}"),
        &format!("`ferry {command} --help` lists each flag's accepted values"),
        USAGE,
    )
}

/// The exit code for a replication's error: 4 when AWS could not be reached at all, else 1.
pub fn exit_for(error: &FerryError) -> u8 {
    match error {
        FerryError::AwsError { code, .. } if code == "Transport" => UNREACHABLE,
        _ => FAILED,
    }
}

/// A failed AWS call the CLI made itself (Step Functions, STS): one line, `error[Code]`, never the
/// SDK's debug form (that is logged at DEBUG, `-vv`). A name that does not exist is exit 1;
/// anything else (refused, unreachable) is exit 4.
pub fn sdk_failure<E, R>(
    operation: &str,
    error: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> ExitCode
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match error.as_service_error() {
        Some(service) => {
            let code = service.code().unwrap_or("Unknown");
            let exit = if code.ends_with("DoesNotExist") || code.ends_with("NotFound") {
                FAILED
            } else {
                UNREACHABLE
            };
            failure(
                code,
                &format!(
                    "{operation}: {}",
                    service.message().unwrap_or("no message")
                ),
                "check the ARN (its Region, account and name) and that your credentials may call it",
                exit,
            )
        }
        None => failure(
            "Unreachable",
            &format!(
                "{operation}: {}",
                ferry_core::adapters::sdk::error_chain(error)
            ),
            "check --endpoint-url / AWS_ENDPOINT_URL, the network and any proxy; -vv shows each attempt",
            UNREACHABLE,
        ),
    }
}

/// An error as `--output json` carries it.
pub fn error_json(error: &FerryError) -> Value {
    json!({"name": error.name(), "message": error.to_string(), "hint": error.hint()})
}

/// A JSON value as a CSV field: strings bare, null empty.
pub fn field_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A CSV field, quoted when it must be.
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// One CSV line.
pub fn csv_row<S: AsRef<str>>(fields: &[S]) -> String {
    fields
        .iter()
        .map(|f| csv_field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// `records` as CSV on stdout: the header, then one row per record, each column the record's
/// value at a JSON pointer (empty where it has none).
pub fn print_csv(records: &[Value], columns: &[(&str, &str)]) {
    let header: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    println!("{}", header.join(","));
    for record in records {
        let row: Vec<String> = columns
            .iter()
            .map(|(_, pointer)| record.pointer(pointer).map_or_else(String::new, field_text))
            .collect();
        println!("{}", csv_row(&row));
    }
}

/// Pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

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
    failure(
        error.name(),
        &format!("{context}: {error}"),
        error.hint(),
        exit_for(error),
    )
}

/// Progress of one long-running thing: a spinner with elapsed time on a terminal, plain lines
/// otherwise (CI logs, pipes).
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
}

impl Progress {
    pub fn new(label: &str) -> Self {
        let bar = (!is_quiet() && std::io::stderr().is_terminal()).then(|| {
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
            None if is_quiet() => {}
            None => eprintln!("[{}] {message}", self.label),
        }
    }

    pub fn finish(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(message.to_string()),
            None if is_quiet() => {}
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
            Stage::Running(Step::BootCheck) => return,
            Stage::Booting(check) => format!(
                "boot check: {} from {} booting (look {}, next in {} s)",
                check.instance_id, check.image_id, check.checks, check.next_check_seconds
            ),
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
