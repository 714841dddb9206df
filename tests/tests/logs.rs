//! Logs carry ids and outcomes, never credentials, key material or whole documents: checked on
//! everything a replication (and a refused one) logs with ferry's filter at TRACE.

use std::io::Write;
use std::sync::{Arc, Mutex};

use ferry_core::Config;
use ferry_tests::local_aws::{TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN};
use ferry_tests::replicate_in_process;
use ferry_tests::world::HandlerWorld;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_replication_logs_no_credentials_no_key_material_and_no_documents() {
    let captured = Captured::default();
    let writer = captured.clone();
    // As a Lambda configured with AWS_LAMBDA_LOG_LEVEL=TRACE and JSON logs would log.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(ferry_core::telemetry::filter("trace"))
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let HandlerWorld { aws, seed, deps } = HandlerWorld::start(600.0, Config::default()).await;
    let source_key = seed.key("us-east-1").await;
    let snapshot = seed.snapshot("us-east-1", Some(&source_key), 8).await;
    let image = seed
        .image("us-east-1", "golden", &[("/dev/xvda", &snapshot)])
        .await;
    let key = seed.key("us-west-2").await;
    let request = json!({
        "source": {"region": "us-east-1", "imageId": image},
        "destination": {"region": "us-west-2", "kmsKeyId": key.arn},
        "options": {"batch": "log-check", "fsr": {"availabilityZones": ["us-west-2a"]}}
    });
    replicate_in_process(&aws, &deps, &request).await.unwrap();
    let refused = json!({"source": {"region": "us-east-1", "imageId": image}, "destination": {"region": "us-west-2", "kmsKeyId": "alias/missing"}});
    replicate_in_process(&aws, &deps, &refused)
        .await
        .unwrap_err();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("copy started") && logs.contains("replica verified"),
        "ferry's own events were captured"
    );
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "the SDK's DEBUG output was captured too ({} lines)",
        logs.lines().count()
    );
    for secret in [
        TEST_SECRET_ACCESS_KEY,
        TEST_SESSION_TOKEN,
        "Signature=",
        "X-Amz-Security-Token",
    ] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
    // Document fields are camelCase; ferry's log fields are snake_case, so any of these means a document leaked.
    for document_field in [
        "kmsKeyId",
        "sourceSnapshots",
        "nextCheckSeconds",
        "copySourceTags",
    ] {
        let leak = logs.lines().find(|line| line.contains(document_field));
        assert!(
            leak.is_none(),
            "a whole document ({document_field}) appears in the logs: {}",
            leak.unwrap_or_default()
                .chars()
                .take(600)
                .collect::<String>()
        );
    }
    ferry_tests::figure(
        "log hygiene",
        &format!(
            "{} JSON log lines at TRACE (the SDK's DEBUG included) from a full replication and a refused one: 0 credentials, 0 signatures or session tokens, 0 whole documents",
            logs.lines().count()
        ),
    );
}
