//! The `ferry` binary against the local AWS: replicate, status, audit (with planted drift),
//! and the demo, with the documented exit codes.

use std::process::{Command, Output};

use ferry_core::handlers::{run_step, Step};
use ferry_core::Config;
use ferry_local::local_aws::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use ferry_local::{Key, LocalAws, Seeder};
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

fn ferry(aws: &LocalAws, args: &[&str]) -> Output {
    ferry_with(aws, args, &[])
}

/// `ferry` against the local AWS with `env` changed (`None` removes a variable). Nothing from
/// this machine's own AWS configuration leaks in.
fn ferry_with(aws: &LocalAws, args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .arg("--endpoint-url")
        .arg(&aws.endpoint)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env("AWS_REGION", SOURCE)
        .env("AWS_CONFIG_FILE", "/nonexistent/ferry-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/ferry-test-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("RUST_LOG")
        .env("FERRY_POLL_MIN_SECONDS", "1")
        .env("FERRY_POLL_MAX_SECONDS", "1");
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.output().expect("ferry runs")
}

/// Besides progress lines (`[region] …`), stderr is `error[name]: …` and one `hint:` line,
/// nothing else (no warnings, no SDK debug dump).
fn one_named_error(output: &Output, name: &str) {
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with('[')).collect();
    assert!(
        lines.len() == 2
            && lines[0].starts_with(&format!("error[{name}]: "))
            && lines[1].starts_with("  hint: "),
        "one named error and its hint: {stderr}"
    );
}

/// The local AWS's record of `calls` as `service:Action`, each asserted to be one
/// infra/operator-policy.json (README's policy for the operator's own credentials) allows; STS
/// GetCallerIdentity needs no permission.
fn allowed_by_the_operator_policy(calls: &[Value]) -> Vec<String> {
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/operator-policy.json"
    ))
    .unwrap();
    let made: Vec<String> = calls
        .iter()
        .map(|call| {
            format!(
                "{}:{}",
                call["service"].as_str().unwrap(),
                call["action"].as_str().unwrap()
            )
        })
        .collect();
    for action in &made {
        assert!(
            action == "sts:GetCallerIdentity" || policy.contains(&format!("\"{action}\"")),
            "infra/operator-policy.json allows {action}"
        );
    }
    made
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

async fn seeded() -> (LocalAws, Seeder, String, String) {
    let s = seeded_with(2.0, None).await;
    (s.aws, s.seed, s.image, s.key.arn)
}

/// A local AWS whose copies take `copy_seconds`, with an AMI in the source Region: an encrypted
/// 8 GiB root and, when asked, a data volume (size in GiB, encrypted or not); `alias/dr` names
/// a key in the destination Region.
struct Seeded {
    aws: LocalAws,
    seed: Seeder,
    image: String,
    root: String,
    data: Option<String>,
    key: Key,
}

async fn seeded_with(copy_seconds: f64, data: Option<(i32, bool)>) -> Seeded {
    let aws = LocalAws::start(copy_seconds);
    let seed = Seeder::new(&aws.sdk_config().await);
    let source_key = seed.key(SOURCE).await;
    let root = seed.snapshot(SOURCE, Some(&source_key), 8).await;
    let data = match data {
        Some((size, encrypted)) => Some(
            seed.snapshot(SOURCE, encrypted.then_some(&source_key), size)
                .await,
        ),
        None => None,
    };
    let mut devices = vec![("/dev/xvda", root.as_str())];
    devices.extend(data.as_deref().map(|d| ("/dev/xvdb", d)));
    let image = seed.image(SOURCE, "golden", &devices).await;
    let key = seed.key(DESTINATION).await;
    seed.alias(DESTINATION, "alias/dr", &key).await;
    Seeded {
        aws,
        seed,
        image,
        root,
        data,
        key,
    }
}

#[tokio::test]
async fn replicate_proves_the_key_and_status_finds_the_replication_by_id() {
    let (aws, seed, image, key_arn) = seeded().await;
    seed.launch_template(DESTINATION, "web").await;
    // Wired and boot-checked too, so that the policy check below covers those calls.
    let boot_check = format!("{DESTINATION}={}", seed.subnet(DESTINATION).await);
    let replicate = [
        "replicate",
        "--source-region",
        SOURCE,
        "--image",
        &image,
        "--to",
        "us-west-2=alias/dr",
        "--fsr-az",
        "us-west-2a",
        "--launch-template",
        "us-west-2=web",
        "--ssm-parameter",
        "us-west-2=/golden/web/ami",
        "--boot-check",
        &boot_check,
    ];
    let seeding = aws.calls().len();
    let run = ferry(&aws, &[&replicate[..], &["--json"]].concat());
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("✔ us-west-2") && stderr.contains(&key_arn),
        "the summary: {stderr}"
    );
    assert!(
        stderr.contains("[us-west-2] copying") && stderr.contains("verified"),
        "plain progress lines off a terminal: {stderr}"
    );
    let documents: Value =
        serde_json::from_str(&stdout).expect("stdout is the --json documents only");
    let replication_id = documents[0]["replicationId"].as_str().unwrap().to_string();

    // README's operator policy allows every call an in-process replicate made.
    let made = allowed_by_the_operator_policy(&aws.calls()[seeding..]);
    for action in [
        "ec2:RunInstances",
        "ec2:TerminateInstances",
        "ec2:CreateLaunchTemplateVersion",
        "ssm:PutParameter",
    ] {
        assert!(
            made.iter().any(|a| a == action),
            "the replication wired and boot-checked: {action} in {made:?}"
        );
    }

    let status = ferry(&aws, &["status", &replication_id, "--regions", DESTINATION]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    assert!(
        text(&status.stdout).contains(&image) && text(&status.stdout).contains(" ok"),
        "{}",
        text(&status.stdout)
    );
    let status = ferry(
        &aws,
        &[
            "status",
            &replication_id,
            "--regions",
            DESTINATION,
            "--output",
            "json",
        ],
    );
    let replicas: Value =
        serde_json::from_str(&text(&status.stdout)).expect("status --output json");
    assert_eq!(replicas[0]["replicationId"], replication_id.as_str());

    // The same command again: the replica is reused, and said to be.
    let rerun = ferry(&aws, &[&["-q"][..], &replicate].concat());
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun.stderr));
    assert!(
        text(&rerun.stdout).contains(&format!(
            "reused copy {}",
            documents[0]["replicaId"].as_str().unwrap()
        )),
        "{}",
        text(&rerun.stdout)
    );
    assert!(
        text(&rerun.stderr).is_empty(),
        "-q: no progress lines: {}",
        text(&rerun.stderr)
    );
}

