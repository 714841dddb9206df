//! The local AWS: moto's server plus ferry's patch layer (`local/emulator`), one process per
//! handle (a test, or `ferry demo`), stopped when the handle drops. `FERRY_EMULATOR=plain` starts
//! unpatched moto instead.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use ferry_core::adapters::sdk::{retry_config, with_settings};
use ferry_core::ports::{Clock, SystemClock};
use ferry_core::rules::retry_budget::SdkSettings;
use ferry_core::{Config, Deps};
use serde_json::{json, Value};

/// Credentials the tests and the demo sign with: distinctive, so a test can prove they never
/// reach a log.
pub const TEST_ACCESS_KEY_ID: &str = "AKIAFERRYTESTACCESS1";
pub const TEST_SECRET_ACCESS_KEY: &str = "ferry-secret-key-that-must-never-be-logged";
pub const TEST_SESSION_TOKEN: &str = "ferry-session-token-that-must-never-be-logged";

pub struct LocalAws {
    /// The emulator this handle started (None when attached to a running one).
    child: Option<Child>,
    // Held open: the emulator exits when its stdin closes, even if this process is killed.
    _stdin: Option<ChildStdin>,
    pub endpoint: String,
    address: String,
    /// Seconds this handle has moved the emulator's clock forward.
    offset_seconds: Arc<AtomicU64>,
}

/// Wall-clock time plus the emulator's offset: the handlers see the time the emulator sees.
struct EmulatorClock {
    offset_seconds: Arc<AtomicU64>,
}

impl Clock for EmulatorClock {
    fn now(&self) -> u64 {
        SystemClock.now() + self.offset_seconds.load(Ordering::SeqCst)
    }
}

/// The repository's root (this crate is `local/` in it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The Python patch layer's directory (`local/emulator`): the `PYTHONPATH` of `ferry_emulator`.
pub fn emulator_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("emulator")
}

/// The project's Python environment (scripts/setup makes it; `FERRY_VENV` overrides).
pub fn venv() -> PathBuf {
    std::env::var("FERRY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv"))
}

/// True when `FERRY_EMULATOR=plain` asks for unpatched moto.
pub fn plain_mode() -> bool {
    std::env::var("FERRY_EMULATOR").is_ok_and(|mode| mode == "plain")
}

