//! The real state machines, locally: `statemachine/ferry.asl.json` (the run) and
//! `statemachine/replication.asl.json` (one replication), with the template's
//! `DefinitionSubstitutions` filled in, executed by moto's own Step Functions engine inside the
//! local AWS (Distributed Map, S3 `ItemReader`/`ResultWriter` and `startExecution.sync:2`
//! included), whose Lambda Task states invoke the real Lambda binaries:
//!
//! ```text
//! local AWS (moto + engine) ──Invoke──▶ lambda_router.py ──▶ cargo lambda watch --only-lambda-apis ◀──poll── the 7 function binaries
//!     ▲  S3 · EC2 · KMS · EventBridge · Step Functions                                                              │
//!     └───────────────────────────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The binaries are the ones `cargo build --workspace --all-targets` makes (run once per test
//! process; the same feature set as `cargo test --workspace --all-targets`, so nothing but the
//! seven binaries is ever rebuilt for it). `cargo lambda watch` only serves the Lambda APIs; this
//! harness starts the binaries against it, so watch never runs cargo itself.
//!
//! One [`LocalStepFunctions`] per test, over the test's own [`LocalAws`]: the functions read
//! their environment (endpoint, policy, bucket) once at start. Its processes stop when it
//! drops, and with the test process (parent-death signal; the router also exits at stdin EOF).
//!
//! An [`Execution`] is a run with every replication execution it started: their histories are
//! read back with `GetExecutionHistory`, as AWS keeps them, and measured (events, largest
//! state input or output) against Step Functions' hard limits.

use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use serde_json::{json, Value};

use crate::local_aws::repo_root;
use crate::LocalAws;

/// The Lambda binaries, as SAM's `BuildProperties.Binary` names them.
pub const FUNCTIONS: [&str; 9] = [
    "plan-replication",
    "start-copy",
    "check-copy",
    "verify-encryption",
    "boot-check",
    "wire-destination",
    "tag-lineage",
    "enable-fsr",
    "retire-replicas",
];

/// `DefinitionSubstitutions` key → binary, as in infra/template.yaml.
const FUNCTION_ARNS: [(&str, &str); 9] = [
    ("PlanReplicationFunctionArn", "plan-replication"),
    ("StartCopyFunctionArn", "start-copy"),
    ("CheckCopyFunctionArn", "check-copy"),
    ("VerifyEncryptionFunctionArn", "verify-encryption"),
    ("BootCheckFunctionArn", "boot-check"),
    ("WireDestinationFunctionArn", "wire-destination"),
    ("TagLineageFunctionArn", "tag-lineage"),
    ("EnableFsrFunctionArn", "enable-fsr"),
    ("RetireReplicasFunctionArn", "retire-replicas"),
];

/// The event bus (the template's `EventBusName` default).
pub const EVENT_BUS: &str = "default";

/// The stack's work bucket (the template's `WorkBucket`).
pub const WORK_BUCKET: &str = "ferry-work-123456789012-us-east-1";

/// Processes per function: two, so parallel branches and concurrent executions really run at
/// once.
const INSTANCES: usize = 2;

/// Every Wait state waits this long; every Retry pauses this long by default (the ASL keeps its
/// values; [`LocalStepFunctions::set_retry_pause`] changes the pause).
const WAIT_SECONDS: f64 = 0.25;
const RETRY_SECONDS: f64 = 0.1;

/// The access key id the engine signs its own calls with (the state machine's role); each
/// function signs with its binary name.
pub const STATE_MACHINE_ACCESS_KEY: &str = "state-machine";

/// Step Functions' hard limits for a Standard execution (docs: Step Functions service quotas).
pub const HISTORY_EVENT_LIMIT: usize = 25_000;
pub const PAYLOAD_LIMIT_BYTES: usize = 256 * 1024;

const ACCOUNT: &str = "123456789012";

/// The ARN the local definition gives a function (`ferry-<binary>`).
pub fn function_arn(binary: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:ferry-{binary}")
}

/// The ARN the local replication state machine gets.
pub fn replication_state_machine_arn() -> String {
    format!("arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:ferry-replication")
}

