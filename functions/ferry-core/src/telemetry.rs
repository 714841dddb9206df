//! Logging: JSON under Lambda's `AWS_LAMBDA_LOG_FORMAT=JSON`, the level from
//! `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default INFO). ferry logs ids and outcomes, never
//! documents or credentials; the SDK and HTTP crates are capped at DEBUG whatever the level,
//! because at TRACE they dump whole HTTP bodies (documents, AWS responses).

use tracing_subscriber::EnvFilter;

/// Crates whose TRACE output includes raw HTTP bodies.
const BODY_DUMPING_CRATES: [&str; 7] = [
    "aws_smithy_runtime",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_runtime",
    "aws_sdk",
    "hyper",
    "hyper_util",
];

/// The filter for `directives` (e.g. `info`, `debug,ferry_core=trace`), with the SDK capped.
pub fn filter(directives: &str) -> EnvFilter {
    let caps: Vec<String> = BODY_DUMPING_CRATES
        .iter()
        .map(|krate| format!("{krate}=debug"))
        .collect();
    EnvFilter::builder().parse_lossy(format!("{directives},{}", caps.join(",")))
}

/// Installs the global subscriber; called once from each Lambda's `main`.
pub fn init() {
    let directives = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter(&directives.to_lowercase()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
