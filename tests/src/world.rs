//! The worlds the suites run in: the local AWS and its seeder, with either ferry's handlers wired
//! to it in-process ([`HandlerWorld`]) or the real ASL on a local interpreter with the real
//! Lambdas behind it ([`World`]).

use ferry_core::{Config, Deps};
use serde_json::{json, Value};

use crate::seed::Key;
use crate::{LocalAws, LocalStepFunctions, Seeder};

/// The local AWS, its seeder, and ferry's handlers wired to it (run with [`crate::run_step`]).
pub struct HandlerWorld {
    pub aws: LocalAws,
    pub seed: Seeder,
    pub deps: Deps,
}

impl HandlerWorld {
    /// The local AWS (copies pending for `copy_seconds`) and the handlers with `config`; the
    /// stack's work bucket exists and is configured unless `config` names another.
    pub async fn start(copy_seconds: f64, config: Config) -> HandlerWorld {
        let aws = LocalAws::start(copy_seconds);
        let seed = Seeder::new(&aws.sdk_config().await);
        seed.bucket(crate::state_machine::WORK_BUCKET).await;
        let config = Config {
            work_bucket: config
                .work_bucket
                .or_else(|| Some(crate::state_machine::WORK_BUCKET.to_string())),
            ..config
        };
        let deps = aws.deps(config).await;
        HandlerWorld { aws, seed, deps }
    }

    /// Every work item the plan `plan` wrote, across its Regions, in order.
    pub async fn planned(&self, plan: &Value) -> Vec<Value> {
        let mut items = vec![];
        for region in plan["regions"].as_array().cloned().unwrap_or_default() {
            let body = self
                .deps
                .work
                .get(
                    plan["bucket"].as_str().unwrap_or_default(),
                    region["key"].as_str().unwrap_or_default(),
                )
                .await
                .expect("GetObject")
                .expect("the work list exists");
            let list: Vec<Value> = serde_json::from_slice(&body).expect("a JSON work list");
            items.extend(list.into_iter().map(|item| item["replication"].clone()));
        }
        items
    }
}

pub const SOURCE: &str = "us-east-1";
/// The policy's selection tag in these suites.
pub const SELECTION_TAG: &str = "ferry:replicate";

pub struct World {
    // Dropped first: the functions stop before the emulator they talk to.
    pub sfn: LocalStepFunctions,
    pub aws: LocalAws,
    pub seed: Seeder,
}

impl World {
    /// The local AWS (copies pending for `copy_seconds`) and the state machine with `policy`.
    pub async fn start(policy: Value, copy_seconds: f64) -> World {
        let aws = LocalAws::start(copy_seconds);
        let seed = Seeder::new(&aws.sdk_config().await);
        let sfn = LocalStepFunctions::start(&aws, &policy).await;
        World { sfn, aws, seed }
    }

    /// A key in `region` behind `alias`.
    pub async fn aliased_key(&self, region: &str, alias: &str) -> Key {
        let key = self.seed.key(region).await;
        self.seed.alias(region, alias, &key).await;
        key
    }
}

/// A policy selecting sources in us-east-1 by `SELECTION_TAG=true`, encrypted sources only.
pub fn policy(destinations: Value, max_copies_in_flight: usize) -> Value {
    json!({
        "selection": {"tagKey": SELECTION_TAG, "tagValues": ["true"]},
        "requireEncryptedSource": true,
        "sourceRegions": [SOURCE],
        "copySourceTags": true,
        "maxCopiesInFlightPerRegion": max_copies_in_flight,
        "destinations": destinations,
    })
}

/// `(detail-type, detail)` of every event source `ferry` published.
pub fn ferry_events(world: &World) -> Vec<(String, Value)> {
    world
        .aws
        .events()
        .iter()
        .filter(|e| e["source"] == "ferry")
        .map(|e| {
            (
                e["detailType"].as_str().unwrap_or_default().to_string(),
                serde_json::from_str(e["detail"].as_str().unwrap_or("null")).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// How many of `events` have `detail_type`.
pub fn count(events: &[(String, Value)], detail_type: &str) -> usize {
    events
        .iter()
        .filter(|(kind, _)| kind == detail_type)
        .count()
}

/// An EventBridge event from `tests/fixtures/events/<name>`.
pub fn event_fixture(name: &str) -> Value {
    let path = crate::local_aws::repo_root()
        .join("tests/fixtures/events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

/// EventBridge's `EC2 AMI State Change` (tests/fixtures/events/ami-available.json) for `image`
/// in `region`.
pub fn ami_available(region: &str, image: &str) -> Value {
    let mut event = event_fixture("ami-available.json");
    event["region"] = json!(region);
    event["resources"] = json!([format!("arn:aws:ec2:{region}::image/{image}")]);
    event["detail"]["ImageId"] = json!(image);
    event
}