#[tokio::test]
async fn ctrl_c_says_which_copies_aws_keeps_making_and_that_a_rerun_resumes() {
    use std::io::{BufRead, BufReader};
    let Seeded { aws, image, .. } = seeded_with(600.0, None).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "--endpoint-url",
            &aws.endpoint,
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
        ])
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env("AWS_REGION", SOURCE)
        .env("FERRY_POLL_MIN_SECONDS", "1")
        .env("FERRY_POLL_MAX_SECONDS", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("copying → ami-") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ferry ended before copying"
        );
    }
    let copy = line
        .split("copying → ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(
        rest.contains(&format!(
            "interrupted: AWS keeps copying {copy} in us-west-2; rerun the same command to resume"
        )),
        "{rest}"
    );
}

#[tokio::test]
async fn with_no_region_configured_the_evidence_goes_to_the_source_region() {
    let (aws, _seed, image, _) = seeded().await;
    let run = ferry_with(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
        ],
        &[("AWS_REGION", None)],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let published: Vec<Value> = aws
        .events()
        .into_iter()
        .filter(|e| e["detailType"] == "Replication Succeeded")
        .collect();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["region"], SOURCE);
}

#[tokio::test]
async fn aws_that_cannot_be_used_is_exit_4_in_one_line_before_anything_is_copied() {
    let (aws, _seed, image, _) = seeded().await;
    let replicate = [
        "replicate",
        "--source-region",
        SOURCE,
        "--image",
        &image,
        "--to",
        "us-west-2=alias/dr",
    ];
    let no_credentials = ferry_with(
        &aws,
        &replicate,
        &[("AWS_ACCESS_KEY_ID", None), ("AWS_SECRET_ACCESS_KEY", None)],
    );
    assert_eq!(no_credentials.status.code(), Some(4));
    one_named_error(&no_credentials, "NoCredentials");

    let unreachable = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["--endpoint-url", "http://127.0.0.1:9"])
        .args(replicate)
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env("AWS_REGION", SOURCE)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(4));
    one_named_error(&unreachable, "Unreachable");
    assert!(text(&unreachable.stderr).contains("Connection refused"));
    assert_eq!(aws.count_calls("CopyImage"), 0);
    assert_eq!(
        aws.count_calls("DescribeKey"),
        0,
        "checked before any step ran"
    );

    let unknown = ferry(
        &aws,
        &[
            "status",
            "arn:aws:states:us-east-1:123456789012:execution:ferry-run:no-such-run",
        ],
    );
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown.stderr));
    one_named_error(&unknown, "ExecutionDoesNotExist");
}

#[tokio::test]
async fn flag_mistakes_are_usage_errors_naming_the_flag_and_no_ops_are_named() {
    let (aws, seed, image, _) = seeded().await;
    let with = |extra: &[&str]| {
        let mut args = vec![
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
        ];
        args.extend(extra);
        ferry(&aws, &args)
    };
    for (extra, flag) in [
        (&["--completion-minutes", "7"][..], "--completion-minutes"),
        (&["--attempt", "0"][..], "--attempt"),
        (&["--fsr-az", "eu-west-1a"][..], "--fsr-az"),
        (
            &["--fsr-disable-after-hours", "2"][..],
            "--fsr-disable-after-hours",
        ),
        (
            &["--boot-check", "eu-west-1=subnet-0123456789abcdef0"][..],
            "--boot-check: eu-west-1 is not a --to Region",
        ),
        (
            &["--boot-check-timeout-minutes", "30"][..],
            "--boot-check-timeout-minutes: does nothing without --boot-check",
        ),
        (
            &[
                "--boot-check",
                "us-west-2=subnet-0123456789abcdef0",
                "--boot-check-timeout-minutes",
                "200",
            ][..],
            "--boot-check-timeout-minutes",
        ),
        (
            &["--ssm-parameter", "us-west-2=/aws/service/x"][..],
            "--ssm-parameter",
        ),
        (
            &["--retention-keep", "1"][..],
            "--retention-group-by: --retention-keep needs it",
        ),
        (
            &["--retention-keep", "0", "--retention-group-by", "app"][..],
            "--retention-keep: keep at least 1",
        ),
        (
            &["--retention-grace-days", "3"][..],
            "--retention-grace-days: does nothing without",
        ),
    ] {
        let run = with(extra);
        assert_eq!(
            run.status.code(),
            Some(2),
            "{extra:?}: {}",
            text(&run.stderr)
        );
        one_named_error(&run, "InvalidRequest");
        assert!(
            text(&run.stderr).contains(flag),
            "{extra:?} names {flag}: {}",
            text(&run.stderr)
        );
    }
    assert_eq!(
        aws.count_calls("DescribeKey"),
        0,
        "refused before any AWS call"
    );
    let help = text(
        &Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["replicate", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        help.contains("15 to 2880 in steps of 15")
            && help.contains("1 or more")
            && help.contains("5 to 120 minutes")
            && help.contains("REGION=NAME:default"),
        "the hint's --help shows the accepted values: {help}"
    );

    let key = seed.key(SOURCE).await;
    let snapshot = seed.snapshot(SOURCE, Some(&key), 8).await;
    let tags_on_a_snapshot = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--snapshot",
            &snapshot,
            "--to",
            "us-west-2=alias/dr",
            "--copy-source-tags",
            "--dry-run",
        ],
    );
    assert_eq!(
        tags_on_a_snapshot.status.code(),
        Some(0),
        "{}",
        text(&tags_on_a_snapshot.stderr)
    );
    assert!(
        text(&tags_on_a_snapshot.stderr).contains("warning[CopySourceTagsIgnored]"),
        "{}",
        text(&tags_on_a_snapshot.stderr)
    );
    let boot_a_snapshot = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--snapshot",
            &snapshot,
            "--to",
            "us-west-2=alias/dr",
            "--boot-check",
            "us-west-2=subnet-0123456789abcdef0",
        ],
    );
    assert_eq!(
        boot_a_snapshot.status.code(),
        Some(2),
        "{}",
        text(&boot_a_snapshot.stderr)
    );
    one_named_error(&boot_a_snapshot, "InvalidRequest");
    assert!(
        text(&boot_a_snapshot.stderr)
            .contains("--boot-check: a boot check launches an instance from an AMI"),
        "{}",
        text(&boot_a_snapshot.stderr)
    );
    assert_eq!(aws.count_calls("RunInstances"), 0);
    let retain_a_snapshot = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--snapshot",
            &snapshot,
            "--to",
            "us-west-2=alias/dr",
            "--retention-keep",
            "1",
            "--retention-group-by",
            "app",
        ],
    );
    assert_eq!(
        retain_a_snapshot.status.code(),
        Some(2),
        "{}",
        text(&retain_a_snapshot.stderr)
    );
    one_named_error(&retain_a_snapshot, "InvalidRequest");
    assert!(
        text(&retain_a_snapshot.stderr).contains(
            "--retention-keep/--retention-group-by: retention keeps and retires AMI replicas"
        ),
        "{}",
        text(&retain_a_snapshot.stderr)
    );
}

