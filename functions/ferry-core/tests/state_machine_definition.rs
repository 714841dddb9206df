//! The deployed ASL routes on exactly the names `FerryError` declares, and every Lambda task
//! has the standard retry block: checked on `statemachine/ferry.asl.json` (the run) and
//! `statemachine/replication.asl.json` (one replication) themselves.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ferry_core::FerryError;
use serde_json::Value;

const LAMBDA_ERRORS: [&str; 4] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];
/// A crashed or killed function (out of memory, timeout, panic with abort).
const CRASH_ERRORS: [&str; 3] = ["Lambda.Unknown", "Runtime.ExitError", "Sandbox.Timedout"];

const DEFINITIONS: [&str; 2] = ["ferry.asl.json", "replication.asl.json"];

/// Prefixes of the names AWS itself raises (Lambda, the runtime, Step Functions and the
/// services its integrations call); every other name a state routes on is a ferry error.
const INFRASTRUCTURE_PREFIXES: [&str; 6] = [
    "Lambda.",
    "Runtime.",
    "Sandbox.",
    "States.",
    "EventBridge.",
    "StepFunctions.",
];

fn definition(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../statemachine")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every state of the definition, nested Map processors included.
fn states(definition: &Value) -> Vec<(String, Value)> {
    let mut found = vec![];
    for (name, state) in definition["States"].as_object().unwrap() {
        found.push((name.clone(), state.clone()));
        if let Some(processor) = state.get("ItemProcessor").or_else(|| state.get("Iterator")) {
            found.extend(states(processor));
        }
    }
    found
}

fn names(list: &Value) -> BTreeSet<String> {
    list["ErrorEquals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

fn tasks() -> Vec<(String, Value)> {
    DEFINITIONS
        .iter()
        .flat_map(|file| states(&definition(file)))
        .filter(|(_, s)| s["Type"] == "Task")
        .collect()
}

fn is_lambda(task: &Value) -> bool {
    task["Resource"].as_str().unwrap().ends_with("FunctionArn}")
}

fn lambda_tasks() -> Vec<(String, Value)> {
    tasks().into_iter().filter(|(_, s)| is_lambda(s)).collect()
}

/// The ferry error names any of `task`'s `Retry` blocks retries.
fn ferry_names_retried(task: &Value) -> BTreeSet<String> {
    let retries = task["Retry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    retries
        .iter()
        .flat_map(names)
        .filter(|name| !INFRASTRUCTURE_PREFIXES.iter().any(|p| name.starts_with(p)))
        .collect()
}

#[test]
fn every_lambda_task_catches_the_named_errors_and_infrastructure_failures_by_name() {
    let declared: BTreeSet<String> = FerryError::NAMES.iter().map(|n| n.to_string()).collect();
    let infrastructure: BTreeSet<String> = LAMBDA_ERRORS
        .iter()
        .chain(&CRASH_ERRORS)
        .chain(&["States.Timeout"])
        .map(|n| n.to_string())
        .collect();
    let tasks = lambda_tasks();
    assert_eq!(
        tasks.len(),
        13,
        "plan, disable due FSR, sweep boot checks, retire replicas and summarize; start, check, verify, boot check, end boot check, wire, tag and enable FSR"
    );
    for (name, task) in tasks {
        let catches = task["Catch"].as_array().unwrap();
        assert_eq!(catches.len(), 2, "{name}");
        assert_eq!(
            names(&catches[0]),
            declared,
            "{name} catches exactly FerryError::NAMES first"
        );
        assert_eq!(
            names(&catches[1]),
            infrastructure,
            "{name} then crashes and Lambda service failures, named"
        );
        assert_eq!(
            catches[0]["Next"], catches[1]["Next"],
            "{name}: both reach the failure path"
        );
    }
    for file in DEFINITIONS {
        let text = definition(file).to_string();
        assert!(
            !text.contains("States.ALL"),
            "{file}: no catch-all hides causes"
        );
    }
}

#[test]
fn every_lambda_task_has_the_standard_retry_block_and_retries_only_retryable_names() {
    for (name, task) in lambda_tasks() {
        let retries = task["Retry"].as_array().unwrap();
        assert_eq!(
            names(&retries[0]),
            LAMBDA_ERRORS.iter().map(|n| n.to_string()).collect(),
            "{name}"
        );
        assert_eq!(
            names(&retries[1]),
            CRASH_ERRORS.iter().map(|n| n.to_string()).collect(),
            "{name}: a crashed function is retried (every step is idempotent)"
        );
        for retry in &retries[2..] {
            for error in names(retry) {
                assert!(
                    FerryError::RETRYABLE.contains(&error.as_str()),
                    "{name} retries {error}"
                );
            }
            assert_eq!(retry["JitterStrategy"], "FULL", "{name}");
        }
    }
}

#[test]
fn every_lambda_task_retries_exactly_the_retryable_ferry_errors_and_no_other_task_retries_one() {
    let retryable: BTreeSet<String> = FerryError::RETRYABLE
        .iter()
        .map(|n| n.to_string())
        .collect();
    let tasks = tasks();
    assert!(
        tasks.len() > lambda_tasks().len(),
        "service integrations too"
    );
    for (name, task) in tasks {
        let retried = ferry_names_retried(&task);
        let unretryable: Vec<&String> = retried.difference(&retryable).collect();
        assert!(
            unretryable.is_empty(),
            "{name} retries {unretryable:?}, which FerryError::RETRYABLE does not declare"
        );
        if is_lambda(&task) {
            let missing: Vec<&String> = retryable.difference(&retried).collect();
            assert!(
                missing.is_empty(),
                "{name} does not retry {missing:?}, which FerryError::RETRYABLE declares"
            );
        } else {
            assert!(
                retried.is_empty(),
                "{name} calls no ferry function, yet retries {retried:?}"
            );
        }
    }
}

#[test]
fn function_arns_come_from_definition_substitutions() {
    let expected = [
        "PlanReplicationFunctionArn",
        "StartCopyFunctionArn",
        "CheckCopyFunctionArn",
        "VerifyEncryptionFunctionArn",
        "BootCheckFunctionArn",
        "WireDestinationFunctionArn",
        "TagLineageFunctionArn",
        "EnableFsrFunctionArn",
        "RetireReplicasFunctionArn",
    ];
    let used: BTreeSet<String> = lambda_tasks()
        .iter()
        .map(|(_, t)| {
            t["Resource"]
                .as_str()
                .unwrap()
                .trim_matches(|c| c == '$' || c == '{' || c == '}')
                .to_string()
        })
        .collect();
    assert_eq!(used, expected.iter().map(|s| s.to_string()).collect());
}

#[test]
fn nothing_that_passes_through_a_state_is_a_list_of_sources() {
    let run = definition("ferry.asl.json");
    let fan_out = &run["States"]["Regions"];
    assert_eq!(
        fan_out["ItemsPath"], "$.regions",
        "one item per destination Region"
    );
    let regions = &fan_out["ItemProcessor"]["States"]["Replications"];
    assert_eq!(
        regions["ItemProcessor"]["ProcessorConfig"]["Mode"],
        "DISTRIBUTED"
    );
    assert_eq!(
        regions["ItemReader"]["Resource"], "arn:aws:states:::s3:getObject",
        "the work list is read from S3, never carried in the state"
    );
    assert_eq!(regions["ToleratedFailurePercentage"], 100);
    assert!(regions["ResultWriter"].is_object());
    assert_eq!(regions["ResultPath"], Value::Null);
    assert_eq!(fan_out["ResultPath"], Value::Null);
    let replicate = &regions["ItemProcessor"]["States"]["Replicate"];
    assert_eq!(
        replicate["Resource"],
        "arn:aws:states:::states:startExecution.sync:2"
    );
    let text = run.to_string() + &definition("replication.asl.json").to_string();
    for filter in ["[?(", "[*]"] {
        assert!(
            !text.contains(filter),
            "no JSONPath that may match nothing ({filter}): engines disagree on its answer"
        );
    }
    let replication = definition("replication.asl.json");
    assert!(
        replication["States"]
            .as_object()
            .unwrap()
            .values()
            .all(|s| s["Type"] != "Wait"
                || s["SecondsPath"] == "$.copy.nextCheckSeconds"
                || s["SecondsPath"] == "$.evidence.bootCheck.nextCheckSeconds"),
        "the only waits are between copy checks and boot-check looks: FSR is disabled by the scheduled step"
    );
}

#[test]
fn a_boot_check_waits_as_data_and_every_failure_after_its_launch_terminates_its_instance() {
    let replication = definition("replication.asl.json");
    let states = &replication["States"];
    assert_eq!(states["VerifyEncryption"]["Next"], "BootCheck");
    let boot = &states["BootCheck"];
    assert_eq!(boot["Parameters"]["run.$"], "$$.Execution.Id");
    assert_eq!(boot["Next"], "BootCheckDone");
    assert_eq!(states["BootCheckDone"]["Default"], "WireDestination");
    assert_eq!(
        states["BootCheckDone"]["Choices"][0]["Next"], "WaitForBoot",
        "a booting instance is waited for by the state machine, not by the Lambda"
    );
    assert_eq!(
        states["WaitForBoot"]["SecondsPath"],
        "$.evidence.bootCheck.nextCheckSeconds"
    );
    assert_eq!(states["WaitForBoot"]["Next"], "BootCheck");
    for catch in boot["Catch"].as_array().unwrap() {
        assert_eq!(catch["Next"], "EndBootCheck", "crashes included");
        assert_eq!(catch["ResultPath"], "$.failure");
    }
    let end = &states["EndBootCheck"];
    assert_eq!(end["Parameters"]["operation"], "end");
    assert_eq!(end["Next"], "ReportFailure");
    for catch in end["Catch"].as_array().unwrap() {
        assert_eq!(catch["Next"], "ReportFailure");
        assert_ne!(
            catch["ResultPath"], "$.failure",
            "the original failure is what the execution ends with"
        );
    }
    let run = definition("ferry.asl.json");
    assert_eq!(run["States"]["DisableDueFsr"]["Next"], "SweepBootChecks");
    assert_eq!(
        run["States"]["SweepBootChecks"]["Parameters"]["operation"],
        "sweep"
    );
    assert_eq!(run["States"]["SweepBootChecks"]["Next"], "AnyRetention");
    assert_eq!(
        run["States"]["RetireReplicas"]["Parameters"]["destinations.$"],
        "$.retention"
    );
}
