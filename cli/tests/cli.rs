//! The `ferry` binary against the local AWS: replicate, status, audit (with planted drift),
//! and the demo, with the documented exit codes.

use std::process::{Command, Output};

use ferry_core::handlers::{run_step, Step};
use ferry_core::Config;
use ferry_local::local_aws::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use ferry_local::{LocalAws, Seeder};
use serde_json::{json, Value};

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

fn ferry(aws: &LocalAws, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("--endpoint-url")
        .arg(&aws.endpoint)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env("AWS_REGION", SOURCE)
        .env_remove("AWS_PROFILE")
        .env("FERRY_POLL_MIN_SECONDS", "1")
        .env("FERRY_POLL_MAX_SECONDS", "1")
        .output()
        .expect("ferry runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

async fn seeded() -> (LocalAws, Seeder, String, String) {
    let aws = LocalAws::start(2.0);
    let seed = Seeder::new(&aws.sdk_config().await);
    let source_key = seed.key(SOURCE).await;
    let root = seed.snapshot(SOURCE, Some(&source_key), 8).await;
    let image = seed.image(SOURCE, "golden", &[("/dev/xvda", &root)]).await;
    let key = seed.key(DESTINATION).await;
    seed.alias(DESTINATION, "alias/dr", &key).await;
    (aws, seed, image, key.arn)
}

#[tokio::test]
async fn replicate_proves_the_key_and_status_finds_the_replication_by_id() {
    let (aws, _seed, image, key_arn) = seeded().await;
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
            "--fsr-az",
            "us-west-2a",
            "--json",
        ],
    );
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

    let status = ferry(&aws, &["status", &replication_id, "--regions", DESTINATION]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    assert!(
        text(&status.stdout).contains(&image) && text(&status.stdout).contains(" ok"),
        "{}",
        text(&status.stdout)
    );
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