#[tokio::test]
async fn replicate_wires_and_boot_checks_the_replica_and_says_so() {
    let Seeded {
        aws,
        seed,
        image,
        key,
        ..
    } = seeded_with(2.0, Some((8, true))).await;
    seed.launch_template(DESTINATION, "web").await;
    let subnet = seed.subnet(DESTINATION).await;
    let boot_check = format!("{DESTINATION}={subnet}");
    let replicate = |extra: &[&str]| {
        let mut args = vec![
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
            "--boot-check",
            &boot_check,
            "--launch-template",
            "us-west-2=web:default",
            "--ssm-parameter",
            "us-west-2=/golden/web/ami",
        ];
        args.extend(extra);
        ferry(&aws, &args)
    };

    // The dry run says what would be boot-checked and wired, and does neither.
    let dry = replicate(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    for expected in [
        format!("would boot-check one t3.micro in {subnet} (the VPC's default security group, no public IP)"),
        "within 15 min, then terminated".to_string(),
        "would wire launch template web → a new version (default), parameter /golden/web/ami → the replica".to_string(),
    ] {
        assert!(text(&dry.stdout).contains(&expected), "{expected}: {}", text(&dry.stdout));
    }
    let plan: Value =
        serde_json::from_str(&text(&replicate(&["--dry-run", "--output", "json"]).stdout)).unwrap();
    assert_eq!(
        plan[0]["bootCheck"],
        json!({"subnetId": subnet, "instanceType": "t3.micro", "securityGroupIds": [], "timeoutMinutes": 15})
    );
    assert_eq!(
        plan[0]["wiring"],
        json!({"launchTemplates": [{"name": "web", "setDefault": true}], "ssmParameter": "/golden/web/ami"})
    );
    assert_eq!(
        aws.count_calls("RunInstances") + aws.count_calls("CreateLaunchTemplateVersion"),
        0
    );

    let run = replicate(&["--output", "json"]);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let results: Value = serde_json::from_str(&stdout).expect("stdout is the JSON only");
    let evidence = &results[0]["document"]["evidence"];
    let check = &evidence["bootCheck"];
    assert_eq!(check["status"], "passed", "{check}");
    let instance = check["instanceId"].as_str().unwrap();
    assert_eq!(check["volumes"].as_array().unwrap().len(), 2, "{check}");
    assert!(check["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["kmsKeyId"] == key.arn.as_str()));
    assert_eq!(evidence["wiring"]["launchTemplates"][0]["name"], "web");
    assert_eq!(evidence["wiring"]["launchTemplates"][0]["isDefault"], true);
    let version = evidence["wiring"]["launchTemplates"][0]["version"]
        .as_i64()
        .unwrap();
    assert_eq!(
        evidence["wiring"]["ssmParameter"]["name"],
        "/golden/web/ami"
    );

    // What was proved, for people (on stderr beside the JSON): the instance, its times, the
    // volumes under the key, and what was wired.
    for expected in [
        format!(
            "boot check passed: {instance} (t3.micro in {subnet}) running in {} s, status checks ok in {} s; 2 volume(s) under {}",
            check["secondsToRunning"], check["secondsToStatusOk"], key.arn
        ),
        "; terminated".to_string(),
        format!("wired: launch template web → version {version} (default), parameter /golden/web/ami → version 1"),
        format!("[{DESTINATION}] boot check: {instance}"),
    ] {
        assert!(stderr.contains(&expected), "{expected}: {stderr}");
    }

    // Nothing is left running.
    aws.advance(5.0);
    let instances = seed.instances(DESTINATION).await;
    assert_eq!(
        instances,
        vec![(instance.to_string(), "terminated".to_string())],
        "one launch, terminated"
    );
}

#[tokio::test]
async fn a_dry_run_shows_the_plan_and_a_rerun_with_other_copy_options_is_refused() {
    let Seeded {
        aws,
        seed,
        image,
        key,
        ..
    } = seeded_with(900.0, Some((100, true))).await;
    let other = seed.key("eu-west-1").await;
    seed.alias("eu-west-1", "alias/dr-euw1", &other).await;
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
            "--to",
            "eu-west-1=alias/dr-euw1",
            "--completion-minutes",
            "15",
            "--dry-run",
        ];
        args.extend(extra);
        ferry(&aws, &args)
    };
    let dry = plan(&[]);
    let stdout = text(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    for expected in [
        &key.arn,
        &other.arn,
        "(alias/dr)",
        "replication fr-",
        "would start a copy: 108.0 GiB to transfer",
        "$0.020/GiB (the 15-minute tier)",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    assert_eq!(aws.count_calls("CopyImage"), 0, "a dry run copies nothing");

    // A copy started with 15 minutes is in flight in us-west-2.
    let deps = aws.deps(Config::default()).await;
    let request = json!({"source": {"region": SOURCE, "imageId": image}, "destination": {"region": DESTINATION, "kmsKeyId": "alias/dr"}, "options": {"completionDurationMinutes": 15}});
    let started = run_step(Step::StartCopy, &deps, &request).await.unwrap();
    let copy = started["copy"]["destinationId"]
        .as_str()
        .unwrap()
        .to_string();
    let again: Value = serde_json::from_str(&text(&plan(&["--output", "json"]).stdout)).unwrap();
    assert_eq!(again[0]["copy"], "reuse", "{again}");
    assert_eq!(again[0]["existingCopy"]["id"], copy.as_str());
    assert_eq!(again[0]["bytesToTransfer"], 0);
    assert_eq!(again[1]["copy"], "start");

    let changed = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
            "--completion-minutes",
            "30",
        ],
    );
    assert_eq!(changed.status.code(), Some(2), "{}", text(&changed.stderr));
    one_named_error(&changed, "InvalidRequest");
    assert!(
        text(&changed.stderr).contains("completionDurationMinutes=15")
            && text(&changed.stderr).contains("--completion-minutes"),
        "{}",
        text(&changed.stderr)
    );
    assert_eq!(aws.count_calls("CopyImage"), 1, "no second copy");

    // Once the copy has finished, other options cannot change it: it is reused, and said so.
    aws.advance(900.0);
    let finished = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
            "--completion-minutes",
            "30",
        ],
    );
    assert_eq!(
        finished.status.code(),
        Some(0),
        "{}",
        text(&finished.stderr)
    );
    assert!(
        text(&finished.stderr).contains("warning[CopyOptionsIgnored]")
            && text(&finished.stdout).contains(&format!("reused copy {copy}"))
            && text(&finished.stdout).contains("completionDurationMinutes=15"),
        "{}\n{}",
        text(&finished.stdout),
        text(&finished.stderr)
    );
    assert_eq!(aws.count_calls("CopyImage"), 1);
}

