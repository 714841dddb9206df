//! Logging: JSON under Lambda's `AWS_LAMBDA_LOG_FORMAT=JSON`, the level from
//! `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default INFO). ferry logs ids and outcomes, never
//! documents or credentials; the SDK and HTTP crates never log at TRACE, where they dump whole
//! HTTP bodies (documents, AWS responses): a TRACE that would reach them is DEBUG.

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

/// The filter for `directives` (e.g. `info`, `debug,ferry_core=trace`), with the SDK capped:
/// a TRACE that would reach a body-dumping crate (the default level, or a directive naming the
/// crate) is DEBUG for it. Any lower level stays as asked: at INFO the SDK logs at INFO.
pub fn filter(directives: &str) -> EnvFilter {
    let dumps_bodies = |target: &str| BODY_DUMPING_CRATES.iter().any(|k| target.starts_with(k));
    let mut capped: Vec<String> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|directive| match directive.split_once('=') {
            Some((target, "trace")) if dumps_bodies(target) => format!("{target}=debug"),
            _ => directive.to_string(),
        })
        .collect();
    if capped.iter().any(|d| d == "trace") {
        capped.extend(BODY_DUMPING_CRATES.iter().map(|k| format!("{k}=debug")));
    }
    EnvFilter::builder().parse_lossy(capped.join(","))
}

/// Installs the global subscriber; called once from each Lambda's `main`.
pub fn init() {
    let directives = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    init_with(&directives, json, std::io::stdout);
}

/// Installs the global subscriber for `directives` (capped by [`filter`]), as JSON
/// or text, to `writer`; the CLI calls it with the level its `-q`/`-v` or `RUST_LOG` asks for.
pub fn init_with<W>(directives: &str, json: bool, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_writer(writer)
        .with_env_filter(filter(&directives.to_lowercase()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::filter;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn at_info_the_sdk_logs_at_info_and_at_trace_it_is_capped_at_debug() {
        assert_eq!(filter("info").max_level_hint(), Some(LevelFilter::INFO));
        assert_eq!(filter("warn").max_level_hint(), Some(LevelFilter::WARN));
        let traced = filter("trace").to_string();
        assert!(
            traced.contains("hyper=debug") && traced.contains("aws_smithy_runtime=debug"),
            "{traced}"
        );
        let named = filter("info,aws_smithy_runtime=trace,ferry_core=trace").to_string();
        assert!(
            named.contains("aws_smithy_runtime=debug") && named.contains("ferry_core=trace"),
            "{named}"
        );
        assert!(!named.contains("hyper"), "{named}");
    }
}
