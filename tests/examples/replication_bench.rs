//! Per-replication figures on moto's Step Functions engine (benches/ferry_bench.py runs it for
//! docs/PERFORMANCE.md): the deployed definitions through the test harness
//! (`ferry_tests::state_machine`), one run for one encrypted AMI (an 8 GiB root and a 20 GiB data
//! snapshot, each under its own key) to one destination Region, triggered by its `EC2 AMI State
//! Change` event, once per copy duration. Prints one JSON object: per run, the state transitions
//! (the run's own, its Distributed Map children's, the replication execution's), each
//! execution's history events and largest payload, every Lambda invocation with the AWS calls it
//! made and its round trip, the engine's own AWS calls, and when check-copy saw the copy done.
//!
//! The local AWS keeps a copy pending for the copy duration of *its* clock, which runs ahead of
//! the wall clock by what `/_ferry/advance` added; the engine's Wait states last 250 ms. So that a
//! 2-hour copy takes the checks it takes on AWS, the engine's Lambda calls go through a clock
//! proxy in front of the harness's Lambda router: before each check-copy it moves the local
//! AWS's clock to when the Wait the previous answer asked for (`nextCheckSeconds`) ends, and it
//! hands check-copy `copy.startedAt` moved back by the clock's lead (and moves the answer's
//! forward again), because the binaries read the wall clock: the elapsed time check-copy computes
//! is the local AWS's, as the tests' `EmulatorClock` gives the in-process handlers. Nothing else
//! in a request or an answer changes.
//!
//! Run: `cargo run -p ferry-tests --example replication_bench -- [copy minutes …]` (default
//! 5 30 120); `FERRY_FUNCTIONS_DIR=<target>/release` runs the release binaries instead of building
//! the debug ones.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ferry_tests::state_machine::{ExecutionRecord, FUNCTIONS, STATE_MACHINE_ACCESS_KEY};
use ferry_tests::world::{ami_available, World, SELECTION_TAG, SOURCE};
use serde_json::{json, Value};

const DESTINATION: &str = "us-west-2";
const ALIAS: &str = "alias/ferry-bench-usw2";

/// The README's example, as a deployed policy: AMIs tagged for replication go to us-west-2 under
/// an alias, with their tags, and FSR in two zones (disabled by the sweep after 24 hours).
fn policy() -> Value {
    ferry_tests::world::policy(
        json!([{
            "region": DESTINATION,
            "kmsKeyId": ALIAS,
            "fsr": {"availabilityZones": ["us-west-2a", "us-west-2b"], "disableAfterHours": 24},
        }]),
        20,
    )
}

fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`): the answer's head and body.
fn exchange(address: &str, request: &[u8]) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    stream.write_all(request).expect("request sent");
    let mut answer = vec![];
    stream.read_to_end(&mut answer).expect("answer read");
    split_message(&answer)
}

fn split_message(message: &[u8]) -> (String, Vec<u8>) {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..end]).to_string();
    let body = message.get(end + 4..).unwrap_or_default().to_vec();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "a chunked message: {head}"
    );
    (head, body)
}

/// `head` with `Content-Length` set to `length` and `Connection: close`.
fn with_length(head: &str, length: usize) -> Vec<u8> {
    let mut lines: Vec<String> = head
        .split("\r\n")
        .filter(|line| {
            let name = line
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            name != "content-length" && name != "connection"
        })
        .map(str::to_string)
        .collect();
    lines.push(format!("Content-Length: {length}"));
    lines.push("Connection: close".into());
    format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
}

fn control(address: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (answer_head, answer) = exchange(address, &[head.as_bytes(), body.as_bytes()].concat());
    assert!(
        answer_head.contains(" 200 "),
        "{method} {path}: {answer_head}"
    );
    serde_json::from_slice(&answer).expect("a JSON answer")
}

/// What the clock proxy keeps between invocations.
#[derive(Default)]
struct ProxyState {
    /// Seconds the local AWS's clock runs ahead of the wall clock.
    lead: f64,
    /// On the local AWS's clock, when the Wait after the last start-copy or check-copy ends.
    next_check_at: Option<f64>,
    invocations: Vec<Value>,
}

/// The clock proxy: Lambda's Invoke API in front of the harness's router (module docs).
struct ClockProxy {
    endpoint: String,
    state: Arc<Mutex<ProxyState>>,
}

impl ClockProxy {
    fn start(aws: &str, router: &str) -> ClockProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let (aws, router, shared) = (aws.to_string(), router.to_string(), state.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (aws, router, state) = (aws.clone(), router.clone(), shared.clone());
                std::thread::spawn(move || relay(stream, &aws, &router, &state));
            }
        });
        ClockProxy { endpoint, state }
    }
}

/// Reads one request from the engine, hands it to the router, and answers.
fn relay(mut engine: TcpStream, aws: &str, router: &str, state: &Mutex<ProxyState>) {
    let mut request = vec![];
    let mut buffer = [0u8; 16 * 1024];
    let (head, mut body) = loop {
        let read = engine.read(&mut buffer).expect("request read");
        assert!(read > 0, "the engine closed the connection mid-request");
        request.extend_from_slice(&buffer[..read]);
        if request.windows(4).any(|w| w == b"\r\n\r\n") {
            break split_message(&request);
        }
    };
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while body.len() < length {
        let read = engine.read(&mut buffer).expect("body read");
        assert!(read > 0, "the engine closed the connection mid-body");
        body.extend_from_slice(&buffer[..read]);
    }
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let function = FUNCTIONS
        .iter()
        .find(|f| path.contains(&format!("ferry-{f}")))
        .copied();
    let mut input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);

    // The clock: the Wait ends, on the local AWS's clock, before check-copy runs.
    let lead = {
        let mut clock = state.lock().expect("proxy state");
        if function == Some("check-copy") {
            if let Some(at) = clock.next_check_at.take() {
                let ahead = at - (wall_clock() + clock.lead);
                if ahead > 0.0 {
                    let advanced = control(
                        aws,
                        "POST",
                        "/_ferry/advance",
                        Some(json!({"seconds": ahead})),
                    );
                    clock.lead = advanced["offsetSeconds"].as_f64().expect("offsetSeconds");
                }
            }
        }
        clock.lead
    };
    let shift = lead.round() as i64;
    if function == Some("check-copy") {
        move_started_at(&mut input, -shift);
        body = input.to_string().into_bytes();
    }
    let requested_at = wall_clock() + lead;
    let calls_before = calls(aws).len();

    let sent = Instant::now();
    let (answer_head, mut answer) = exchange(
        router,
        &[with_length(&head, body.len()), body.clone()].concat(),
    );
    let round_trip_ms = sent.elapsed().as_secs_f64() * 1000.0;

    let made: Vec<String> = calls(aws)
        .iter()
        .skip(calls_before)
        .filter(|c| function.is_some_and(|f| c["accessKeyId"] == f))
        .map(|c| {
            format!(
                "{}:{}",
                c["service"].as_str().unwrap_or("?"),
                c["action"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let failed = !answer_head.contains(" 200 ") || answer_head.contains("X-Amz-Function-Error");
    let mut output: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    let mut state = state.lock().expect("proxy state");
    if !failed && matches!(function, Some("start-copy" | "check-copy")) {
        move_started_at(&mut output, shift);
        answer = output.to_string().into_bytes();
        if output["copy"]["status"] == "pending" {
            let wait = output["copy"]["nextCheckSeconds"].as_f64().unwrap_or(0.0);
            state.next_check_at = Some(wall_clock() + state.lead + wait);
        }
    }
    let step = match function {
        Some("plan-replication") if input.get("summarize").is_some() => "Summarize",
        Some("plan-replication") => "Plan",
        Some("start-copy") => "StartCopy",
        Some("check-copy") => "CheckCopy",
        Some("verify-encryption") => "VerifyEncryption",
        Some("tag-lineage") => "TagLineage",
        Some("enable-fsr") => "EnableFsr",
        _ => "other",
    };
    state.invocations.push(json!({
        "state": step,
        "function": function,
        "failed": failed,
        "at": requested_at,
        "roundTripMs": round_trip_ms,
        "calls": made,
        "copy": output.get("copy").cloned().unwrap_or(Value::Null),
    }));
    drop(state);
    let _ = engine.write_all(&[with_length(&answer_head, answer.len()), answer].concat());
}

fn move_started_at(document: &mut Value, seconds: i64) {
    if let Some(started) = document["copy"]["startedAt"].as_i64() {
        document["copy"]["startedAt"] = json!(started + seconds);
    }
}

fn calls(aws: &str) -> Vec<Value> {
    control(aws, "GET", "/_ferry/calls", None)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entered(record: &ExecutionRecord) -> Vec<&str> {
    record
        .states
        .iter()
        .filter(|e| e["type"] == "StateEntered")
        .filter_map(|e| e["state"].as_str())
        .collect()
}

fn by_action(calls: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for call in calls {
        let action = format!(
            "{}:{}",
            call["service"].as_str().unwrap_or("?"),
            call["action"].as_str().unwrap_or("?")
        );
        *counts.entry(action).or_insert(0) += 1;
    }
    counts
}

async fn one_replication(copy_minutes: u64) -> Value {
    let copy_seconds = copy_minutes * 60;
    let world = World::start(policy(), copy_seconds as f64).await;
    world.aliased_key(DESTINATION, ALIAS).await;
    let (root_key, data_key) = (world.seed.key(SOURCE).await, world.seed.key(SOURCE).await);
    let (image, _) = world.seed.golden_image(SOURCE, &root_key, &data_key).await;
    world
        .seed
        .ec2(SOURCE)
        .create_tags()
        .resources(&image)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(SELECTION_TAG)
                .value("true")
                .build(),
        )
        .send()
        .await
        .expect("CreateTags");

    let aws = world.aws.endpoint.trim_start_matches("http://").to_string();
    let router = world
        .sfn
        .lambda_endpoint
        .trim_start_matches("http://")
        .to_string();
    let proxy = ClockProxy::start(&aws, &router);
    world
        .aws
        .configure(json!({"lambdaEndpoint": proxy.endpoint}));
    let seeded = world.aws.calls().len();

    let started = Instant::now();
    let run = world.sfn.run(&ami_available(SOURCE, &image)).await;
    let wall_seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        (run.status.as_str(), run.replications.len()),
        ("SUCCEEDED", 1),
        "{}: {:?} {:?}",
        run.name,
        run.error,
        run.cause
    );
    let replication = &run.replications[0];
    let invocations = std::mem::take(&mut proxy.state.lock().expect("proxy state").invocations);

    // The functions' calls and the engine's own (the test's DescribeExecution polls excluded).
    let all = world.aws.calls();
    let after_seeding = all.get(seeded..).unwrap_or_default();
    let of = |caller: &dyn Fn(&str) -> bool| -> Vec<Value> {
        after_seeding
            .iter()
            .filter(|c| caller(c["accessKeyId"].as_str().unwrap_or("")))
            .cloned()
            .collect()
    };
    let function_calls = of(&|key| FUNCTIONS.contains(&key));
    let engine_calls = of(&|key| key == STATE_MACHINE_ACCESS_KEY);

    let started_copy = invocations
        .iter()
        .find(|i| i["state"] == "StartCopy")
        .and_then(|i| i["at"].as_f64())
        .expect("start-copy ran");
    let completing = invocations
        .iter()
        .find(|i| i["state"] == "CheckCopy" && i["copy"]["status"] == "completed")
        .and_then(|i| i["at"].as_f64())
        .expect("a check saw the copy completed");
    let (run_own, replication_own) = (run.run.state_transitions(), replication.state_transitions());
    json!({
        "copyMinutes": copy_minutes,
        "wallSeconds": wall_seconds,
        "transitions": {
            "total": run.state_transitions,
            "run": run_own,
            "mapChildren": run.state_transitions - run_own - replication_own,
            "replication": replication_own,
        },
        "checkCopyInvocations": entered(replication).iter().filter(|s| **s == "CheckCopy").count(),
        "path": {"run": entered(&run.run), "replication": entered(replication)},
        "executions": {
            "run": {"historyEvents": run.run.history_events, "largestPayloadBytes": run.run.largest_payload},
            "replication": {"historyEvents": replication.history_events, "largestPayloadBytes": replication.largest_payload},
        },
        "invocations": invocations,
        "calls": by_action(&function_calls),
        "engineCalls": by_action(&engine_calls),
        "copyStartedAt": started_copy,
        "detectionLagSeconds": completing - (started_copy + copy_seconds as f64),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let minutes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|m| m.parse().expect("copy minutes"))
        .collect();
    let minutes = if minutes.is_empty() {
        vec![5, 30, 120]
    } else {
        minutes
    };
    let mut runs = vec![];
    for m in minutes {
        let run = one_replication(m).await;
        eprintln!(
            "replication_bench: {m} min copy: {} transitions, {} checks, lag {:.0} s, {:.0} s wall",
            run["transitions"]["total"],
            run["checkCopyInvocations"],
            run["detectionLagSeconds"].as_f64().unwrap_or(0.0),
            run["wallSeconds"].as_f64().unwrap_or(0.0)
        );
        runs.push(run);
    }
    // The one line the bench reads.
    let report = json!({ "replications": runs });
    std::io::stdout()
        .write_all(format!("{report}\n").as_bytes())
        .expect("stdout");
}
