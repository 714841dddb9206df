//! The event fixtures under `tests/fixtures/` (also used with `cargo lambda invoke --data-file`)
//! are documents the functions accept, or bad input they refuse with `InvalidRequest`.

use std::path::PathBuf;

use ferry_core::rules::request::validate;
use ferry_core::Replication;

fn fixtures(folder: &str) -> Vec<(PathBuf, serde_json::Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(folder);
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, json)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!found.is_empty(), "no fixtures in {}", dir.display());
    found
}

#[test]
fn request_fixtures_are_valid_requests() {
    for (path, json) in fixtures("start-copy") {
        let document =
            Replication::from_json(json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        validate(&document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn document_fixtures_carry_the_copy_state_later_steps_need() {
    for (path, json) in fixtures("check-copy") {
        let document = Replication::from_json(json).unwrap();
        assert!(
            document.copy_state().is_ok() && document.resolved_key().is_ok(),
            "{}",
            path.display()
        );
    }
    for (path, json) in fixtures("enable-fsr") {
        assert_eq!(json["operation"], "disable", "{}", path.display());
        Replication::from_json(json["replication"].clone()).unwrap();
    }
}

#[test]
fn invalid_fixtures_are_refused_with_invalid_request() {
    for (path, json) in fixtures("invalid") {
        let error = Replication::from_json(json)
            .and_then(|document| validate(&document).map(|_| ()))
            .unwrap_err();
        assert_eq!(
            error.name(),
            "InvalidRequest",
            "{}: {error}",
            path.display()
        );
    }
}

#[test]
fn the_readme_error_table_lists_every_error_name_with_its_retryability() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let rows: Vec<&str> = readme
        .lines()
        .filter(|line| line.starts_with("| `"))
        .collect();
    for name in ferry_core::FerryError::NAMES {
        let row = rows
            .iter()
            .find(|row| row.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("README lacks a row for {name}"));
        let retryable = row.trim_end_matches('|').trim_end().ends_with("| yes");
        let expected = ferry_core::FerryError::RETRYABLE.contains(&name);
        assert_eq!(retryable, expected, "README retryability of {name}");
    }
}

#[test]
fn every_function_fits_its_sdk_retries_inside_the_timeout_the_template_gives_it() {
    let template = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml"),
    )
    .unwrap();
    let values = |key: &str| -> Vec<u64> {
        template
            .lines()
            .filter_map(|line| line.trim().strip_prefix(key))
            .map(|value| value.trim().parse().unwrap())
            .collect()
    };
    // One Timeout (Globals) that no function overrides, and the variable that tells it to the SDK.
    let timeouts = values("Timeout:");
    assert_eq!(timeouts.len(), 1, "{timeouts:?}");
    assert_eq!(values("FERRY_FUNCTION_TIMEOUT_SECONDS:"), timeouts);
    let config = ferry_core::Config::from_lookup(|name| {
        (name == "FERRY_FUNCTION_TIMEOUT_SECONDS").then(|| timeouts[0].to_string())
    })
    .unwrap();
    let timeout = std::time::Duration::from_secs(timeouts[0]);
    assert_eq!(config.function_timeout, timeout);
    let margin = ferry_core::rules::retry_budget::FUNCTION_MARGIN;
    assert!(
        config.sdk.worst_case() + margin <= timeout
            && config.sdk.throttle_storm_worst_case() + margin <= timeout,
        "{:?}",
        config.sdk
    );
}