/// A definition from `statemachine/` with its placeholders replaced as CloudFormation would.
/// `FERRY_ASL_DIR=path` reads the definitions from another folder (to try a change).
pub fn definition(file: &str) -> Value {
    let dir = std::env::var_os("FERRY_ASL_DIR")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("statemachine"));
    let path = dir.join(file);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (key, binary) in FUNCTION_ARNS {
        text = text.replace(&format!("${{{key}}}"), &function_arn(binary));
    }
    text = text.replace("${EventBusName}", EVENT_BUS).replace(
        "${ReplicationStateMachineArn}",
        &replication_state_machine_arn(),
    );
    assert!(
        !text.contains("${"),
        "{} has a placeholder the harness does not fill",
        path.display()
    );
    serde_json::from_str(&text).expect("the definition is JSON")
}

/// One execution's history as Step Functions keeps it, measured.
#[derive(Debug, Clone)]
pub struct ExecutionRecord {
    pub name: String,
    pub arn: String,
    /// `SUCCEEDED`, `FAILED`, …
    pub status: String,
    pub output: Value,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Events in its history (AWS's limit: 25,000).
    pub history_events: usize,
    /// The largest state input or output in its history, in bytes (AWS's limit: 256 KiB).
    pub largest_payload: usize,
    /// `{type, state, input | output, error, cause}` per state entered, exited or retried.
    pub states: Vec<Value>,
}

impl ExecutionRecord {
    /// Its own state transitions as AWS bills them: one per state entered, one per retry.
    pub fn state_transitions(&self) -> usize {
        self.states
            .iter()
            .filter(|e| e["type"] == "StateEntered" || e["type"] == "StateRetried")
            .count()
    }
}

/// One finished run, with every replication execution it started.
#[derive(Debug, Clone)]
pub struct Execution {
    pub name: String,
    /// `SUCCEEDED` or `FAILED`.
    pub status: String,
    pub output: Value,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// As AWS bills them: one per state entered (Map states and the states of every execution
    /// the run started included, plus each Distributed Map child's own state) plus one per retry.
    pub state_transitions: usize,
    /// The run's own history, then each replication's, in order.
    pub history: Vec<Value>,
    pub run: ExecutionRecord,
    pub replications: Vec<ExecutionRecord>,
}

impl Execution {
    /// The input of each time `state` was entered, in the run or any replication.
    pub fn entered(&self, state: &str) -> Vec<&Value> {
        self.history
            .iter()
            .filter(|e| e["type"] == "StateEntered" && e["state"] == state)
            .map(|e| &e["input"])
            .collect()
    }

    /// How often `state` was retried, in the run or any replication.
    pub fn retries(&self, state: &str) -> usize {
        self.history
            .iter()
            .filter(|e| e["type"] == "StateRetried" && e["state"] == state)
            .count()
    }

    /// The last state the run itself entered.
    pub fn last_state(&self) -> Option<&str> {
        self.run
            .states
            .iter()
            .rev()
            .find(|e| e["type"] == "StateEntered")
            .and_then(|e| e["state"].as_str())
    }

    /// Every execution of this run: the run, then its replications.
    pub fn executions(&self) -> impl Iterator<Item = &ExecutionRecord> {
        std::iter::once(&self.run).chain(&self.replications)
    }