#[tokio::test]
async fn replicate_output_json_carries_a_failed_destination_with_its_name_message_and_hint() {
    let (aws, _seed, image, _) = seeded().await;
    let run = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
            "--to",
            "eu-west-1=alias/missing",
            "--output",
            "json",
        ],
    );
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    let results: Value = serde_json::from_str(&text(&run.stdout)).expect("stdout is JSON only");
    assert_eq!(results[0]["outcome"], "verified");
    assert_eq!(results[1]["destination"], "eu-west-1");
    assert_eq!(results[1]["outcome"], "failed");
    assert_eq!(results[1]["error"]["name"], "KeyNotFound");
    assert!(results[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("alias/missing"));
    assert!(!results[1]["error"]["hint"].as_str().unwrap().is_empty());
}

#[test]
fn help_teaches_with_examples_the_exit_codes_the_readme_gives_and_completions() {
    let run = |args: &[&str]| {
        text(
            &Command::new(env!("CARGO_BIN_EXE_ferry"))
                .args(args)
                .output()
                .unwrap()
                .stdout,
        )
    };
    let help = run(&["--help"]);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let table = readme
        .split("| exit code | meaning |")
        .nth(1)
        .expect("README has the exit-code table");
    let rows: Vec<(String, String)> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_string(), cells[2].to_string())
        })
        .collect();
    assert!(rows.len() >= 6, "{rows:?}");
    for (code, meaning) in &rows {
        assert!(
            help.contains(&format!("  {code:<4}{meaning}")),
            "README's exit code {code} ({meaning}) is what --help says: {help}"
        );
    }
    for command in ["replicate", "status", "audit", "prune", "demo"] {
        let help = run(&[command, "--help"]);
        assert!(
            help.contains("Examples:")
                && help.contains("Global options:")
                && help.contains("Exit codes:"),
            "{command}: {help}"
        );
    }
    assert!(run(&["completions", "bash"]).contains("_ferry()"));
}

#[tokio::test]
async fn a_bad_key_exits_1_with_the_error_name_and_a_hint() {
    let (aws, _seed, image, _) = seeded().await;
    let run = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/missing",
        ],
    );
    assert_eq!(run.status.code(), Some(1));
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("error[KeyNotFound]") && stderr.contains("hint: create the key or alias"),
        "{stderr}"
    );
    let usage = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2",
        ],
    );
    assert_eq!(
        usage.status.code(),
        Some(2),
        "a malformed --to is a usage error"
    );
    for args in [
        [
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-wset-2=alias/dr",
        ],
        [
            "audit",
            "--regions",
            "us-west-2,us-wset-2",
            "--format",
            "json",
            "",
            "",
        ],
    ] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let typo = ferry(&aws, &args);
        assert_eq!(
            typo.status.code(),
            Some(2),
            "{args:?}: a Region typo is a usage error"
        );
        assert!(
            text(&typo.stderr).contains("\"us-wset-2\" is not an AWS Region"),
            "{}",
            text(&typo.stderr)
        );
    }
    let spaced = ferry(
        &aws,
        &[
            "audit",
            "--regions",
            "us-west-2, us-west-2",
            "--format",
            "json",
        ],
    );
    assert_eq!(spaced.status.code(), Some(0), "{}", text(&spaced.stderr));
    assert!(
        text(&spaced.stderr).contains("audited in us-west-2;"),
        "{}",
        text(&spaced.stderr)
    );
}