/// The emulator's stderr (moto's tracebacks) goes to a file, never to an undrained pipe.
fn emulator_log() -> Stdio {
    let path = std::env::temp_dir().join(format!("ferry-emulator-{}.log", std::process::id()));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

impl LocalAws {
    /// Starts an emulator whose copies stay pending for `copy_seconds` of emulator time.
    pub fn start(copy_seconds: f64) -> LocalAws {
        let python = venv().join("bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `scripts/setup` (or `make test`) first",
            python.display()
        );
        let mut command = Command::new(python);
        command
            .args([
                "-m",
                "ferry_emulator",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--copy-seconds",
                &copy_seconds.to_string(),
            ])
            .env("PYTHONPATH", emulator_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(emulator_log());
        if plain_mode() {
            command.arg("--plain");
        }
        let mut child = command.spawn().expect("the emulator starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the emulator reports readiness");
        let endpoint = line
            .trim()
            .strip_prefix("FERRY_EMULATOR_READY ")
            .unwrap_or_else(|| panic!("unexpected emulator output {line:?}"))
            .to_string();
        let address = endpoint.trim_start_matches("http://").to_string();
        LocalAws {
            child: Some(child),
            _stdin: Some(stdin),
            endpoint,
            address,
            offset_seconds: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A handle on a local AWS already running at `endpoint` (e.g. one `ferry demo --keep`
    /// left), on its clock; it stays running when the handle is dropped. Refused unless the
    /// endpoint answers ferry's control endpoints.
    pub fn attach(endpoint: &str) -> Result<LocalAws, String> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let address = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| format!("{endpoint}: a local AWS is reached over http://HOST:PORT"))?
            .to_string();
        let offset = try_http_json(
            &address,
            "POST",
            "/_ferry/advance",
            Some(json!({"seconds": 0})),
        )
        .map_err(|e| format!("{endpoint} is not ferry's local AWS (no /_ferry/advance: {e})"))?;
        Ok(LocalAws {
            child: None,
            _stdin: None,
            endpoint,
            address,
            offset_seconds: Arc::new(AtomicU64::new(
                offset["offsetSeconds"].as_f64().unwrap_or(0.0).max(0.0) as u64,
            )),
        })
    }

    /// SDK configuration pointing at this emulator, with ferry's retry settings.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.loader()
            .retry_config(retry_config(&SdkSettings {
                initial_backoff: Duration::from_millis(50),
                ..SdkSettings::default()
            }))
            .load()
            .await
    }

    /// SDK configuration pointing at this emulator with exactly `settings`' retries and timeouts,
    /// as a deployed function loads them.
    pub async fn sdk_config_as_deployed(&self, settings: &SdkSettings) -> SdkConfig {
        with_settings(self.loader(), settings).load().await
    }

    fn loader(&self) -> aws_config::ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                TEST_ACCESS_KEY_ID,
                TEST_SECRET_ACCESS_KEY,
                Some(TEST_SESSION_TOKEN.to_string()),
                None,
                "ferry-local",
            ))
    }

    /// ferry's handlers wired to this emulator, on its clock.
    pub async fn deps(&self, config: Config) -> Deps {
        let sdk = self.sdk_config().await;
        self.deps_over(&sdk, config)
    }

    /// ferry's handlers wired to this emulator with `config.sdk` as a deployed function has it
    /// (retries, attempt and operation timeouts), on its clock.
    pub async fn deps_as_deployed(&self, config: Config) -> Deps {
        let sdk = self.sdk_config_as_deployed(&config.sdk).await;
        self.deps_over(&sdk, config)
    }

    fn deps_over(&self, sdk: &SdkConfig, config: Config) -> Deps {
        let deps = Deps::from_sdk(sdk, config);
        Deps {
            clock: Arc::new(EmulatorClock {
                offset_seconds: self.offset_seconds.clone(),
            }),
            ..deps
        }
    }

    fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        http_json(&self.address, method, path, body)
    }

    /// Changes the emulator's behaviour (`copySeconds`, `fsrStepSeconds`, `fsrQuotaPerRegion`,
    /// and the fault switches: `throttle`, `seed`, `throttleFraction`, `serverErrorFraction`,
    /// `delaySeconds`, `copyQuotaPerRegion`, `failNextCopies`; local/emulator/README.md).
    pub fn configure(&self, settings: Value) -> Value {
        self.control("POST", "/_ferry/config", Some(settings))
    }

    /// Moves the emulator's clock forward: pending copies and FSR states progress.
    pub fn advance(&self, seconds: f64) {
        self.control(
            "POST",
            "/_ferry/advance",
            Some(json!({ "seconds": seconds })),
        );
        self.offset_seconds
            .fetch_add(seconds.ceil() as u64, Ordering::SeqCst);
    }

    /// Every AWS call the emulator received, as `{service, action, region}`.
    pub fn calls(&self) -> Vec<Value> {
        self.control("GET", "/_ferry/calls", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// How many calls of `action` were made.
    pub fn count_calls(&self, action: &str) -> usize {
        self.calls()
            .iter()
            .filter(|call| call["action"] == action)
            .count()
    }

    /// What the fault switches did: `peakCopiesInFlight` and `copiesInFlight` per Region,
    /// `resourceLimitExceeded` per Region, `throttled` and `serverErrors` per service, `delayed`,
    /// `failedCopies`.
    pub fn stats(&self) -> Value {
        self.control("GET", "/_ferry/stats", None)
    }

    /// Re-points a snapshot's KMS key (drift: a replica later found under another key).
    pub fn tamper(&self, snapshot_id: &str, kms_key_id: &str) -> Value {
        self.control(
            "POST",
            "/_ferry/tamper",
            Some(json!({ "snapshotId": snapshot_id, "kmsKeyId": kms_key_id })),
        )
    }

    /// `AssociateKmsKeyId` on a snapshot in `region`: another key, a second way to read its data
    /// (aws-sdk-ec2 1.274 has no such operation, so it goes as EC2's own query request).
    pub fn associate_kms_key(&self, region: &str, snapshot_id: &str, kms_key_id: &str) {
        self.ec2_query(
            region,
            &[
                ("Action", "AssociateKmsKeyId"),
                ("SnapshotId", snapshot_id),
                ("KmsKeyId", kms_key_id),
            ],
        );
    }

    /// `DisassociateKmsKeyId`: the key no longer reads the snapshot.
    pub fn disassociate_kms_key(&self, region: &str, snapshot_id: &str, kms_key_id: &str) {
        self.ec2_query(
            region,
            &[
                ("Action", "DisassociateKmsKeyId"),
                ("SnapshotId", snapshot_id),
                ("KmsKeyId", kms_key_id),
            ],
        );
    }

    /// One EC2 query-protocol call in `region` (the Region travels in the SigV4 credential
    /// scope, which the local AWS reads and does not verify); panics unless it answers 200.
    fn ec2_query(&self, region: &str, params: &[(&str, &str)]) -> String {
        let body = params
            .iter()
            .chain(&[("Version", "2016-11-15")])
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY_ID}/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"
        );
        let mut stream =
            TcpStream::connect(&self.address).expect("the local AWS accepts connections");
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: {authorization}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        )
        .expect("request sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response read");
        assert!(
            response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
            "{params:?}: {response}"
        );
        response
    }

    /// Every EventBridge entry published.
    pub fn events(&self) -> Vec<Value> {
        self.control("GET", "/_ferry/events", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// `application/x-www-form-urlencoded` value encoding (unreserved characters kept).
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One JSON request to a local control endpoint (`host:port`); panics unless it answers 200.
pub fn http_json(address: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    try_http_json(address, method, path, body).unwrap_or_else(|e| panic!("{e}"))
}

/// One JSON request to a local control endpoint (`host:port`): its answer, if 200 with JSON.
pub fn try_http_json(
    address: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let failed = |e: &dyn std::fmt::Display| format!("{method} {path}: {e}");
    let mut stream = TcpStream::connect(address).map_err(|e| failed(&e))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| failed(&e))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| failed(&e))?;
    let (head, payload) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")) {
        return Err(failed(&head.lines().next().unwrap_or("no answer")));
    }
    serde_json::from_str(payload).map_err(|e| failed(&format!("{e}: {payload}")))
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