    /// `(destination Region, replica id)` of every replication that succeeded.
    pub fn replicas(&self) -> Vec<(String, String)> {
        self.replications
            .iter()
            .filter(|r| r.status == "SUCCEEDED")
            .map(|r| {
                (
                    r.output["destination"]["region"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    r.output["destinationId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    /// The replication executions that failed, with their error names.
    pub fn failed_replications(&self) -> Vec<(&str, &str)> {
        self.replications
            .iter()
            .filter(|r| r.status == "FAILED")
            .map(|r| (r.name.as_str(), r.error.as_deref().unwrap_or("")))
            .collect()
    }
}

/// The binaries of [`FUNCTIONS`], built once per test process. `FERRY_FUNCTIONS_DIR=path` takes
/// them from that folder instead, unbuilt (the benchmark runs the release binaries so).
fn function_binaries() -> &'static BTreeMap<String, PathBuf> {
    static BINARIES: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BINARIES.get_or_init(|| {
        if let Some(dir) = std::env::var_os("FERRY_FUNCTIONS_DIR").filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            return FUNCTIONS
                .iter()
                .map(|name| {
                    let binary = dir.join(name);
                    assert!(
                        binary.is_file(),
                        "FERRY_FUNCTIONS_DIR: no {}",
                        binary.display()
                    );
                    (name.to_string(), binary)
                })
                .collect();
        }
        let started = Instant::now();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(repo_root())
            .args([
                "build",
                "--workspace",
                "--all-targets",
                "--message-format=json-render-diagnostics",
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(
            output.status.success(),
            "cargo build --workspace --all-targets failed"
        );
        let mut binaries = BTreeMap::new();
        let mut rebuilt = BTreeSet::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(message) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let name = message["target"]["name"].as_str().unwrap_or_default();
            if message["reason"] == "compiler-artifact" && message["fresh"] == false {
                rebuilt.insert(name.to_string());
            }
            let is_bin = message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"));
            if message["reason"] == "compiler-artifact"
                && is_bin
                && message["profile"]["test"] == false
                && FUNCTIONS.contains(&name)
            {
                if let Some(executable) = message["executable"].as_str() {
                    binaries.insert(name.to_string(), PathBuf::from(executable));
                }
            }
        }
        assert_eq!(
            binaries.len(),
            FUNCTIONS.len(),
            "cargo built {binaries:?}, expected every one of {FUNCTIONS:?}"
        );
        eprintln!(
            "state machine harness: function binaries ready in {:.1?} (built: {rebuilt:?})",
            started.elapsed()
        );
        binaries
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    // A connection to itself is not a listener: a loopback connect retried to a port of the
    // ephemeral range can pick that port as its own and "succeed" (TCP simultaneous open), and
    // the functions would then start before watch listens.
    let listening = || {
        TcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
    };
    while !listening() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening; see {}",
                log.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within 60 s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_file(path: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// Children die with the thread that started them (the test's), even when it is killed.
#[allow(unsafe_code)] // the workspace's one unsafe block: pre_exec has no safe form
fn die_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

pub struct LocalStepFunctions {
    children: Vec<Child>,
    _router_stdin: ChildStdin,
    /// The Lambda Invoke API (the router).
    pub lambda_endpoint: String,
    aws: AwsHandle,
    client: aws_sdk_sfn::Client,
    run_machine: String,
    replication_machine: String,
    /// Where the router, watch and function logs go (removed when the test passes).
    pub log_dir: PathBuf,
    /// How long start took.
    pub startup: Duration,
    runs: AtomicUsize,
}

/// What the harness needs of the local AWS after start (it is owned by the test's world).
struct AwsHandle {
    address: String,
}

impl AwsHandle {
    fn configure(&self, settings: Value) -> Value {
        crate::local_aws::http_json(&self.address, "POST", "/_ferry/config", Some(settings))
    }
}

impl LocalStepFunctions {
    /// Starts cargo lambda watch, the seven functions (configured as the template configures
    /// them, with `policy` as `FERRY_POLICY`) and the router, all against `aws`; creates the
    /// stack's bucket and both state machines in the local AWS, and points its engine's Lambda
    /// calls at the router.
    pub async fn start(aws: &LocalAws, policy: &Value) -> LocalStepFunctions {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let started = Instant::now();
        let root = repo_root();
        let binaries = function_binaries();
        let venv = crate::local_aws::venv();
        let (cargo_lambda, python) = (venv.join("bin/cargo-lambda"), venv.join("bin/python"));
        assert!(
            cargo_lambda.exists(),
            "{} is missing: run `scripts/setup` (or `make test`) first",
            cargo_lambda.display()
        );

        let log_dir = std::env::temp_dir().join(format!(
            "ferry-stepfunctions-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let mut children = vec![];

        // The Lambda APIs only: watch starts no function and runs no cargo.
        let watch_port = free_port();
        let watch_log = log_dir.join("watch.log");
        let mut watch = die_with_parent(
            Command::new(&cargo_lambda)
                .current_dir(&root)
                .args([
                    "lambda",
                    "watch",
                    "--only-lambda-apis",
                    "--ignore-changes",
                    "-A",
                    "127.0.0.1",
                    "-P",
                    &watch_port.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(log_file(&watch_log))
                .stderr(log_file(&watch_log)),
        )
        .spawn()
        .expect("cargo lambda watch starts");
        wait_for_port(watch_port, &mut watch, "cargo lambda watch", &watch_log);
        children.push(watch);

        let functions_log = log_dir.join("functions.log");
        for (name, binary) in binaries {
            for _ in 0..INSTANCES {
                let mut command = Command::new(binary);
                command
                    .env_clear()
                    .env(
                        "AWS_LAMBDA_RUNTIME_API",
                        format!("http://127.0.0.1:{watch_port}/.rt/{name}"),
                    )
                    .env("AWS_LAMBDA_FUNCTION_NAME", name)
                    .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                    .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                    .env("AWS_ENDPOINT_URL", &aws.endpoint)
                    // Each function signs as itself, as its own role would: the local AWS records
                    // the caller of every call (`accessKeyId`).
                    .env("AWS_ACCESS_KEY_ID", name)
                    .env("AWS_SECRET_ACCESS_KEY", "test")
                    .env("AWS_REGION", "us-east-1")
                    .env("AWS_EC2_METADATA_DISABLED", "true")
                    .env("FERRY_SDK_INITIAL_BACKOFF_MS", "50")
                    // The template's Globals.
                    .env("FERRY_FUNCTION_TIMEOUT_SECONDS", "30")
                    // The template's LoggingConfig (LogFormat JSON, ApplicationLogLevel INFO).
                    .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                    .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
                    .stdin(Stdio::null())
                    .stdout(log_file(&functions_log))
                    .stderr(log_file(&functions_log));
                // As infra/template.yaml configures them.
                if name == "plan-replication" {
                    command
                        .env("FERRY_POLICY", policy.to_string())
                        .env("FERRY_WORK_BUCKET", WORK_BUCKET);
                }
                if name == "tag-lineage" || name == "retire-replicas" {
                    command.env("FERRY_EVENT_BUS", EVENT_BUS);
                }
                children.push(
                    die_with_parent(&mut command)
                        .spawn()
                        .unwrap_or_else(|e| panic!("{}: {e}", binary.display())),
                );
            }
        }

        let router_log = log_dir.join("router.log");
        let mut router = Command::new(python);
        router
            .current_dir(&root)
            .env("PYTHONPATH", crate::local_aws::emulator_dir())
            .args([
                "-m",
                "ferry_emulator.lambda_router",
                "--emulator",
                &aws.endpoint,
                "--lambda",
                &format!("http://127.0.0.1:{watch_port}"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file(&router_log));
        for (_, binary) in FUNCTION_ARNS {
            router.args(["--function", &format!("ferry-{binary}={binary}")]);
        }
        // As many invocations per function at once as it has processes.
        router.args(["--concurrency", &INSTANCES.to_string()]);
        let mut router = router.spawn().expect("the router starts");
        let router_stdin = router.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(router.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the router reports readiness");
        let lambda_endpoint = line
            .trim()
            .strip_prefix("FERRY_LAMBDA_ROUTER_READY ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected router output {line:?}; see {}",
                    router_log.display()
                )
            })
            .to_string();
        children.push(router);

        // A function that cannot start (a bad FERRY_POLICY, say) exits at once: say so now rather
        // than let its invocations time out.
        for child in &mut children {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "a local Lambda process exited at start ({status}); see {}",
                    functions_log.display()
                );
            }
        }

        let handle = AwsHandle {
            address: aws.endpoint.trim_start_matches("http://").to_string(),
        };
        handle.configure(json!({
            "lambdaEndpoint": lambda_endpoint,
            "stepFunctions": {"waitSeconds": WAIT_SECONDS, "retrySeconds": RETRY_SECONDS},
        }));
        let sdk = aws.sdk_config().await;
        crate::Seeder::new(&sdk).bucket(WORK_BUCKET).await;
        let client = aws_sdk_sfn::Client::new(&sdk);
        let role = format!("arn:aws:iam::{ACCOUNT}:role/ferry-state-machine");
        let mut machines = vec![];
        for (name, file) in [
            ("ferry-replication", "replication.asl.json"),
            ("ferry", "ferry.asl.json"),
        ] {
            let created = client
                .create_state_machine()
                .name(name)
                .definition(definition(file).to_string())
                .role_arn(&role)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("{file}: {}", aws_sdk_sfn::error::DisplayErrorContext(&e))
                });
            machines.push(created.state_machine_arn().to_string());
        }
        assert_eq!(machines[0], replication_state_machine_arn());
        let startup = started.elapsed();
        eprintln!(
            "state machine harness: started in {startup:.1?} (logs in {})",
            log_dir.display()
        );
        LocalStepFunctions {
            children,
            _router_stdin: router_stdin,
            lambda_endpoint,
            aws: handle,
            client,
            replication_machine: machines.remove(0),
            run_machine: machines.remove(0),
            log_dir,
            startup,
            runs: AtomicUsize::new(0),
        }
    }

    /// Every Retry pauses `pause` instead of the default 100 ms, for the states retried from now
    /// on (e.g. to give a retrier's `MaxAttempts` the span of time it has on AWS).
    pub fn set_retry_pause(&mut self, pause: Duration) {
        self.set_pauses(Duration::from_secs_f64(WAIT_SECONDS), pause);
    }

    /// Every Wait state waits `wait` (instead of 250 ms) and every Retry pauses `retry`, from now on.
    pub fn set_pauses(&mut self, wait: Duration, retry: Duration) {
        self.aws.configure(json!({
            "stepFunctions": {"waitSeconds": wait.as_secs_f64(), "retrySeconds": retry.as_secs_f64()},
        }));
    }

    /// The next `times` invocations of `function` (binary name, e.g. `start-copy`) run to the
    /// end, and then their answer is lost the way Lambda loses it: `mode` `serviceException`
    /// (HTTP 500, Step Functions' `Lambda.ServiceException`) or `runtimeExit` (the runtime was
    /// killed: `X-Amz-Function-Error: Unhandled`, errorType `Runtime.ExitError`).
    pub fn lose_answers(&self, function: &str, mode: &str, times: u32) {
        let router = self.lambda_endpoint.trim_start_matches("http://");
        crate::local_aws::http_json(
            router,
            "POST",
            "/_router/faults",
            Some(json!({"function": function, "mode": mode, "times": times})),
        );
    }

    /// The router's faults: `{"pending": [...], "injected": [{"function", "mode"}...]}`.
    pub fn router_faults(&self) -> Value {
        crate::local_aws::http_json(
            self.lambda_endpoint.trim_start_matches("http://"),
            "GET",
            "/_router/faults",
            None,
        )
    }

    /// Runs one execution to its end.
    pub async fn run(&self, input: &Value) -> Execution {
        self.run_all(std::slice::from_ref(input)).await.remove(0)
    }

    /// Runs one replication execution of the deployed replication definition with `request` as
    /// its input, as a run's Distributed Map starts it, to its end.
    pub async fn replicate(&self, request: &Value) -> ExecutionRecord {
        let arn = self
            .start_execution(&self.replication_machine, "replication", request)
            .await;
        self.wait(&arn).await;
        self.record(&arn).await
    }

    /// Starts an execution of `machine` named `<prefix>-<pid>-<n>`; returns its ARN.
    async fn start_execution(&self, machine: &str, prefix: &str, input: &Value) -> String {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            self.runs.fetch_add(1, Ordering::SeqCst)
        );
        let started = self
            .client
            .start_execution()
            .state_machine_arn(machine)
            .name(&name)
            .input(input.to_string())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "StartExecution: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&e)
                )
            });
        started.execution_arn().to_string()
    }

    /// Starts one execution per input at once and waits for all of them.
    pub async fn run_all(&self, inputs: &[Value]) -> Vec<Execution> {
        let mut arns = vec![];
        for input in inputs {
            arns.push(self.start_execution(&self.run_machine, "run", input).await);
        }
        for arn in &arns {
            self.wait(arn).await;
        }
        let reading = Instant::now();
        let children = self.list(&self.replication_machine).await;
        let mut executions = vec![];
        for arn in arns {
            executions.push(self.read(&arn, &children).await);
        }
        eprintln!(
            "state machine harness: read {} runs and {} replication histories in {:.1?}",
            executions.len(),
            children.len(),
            reading.elapsed()
        );
        executions
    }

    /// Waits for the run `arn` to end.
    async fn wait(&self, arn: &str) {
        let deadline = Instant::now() + Duration::from_secs(1500);
        loop {
            let described = self.describe(arn).await;
            if described.status() != &ExecutionStatus::Running {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{arn} still running after 25 minutes; logs in {}",
                self.log_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The finished run `arn` and every replication it started, among `children` (`(arn,
    /// name)` of the replication state machine's executions).
    async fn read(&self, arn: &str, children: &[(String, String)]) -> Execution {
        let run = self.record(arn).await;
        let prefix = format!("{}-", ferry_core::rules::plan::run_tag(&run.arn));
        // A few histories at once: the emulator answers one at a time, the rest overlaps.
        let mut replications: Vec<ExecutionRecord> =
            futures::stream::iter(children.iter().filter(|child| child.1.starts_with(&prefix)))
                .map(|child| self.record(&child.0))
                .buffer_unordered(4)
                .collect()
                .await;
        replications.sort_by(|a, b| a.name.cmp(&b.name));
        let regions = run
            .states
            .iter()
            .filter(|e| e["type"] == "StateEntered" && e["state"] == "Regions")
            .count();
        let region_children =
            run.output["regions"].as_array().map(Vec::len).unwrap_or(0) * regions.min(1);
        // Each Distributed Map child runs one state of its own (Replications per Region,
        // Replicate per replication), which no history we can read shows.
        let state_transitions = run.state_transitions()
            + region_children
            + replications
                .iter()
                .map(|r| r.state_transitions() + 1)
                .sum::<usize>();
        let mut history = run.states.clone();
        for replication in &replications {
            history.extend(replication.states.iter().cloned());
        }
        Execution {
            name: run.name.clone(),
            status: run.status.clone(),
            output: run.output.clone(),
            error: run.error.clone(),
            cause: run.cause.clone(),
            state_transitions,
            history,
            run,
            replications,
        }
    }

    /// `(arn, name)` of every execution of `machine`.
    async fn list(&self, machine: &str) -> Vec<(String, String)> {
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(machine)
            .into_paginator()
            .send();
        let mut found = vec![];
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| {
                panic!(
                    "ListExecutions: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&e)
                )
            });
            found.extend(
                page.executions()
                    .iter()
                    .map(|e| (e.execution_arn().to_string(), e.name().to_string())),
            );
        }
        found
    }

    async fn describe(
        &self,
        arn: &str,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        self.client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "DescribeExecution: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&e)
                )
            })
    }

    /// One execution, described and with its whole history.
    async fn record(&self, arn: &str) -> ExecutionRecord {
        let described = self.describe(arn).await;
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(arn)
            .into_paginator()
            .send();
        let mut events = vec![];
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| {
                panic!(
                    "GetExecutionHistory: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&e)
                )
            });
            events.extend(page.events().iter().cloned());
        }
        let (states, largest_payload) = states_of(&events);
        ExecutionRecord {
            name: described.name().unwrap_or_default().to_string(),
            arn: arn.to_string(),
            status: described.status().as_str().to_string(),
            output: described
                .output()
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or(Value::Null),
            error: described.error().map(str::to_string),
            cause: described.cause().map(str::to_string),
            history_events: events.len(),
            largest_payload,
            states,
        }
    }
}

/// The states an execution's history shows (entered, exited, retried) and the largest state
/// input or output in it. A retry is a task scheduled again before its state exited.
fn states_of(events: &[HistoryEvent]) -> (Vec<Value>, usize) {
    let mut states = vec![];
    let mut largest = 0;
    let mut current: Option<String> = None;
    let mut scheduled_in_state = 0;
    for event in events {
        if let Some(entered) = event.state_entered_event_details() {
            let input = entered.input().unwrap_or("null");
            largest = largest.max(input.len());
            current = Some(entered.name().to_string());
            scheduled_in_state = 0;
            states.push(json!({
                "type": "StateEntered",
                "state": entered.name(),
                "input": serde_json::from_str::<Value>(input).unwrap_or(Value::Null),
            }));
        } else if let Some(exited) = event.state_exited_event_details() {
            let output = exited.output().unwrap_or("null");
            largest = largest.max(output.len());
            states.push(json!({
                "type": "StateExited",
                "state": exited.name(),
                "output": serde_json::from_str::<Value>(output).unwrap_or(Value::Null),
            }));
            current = None;
        } else if event.lambda_function_scheduled_event_details().is_some()
            || event.task_scheduled_event_details().is_some()
        {
            scheduled_in_state += 1;
            if scheduled_in_state > 1 {
                if let Some(state) = &current {
                    states.push(json!({"type": "StateRetried", "state": state}));
                }
            }
        }
        let failed = event
            .lambda_function_failed_event_details()
            .map(|d| (d.error(), d.cause()))
            .or_else(|| {
                event
                    .task_failed_event_details()
                    .map(|d| (d.error(), d.cause()))
            });
        if let (Some((error, cause)), Some(state)) = (failed, &current) {
            states.push(
                json!({"type": "StateFailed", "state": state, "error": error, "cause": cause}),
            );
        }
        for text in [
            event
                .task_succeeded_event_details()
                .and_then(|d| d.output()),
            event
                .lambda_function_succeeded_event_details()
                .and_then(|d| d.output()),
            event
                .execution_started_event_details()
                .and_then(|d| d.input()),
            event
                .execution_succeeded_event_details()
                .and_then(|d| d.output()),
        ]
        .into_iter()
        .flatten()
        {
            largest = largest.max(text.len());
        }
    }
    (states, largest)
}

impl Drop for LocalStepFunctions {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        // The logs are kept for a failing test only.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}