#[tokio::test]
async fn the_audit_flags_planted_drift_and_exits_3() {
    let (aws, seed, image, _) = seeded().await;
    let clean = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
        ],
    );
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean.stderr));
    let audit = ferry(
        &aws,
        &["audit", "--regions", DESTINATION, "--format", "json"],
    );
    assert_eq!(
        audit.status.code(),
        Some(0),
        "a clean fleet passes: {}",
        text(&audit.stdout)
    );

    // Drift: a copy that was never verified, and a replica whose source is gone.
    let deps = aws.deps(Config::default()).await;
    let other_key = seed.key(SOURCE).await;
    let snapshot = seed.snapshot(SOURCE, Some(&other_key), 8).await;
    let request = json!({"source": {"region": SOURCE, "snapshotId": snapshot}, "destination": {"region": DESTINATION, "kmsKeyId": "alias/dr"}});
    run_step(Step::StartCopy, &deps, &request).await.unwrap();
    seed.ec2(SOURCE)
        .deregister_image()
        .image_id(&image)
        .send()
        .await
        .unwrap();

    let audit = ferry(
        &aws,
        &["audit", "--regions", DESTINATION, "--format", "json"],
    );
    assert_eq!(audit.status.code(), Some(3), "{}", text(&audit.stderr));
    let replicas: Value = serde_json::from_str(&text(&audit.stdout)).unwrap();
    let flags: Vec<String> = replicas
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["kind"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        flags.contains(&"brokenLineage".to_string()) && flags.contains(&"notVerified".to_string()),
        "{flags:?}"
    );
    let table = ferry(&aws, &["audit", "--regions", DESTINATION]);
    assert!(
        text(&table.stdout).contains("BROKEN LINEAGE")
            && text(&table.stdout).contains("NOT VERIFIED"),
        "{}",
        text(&table.stdout)
    );
    let csv = ferry(
        &aws,
        &["audit", "--regions", DESTINATION, "--format", "csv"],
    );
    assert_eq!(
        text(&csv.stdout).lines().count(),
        3,
        "a header and one row per replica snapshot: {}",
        text(&csv.stdout)
    );
}

#[tokio::test]
async fn the_audit_tells_the_truth_per_snapshot_and_flags_a_key_disabled_after_verification() {
    let Seeded {
        aws,
        seed,
        image,
        root,
        data,
        key,
    } = seeded_with(2.0, Some((8, false))).await;
    let data = data.unwrap();
    let run = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
            "--output",
            "json",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let results: Value = serde_json::from_str(&text(&run.stdout)).unwrap();
    let snapshots = results[0]["document"]["evidence"]["verification"]["snapshots"].clone();
    let replica_of = |source: &str| {
        snapshots
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sourceSnapshotId"] == source)
            .unwrap()["snapshotId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (drifted, clean) = (replica_of(&root), replica_of(&data));

    // The replica of the unencrypted source is marked, not flagged.
    let table = ferry(&aws, &["audit", "--regions", DESTINATION]);
    assert_eq!(table.status.code(), Some(0), "{}", text(&table.stdout));
    assert!(
        text(&table.stdout).contains(&format!("note: {clean}'s source {data} was unencrypted")),
        "{}",
        text(&table.stdout)
    );

    let other = seed.key(DESTINATION).await;
    aws.tamper(&drifted, &other.arn);
    let table = text(&ferry(&aws, &["audit", "--regions", DESTINATION]).stdout);
    assert!(
        table.contains(&format!("{} (recorded alias/dr)", other.arn))
            && !table.contains(&format!("{} (alias/dr)", other.arn))
            && table.contains(&format!("{} (alias/dr)", key.arn)),
        "the alias stands beside the key it names: {table}"
    );
    let csv = text(
        &ferry(
            &aws,
            &["audit", "--regions", DESTINATION, "--output", "csv"],
        )
        .stdout,
    );
    let row = |snapshot: &str| {
        csv.lines()
            .find(|l| l.contains(&format!(",{snapshot},")))
            .unwrap()
            .to_string()
    };
    assert!(row(&drifted).contains("DRIFT"), "{csv}");
    assert!(
        !row(&clean).contains("DRIFT") && row(&clean).contains("was unencrypted"),
        "a row carries its own snapshot's flags: {csv}"
    );
    let json_audit = text(
        &ferry(
            &aws,
            &["audit", "--regions", DESTINATION, "--output", "json"],
        )
        .stdout,
    );
    assert!(
        !json_audit.contains("snapshot_id") && json_audit.contains("\"snapshotId\""),
        "camelCase throughout: {json_audit}"
    );

    aws.tamper(&drifted, &key.arn);
    seed.disable_key(DESTINATION, &key).await;
    let audit = ferry(
        &aws,
        &["audit", "--regions", DESTINATION, "--output", "json"],
    );
    assert_eq!(audit.status.code(), Some(3), "{}", text(&audit.stdout));
    let replicas: Value = serde_json::from_str(&text(&audit.stdout)).unwrap();
    assert_eq!(
        replicas[0]["flags"],
        json!([{"kind": "keyNotEnabled", "keyArn": key.arn, "state": "Disabled"}])
    );
}

#[tokio::test]
async fn replace_deletes_a_drifted_replica_ferry_made_and_copies_afresh() {
    let (aws, seed, image, key_arn) = seeded().await;
    let replicate = |extra: &[&str]| {
        let mut args = vec![
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
            "--output",
            "json",
        ];
        args.extend(extra);
        ferry(&aws, &args)
    };
    let first: Value = serde_json::from_str(&text(&replicate(&[]).stdout)).unwrap();
    let old = first[0]["replicaId"].as_str().unwrap().to_string();
    let old_snapshot = first[0]["document"]["evidence"]["verification"]["snapshots"][0]
        ["snapshotId"]
        .as_str()
        .unwrap()
        .to_string();
    let other = seed.key(DESTINATION).await;
    aws.tamper(&old_snapshot, &other.arn);

    let plain = replicate(&[]);
    assert_eq!(
        plain.status.code(),
        Some(1),
        "a rerun reuses the drifted replica and fails closed"
    );
    assert!(
        text(&plain.stderr).contains("error[ReplicaWrongKey]"),
        "{}",
        text(&plain.stderr)
    );

    let replaced = replicate(&["--replace"]);
    assert_eq!(
        replaced.status.code(),
        Some(0),
        "{}",
        text(&replaced.stderr)
    );
    let results: Value = serde_json::from_str(&text(&replaced.stdout)).unwrap();
    let new = results[0]["replicaId"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(results[0]["keyArn"], key_arn.as_str());
    assert_eq!(results[0]["replaced"]["replica"], old.as_str());
    assert_eq!(
        results[0]["replaced"]["deleted"],
        json!([old, old_snapshot])
    );
    assert!(
        text(&replaced.stderr).contains(&format!("warning[Replaced]: us-west-2: {old} failed verification (ReplicaWrongKey); deleted ferry's own")),
        "{}",
        text(&replaced.stderr)
    );
    let audit = ferry(&aws, &["audit", "--regions", DESTINATION]);
    assert_eq!(
        audit.status.code(),
        Some(0),
        "only the new replica is left: {}",
        text(&audit.stdout)
    );
}

#[tokio::test]
async fn the_demo_runs_on_a_local_aws_already_running_when_given_its_endpoint() {
    let aws = LocalAws::start(2.0);
    let run = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["demo", "--endpoint-url", &aws.endpoint, "--output", "json"])
        .output()
        .expect("ferry demo runs");
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let results: Value = serde_json::from_str(&text(&run.stdout)).expect("stdout is the JSON only");
    assert_eq!(results.as_array().unwrap().len(), 2);
    assert!(results
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "verified"));
    assert_eq!(
        aws.count_calls("CopyImage"),
        2,
        "the demo's two copies ran on the given local AWS"
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["demo", "--endpoint-url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(4));
    one_named_error(&refused, "Unreachable");
}

#[test]
fn the_demo_replicates_and_proves_every_snapshot_is_under_its_destination_key() {
    let run = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("demo")
        .output()
        .expect("ferry demo runs");
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(
        stdout.matches("= the destination key ✔").count(),
        4,
        "{stdout}"
    );
    assert!(
        !stdout.contains('✘') && stdout.contains("FSR") && stdout.contains("Replication Succeeded"),
        "{stdout}"
    );
}

/// A state machine on the local AWS's Step Functions API (moto runs simple definitions itself):
/// enough to prove the CLI starts idempotently, follows, reports and sets its exit code.
async fn state_machine(aws: &LocalAws, name: &str, definition: Value) -> String {
    let mut stream =
        std::net::TcpStream::connect(aws.endpoint.trim_start_matches("http://")).unwrap();
    let body = r#"{"stepfunctions": {"execute_state_machine": true}}"#;
    use std::io::{Read, Write};
    write!(stream, "POST /moto-api/config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    stream.read_to_string(&mut String::new()).unwrap();
    let sfn = aws_sdk_sfn::Client::new(&aws.sdk_config().await);
    let created = sfn
        .create_state_machine()
        .name(name)
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/ferry-state-machine")
        .send()
        .await
        .unwrap();
    created.state_machine_arn().to_string()
}

#[tokio::test]
async fn replicate_through_a_state_machine_starts_once_follows_and_reports_success_or_the_error_name(
) {
    let (aws, _seed, image, _) = seeded().await;
    let succeeding = state_machine(
        &aws,
        "ferry-ok",
        json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let args = [
        "replicate",
        "--source-region",
        SOURCE,
        "--image",
        &image,
        "--to",
        "us-west-2=alias/dr",
        "--state-machine",
        &succeeding,
    ];
    let first = ferry(&aws, &args);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("succeeded"),
        "{}",
        text(&first.stdout)
    );
    let again = ferry(&aws, &args);
    assert_eq!(
        again.status.code(),
        Some(0),
        "the same request names the same execution: {}",
        text(&again.stderr)
    );
    let sfn = aws_sdk_sfn::Client::new(&aws.sdk_config().await);
    let executions = sfn
        .list_executions()
        .state_machine_arn(&succeeding)
        .send()
        .await
        .unwrap();
    assert_eq!(executions.executions().len(), 1, "starting is idempotent");
    let execution_arn = executions.executions()[0].execution_arn().to_string();
    let status = ferry(&aws, &["status", &execution_arn]);
    assert_eq!(status.status.code(), Some(0));
    assert!(
        text(&status.stdout).contains("SUCCEEDED"),
        "{}",
        text(&status.stdout)
    );

    let failing = state_machine(&aws, "ferry-fails", json!({"StartAt": "Failed", "States": {"Failed": {"Type": "Fail", "Error": "KeyNotFound", "Cause": "alias/dr not found in us-west-2"}}})).await;
    let failed = ferry(
        &aws,
        &[
            "replicate",
            "--source-region",
            SOURCE,
            "--image",
            &image,
            "--to",
            "us-west-2=alias/dr",
            "--state-machine",
            &failing,
        ],
    );
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        text(&failed.stderr).contains("error[KeyNotFound]")
            && text(&failed.stderr).contains("not found in us-west-2"),
        "{}",
        text(&failed.stderr)
    );
}

/// A policy document in a file of its own, as the stack deploys it, with `destinations`.
fn policy_file(name: &str, destinations: Value) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "ferry-cli-{name}-{}-{}.json",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let policy = json!({"selection": {"tagKey": "app"}, "destinations": destinations});
    std::fs::write(&path, policy.to_string()).unwrap();
    path
}

/// (image id, action) of each verdict `ferry prune --output json` printed, in its order.
fn verdicts(run: &Output) -> Vec<(String, String)> {
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let shown: Value = serde_json::from_str(&text(&run.stdout)).expect("stdout is the JSON only");
    shown
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["imageId"].as_str().unwrap().to_string(),
                v["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn prune_shows_what_the_schedule_would_retire_and_apply_retires_exactly_that() {
    let Seeded {
        aws, seed, image, ..
    } = seeded_with(2.0, None).await;
    // Four AMIs of the family app=web (the Seeder tags every image so).
    let key = seed.key(SOURCE).await;
    let mut sources = vec![image];
    for n in 1..4 {
        let root = seed.snapshot(SOURCE, Some(&key), 8).await;
        sources.push(
            seed.image(SOURCE, &format!("golden-{n}"), &[("/dev/xvda", &root)])
                .await,
        );
    }
    let mut cli_calls = vec![];
    let mut since = aws.calls().len();
    let mut replicas = vec![];
    for source in &sources {
        let run = ferry(
            &aws,
            &[
                "replicate",
                "--source-region",
                SOURCE,
                "--image",
                source,
                "--to",
                "us-west-2=alias/dr",
                "--retention-keep",
                "1",
                "--retention-group-by",
                "app",
                "--output",
                "json",
            ],
        );
        assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
        let results: Value = serde_json::from_str(&text(&run.stdout)).unwrap();
        assert_eq!(results[0]["document"]["group"], "app=web");
        assert!(
            text(&run.stderr).contains("retention group app=web (ferry:group)")
                && text(&run.stderr).contains("warning[RetentionNotAppliedHere]"),
            "{}",
            text(&run.stderr)
        );
        replicas.push(results[0]["replicaId"].as_str().unwrap().to_string());
    }
    cli_calls.extend(aws.calls()[since..].to_vec());

    // The second-oldest replica is what a launch template's default version launches.
    let ec2 = seed.ec2(DESTINATION);
    seed.launch_template_of(DESTINATION, "web", &replicas[1])
        .await;
    // A look-alike: ferry's group and verification tags, but not ferry's own.
    let snapshot = seed.snapshot(DESTINATION, None, 8).await;
    let lookalike = seed
        .image(DESTINATION, "lookalike", &[("/dev/xvda", &snapshot)])
        .await;
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    ec2.create_tags()
        .resources(&lookalike)
        .tags(tag("ferry:group", "app=web"))
        .tags(tag("ferry:verified-at", "2020-01-01T00:00:00Z"))
        .send()
        .await
        .unwrap();
    since = aws.calls().len();

    // Flags that cannot work are refused by name, before any AWS call.
    for (flags, named) in [
        (
            &["--keep", "0", "--group-by", "app"][..],
            "--keep: keep at least 1",
        ),
        (&["--keep", "1"][..], "--group-by: --keep needs it"),
        (&["--keep", "1", "--group-by", "aws:app"][..], "--group-by"),
        (
            &["--keep", "1", "--group-by", "app", "--grace-days", "999"][..],
            "--grace-days: at most 365",
        ),
        (&[][..], "--policy"),
    ] {
        let run = ferry(
            &aws,
            &[&["prune", "--region", DESTINATION][..], flags].concat(),
        );
        assert_eq!(
            run.status.code(),
            Some(2),
            "{flags:?}: {}",
            text(&run.stderr)
        );
        one_named_error(&run, "InvalidRequest");
        assert!(
            text(&run.stderr).contains(named),
            "{flags:?} names {named}: {}",
            text(&run.stderr)
        );
    }
    assert_eq!(aws.calls().len(), since, "refused before any AWS call");

    // The dry run (the default): newest first, the newest and the templated one kept, the rest
    // deprecated; the look-alike is not among them.
    let prune = |extra: &[&str]| {
        ferry(
            &aws,
            &[
                &[
                    "prune",
                    "--region",
                    DESTINATION,
                    "--keep",
                    "1",
                    "--group-by",
                    "app",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let dry = prune(&["--output", "json"]);
    let planned = verdicts(&dry);
    let expected: Vec<(String, String)> = [
        (&replicas[3], "keep"),
        (&replicas[2], "deprecate"),
        (&replicas[1], "keep"),
        (&replicas[0], "deprecate"),
    ]
    .iter()
    .map(|(id, action)| (id.to_string(), action.to_string()))
    .collect();
    assert_eq!(planned, expected);
    let shown: Value = serde_json::from_str(&text(&dry.stdout)).unwrap();
    let reasons: Vec<&str> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "the newest verified replica of its group",
            "beyond the newest 1 of its group (number 2)",
            "launch template web's default version 1 launches it",
            "beyond the newest 1 of its group (number 4)",
        ]
    );
    assert!(shown
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["region"] == DESTINATION && v["group"] == "app=web" && v.get("done").is_none()));
    let table = prune(&[]);
    let (stdout, stderr) = (text(&table.stdout), text(&table.stderr));
    assert!(
        stdout.contains(&format!("{} would deprecate", replicas[2]))
            && stdout.contains("launch template web's default version 1 launches it")
            && !stdout.contains(&lookalike),
        "{stdout}"
    );
    assert!(
        stderr.contains("4 replicas in us-west-2: 2 kept, 2 would be deprecated")
            && stderr.contains("dry run: nothing was changed"),
        "{stderr}"
    );
    let csv = text(&prune(&["--output", "csv"]).stdout);
    assert_eq!(
        csv.lines().count(),
        5,
        "a header and one row per replica: {csv}"
    );
    assert!(
        csv.starts_with("region,group,image_id,action,reason,"),
        "{csv}"
    );
    assert_eq!(
        aws.count_calls("EnableImageDeprecation") + aws.count_calls("DeregisterImage"),
        0,
        "a dry run changes nothing"
    );

    // The same from a policy as the stack deploys it; one without retention is refused.
    let policy = policy_file(
        "retention",
        json!([{"region": DESTINATION, "kmsKeyId": "alias/dr",
                "retention": {"keep": 1, "groupBy": "app"}}]),
    );
    let policy = policy.to_str().unwrap();
    let from_policy = ferry(&aws, &["prune", "--policy", policy, "--output", "json"]);
    assert_eq!(verdicts(&from_policy), expected);
    let plain = policy_file(
        "plain",
        json!([{"region": DESTINATION, "kmsKeyId": "alias/dr"}]),
    );
    let no_retention = ferry(&aws, &["prune", "--policy", plain.to_str().unwrap()]);
    assert_eq!(no_retention.status.code(), Some(2));
    one_named_error(&no_retention, "InvalidRequest");
    assert!(
        text(&no_retention.stderr).contains("--policy: ")
            && text(&no_retention.stderr).contains("no destination has retention"),
        "{}",
        text(&no_retention.stderr)
    );

    // The audit shows what uses each replica and what retention would do with it.
    let audit = ferry(
        &aws,
        &[
            "audit",
            "--regions",
            DESTINATION,
            "--policy",
            policy,
            "--output",
            "json",
        ],
    );
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit.stdout));
    let audited: Value = serde_json::from_str(&text(&audit.stdout)).unwrap();
    let of = |id: &str| {
        audited
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["destinationId"] == id)
            .unwrap_or_else(|| panic!("{id} audited: {audited}"))
            .clone()
    };
    assert_eq!(
        of(&replicas[1])["launchTemplates"],
        json!(["web (default version 1)"])
    );
    assert_eq!(of(&replicas[3])["launchTemplates"], json!([]));
    for (replica, action) in &expected {
        assert_eq!(
            of(replica)["retention"]["action"],
            action.as_str(),
            "{replica}"
        );
    }
    assert!(of(&replicas[0])["retention"]["reason"]
        .as_str()
        .unwrap()
        .contains("beyond the newest 1"));
    let table = ferry(&aws, &["audit", "--policy", policy]);
    let stdout = text(&table.stdout);
    assert_eq!(table.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("    launched by: web (default version 1)")
            && stdout.contains("    retention: keep — the newest verified replica of its group")
            && stdout.contains("    retention: would deprecate — beyond the newest 1 of its group"),
        "the policy's Regions, with retention: {stdout}"
    );
    let csv = text(&ferry(&aws, &["audit", "--policy", policy, "--output", "csv"]).stdout);
    assert!(
        csv.lines().next().unwrap().ends_with(
            ",flags,launch_templates,ssm_parameter,boot_checked,retention_action,retention_reason"
        ) && csv.contains(",web (default version 1),-,-,keep,launch template web"),
        "{csv}"
    );

    // --apply with no grace: exactly the verdicts shown, deprecated and retired at once.
    let applied = prune(&["--grace-days", "0", "--apply", "--output", "json"]);
    assert_eq!(
        verdicts(&applied),
        expected,
        "the apply acts on the set the dry run showed"
    );
    let done: Value = serde_json::from_str(&text(&applied.stdout)).unwrap();
    let done: Vec<&str> = done
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["done"].as_str().unwrap())
        .collect();
    assert_eq!(
        done,
        ["kept", "deprecated, retired", "kept", "deprecated, retired"]
    );
    assert!(
        text(&applied.stderr).contains("applied in us-west-2: 2 deprecated, 2 retired"),
        "{}",
        text(&applied.stderr)
    );
    let owned: Vec<String> = seed
        .owned_images(DESTINATION)
        .await
        .iter()
        .filter_map(|i| i.image_id().map(str::to_string))
        .collect();
    for (replica, action) in &expected {
        assert_eq!(
            owned.contains(replica),
            action == "keep",
            "{replica} {action}: {owned:?}"
        );
    }
    assert!(owned.contains(&lookalike), "the look-alike is untouched");
    assert_eq!(
        aws.count_calls("DeleteSnapshot"),
        2,
        "their snapshots, and no other"
    );
    let retired = aws
        .events()
        .into_iter()
        .filter(|e| e["detailType"] == "Replica Retired")
        .count();
    assert_eq!(retired, 2);
    let after = prune(&["--output", "json"]);
    assert_eq!(
        verdicts(&after),
        [
            (replicas[3].clone(), "keep".to_string()),
            (replicas[1].clone(), "keep".to_string())
        ],
        "nothing more to retire"
    );

    // The operator policy allows every call replicate, prune and audit made.
    cli_calls.extend(aws.calls()[since..].to_vec());
    let made = allowed_by_the_operator_policy(&cli_calls);
    for action in [
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:DescribeInstances",
        "ec2:EnableImageDeprecation",
        "ec2:DeregisterImage",
        "ec2:DeleteSnapshot",
        "events:PutEvents",
    ] {
        assert!(
            made.iter().any(|a| a == action),
            "prune retired: {action} in {made:?}"
        );
    }
    let _ = std::fs::remove_file(policy);
    let _ = std::fs::remove_file(plain);
}
