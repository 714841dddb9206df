//! `ferry replicate`: in-process by default (the Lambdas' own logic, waiting here instead of in
//! a state machine), or through a deployed state machine with `--state-machine ARN`; with
//! `--dry-run`, start-copy's preflight only.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sfn::types::ExecutionStatus;
use ferry_core::document::{Destination, FsrOptions, Options, Source, SourceKind};
use ferry_core::flow::{Flow, Observe, Pause, Stage};
use ferry_core::handlers::start_copy::{self, Preflight};
use ferry_core::rules::lineage::rfc3339;
use ferry_core::rules::{request, time_based};
use ferry_core::{Config, Deps, FerryError, Replication};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::report::{self, Output, Progress};
use crate::Global;

pub const EXAMPLES: &str = "Examples:
  ferry replicate --source-region us-east-1 --image ami-0123456789abcdef0 \\
      --to us-west-2=alias/prod-ebs-usw2 --to eu-west-1=alias/prod-ebs-euw1 --dry-run
  ferry replicate --source-region us-east-1 --snapshot snap-0123456789abcdef0 \\
      --to us-west-2=alias/dr --completion-minutes 60 --output json
  ferry replicate … --state-machine arn:aws:states:us-east-1:111122223333:stateMachine:ferry-replication";

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["image", "snapshot"])))]
pub struct Args {
    /// The Region the source lives in, e.g. us-east-1.
    #[arg(long, value_parser = report::region)]
    source_region: String,
    /// The AMI to replicate: ami- and 8 or 17 hex digits, EBS-backed, available.
    #[arg(long)]
    image: Option<String>,
    /// The EBS snapshot to replicate: snap- and 8 or 17 hex digits, completed.
    #[arg(long)]
    snapshot: Option<String>,
    /// A destination Region and its KMS key, REGION=KEY. KEY is a key id, key ARN, alias/NAME,
    /// alias ARN or mrk- multi-Region key, living in REGION. Repeatable.
    #[arg(long = "to", value_name = "REGION=KEY", required = true, value_parser = parse_destination)]
    destinations: Vec<(String, String)>,
    /// A label recorded in the lineage tags (a valid tag value, at most 256 characters).
    #[arg(long)]
    batch: Option<String>,
    /// Enable Fast Snapshot Restore in this Availability Zone of a destination Region (e.g.
    /// us-west-2a). Repeatable; at most 10 per Region.
    #[arg(long = "fsr-az", value_name = "AZ")]
    fsr_zones: Vec<String>,
    /// Tag the replica so FSR is disabled after this many hours (more than 0, at most 8760). A
    /// deployed ferry's scheduled sweep disables it; nothing in this command does.
    #[arg(long, value_name = "HOURS")]
    fsr_disable_after_hours: Option<f64>,
    /// Copy the source AMI's own tags too (AMIs only: CopySnapshot copies no tags).
    #[arg(long)]
    copy_source_tags: bool,
    /// A time-based copy finishing within this many minutes: 15 to 2880 in steps of 15. Refused
    /// when a source snapshot cannot be copied that fast (500 MiB/s per snapshot).
    #[arg(long, value_name = "MINUTES")]
    completion_minutes: Option<i64>,
    /// Rerun after a failed copy with this attempt number (1 or more; the error says which).
    #[arg(long)]
    attempt: Option<u32>,
    /// Show, per destination, what would happen: the resolved key, the replication id, whether
    /// a copy would be reused or started, the size to transfer and a time-based copy's price
    /// tier. Runs start-copy's preflight; copies nothing.
    #[arg(long, conflicts_with = "state_machine")]
    dry_run: bool,
    /// When the replica this replication already has fails verification (under another key,
    /// another key associated, unencrypted, incomplete), delete it (only what ferry made for this
    /// replication) and copy afresh with the next attempt. Says what it deleted.
    #[arg(long, conflicts_with_all = ["state_machine", "dry_run"])]
    replace: bool,
    /// Start (idempotently) and follow an execution of this state machine instead.
    #[arg(long, value_name = "ARN")]
    state_machine: Option<String>,
    /// The same as --output json.
    #[arg(long, hide = true)]
    json: bool,
}

fn parse_destination(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((region, key)) if !region.is_empty() && !key.is_empty() => {
            Ok((report::region(region)?, key.to_string()))
        }
        _ => Err(format!(
            "{value:?}: give REGION=KEY, e.g. us-west-2=alias/prod-ebs-usw2"
        )),
    }
}

/// The flag a document field comes from, for messages that name what the operator typed.
const FLAGS: [(&str, &str); 11] = [
    ("source.region", "--source-region"),
    ("source.imageId", "--image"),
    ("source.snapshotId", "--snapshot"),
    ("destination.region", "--to REGION"),
    ("destination.kmsKeyId", "--to REGION=KEY"),
    ("options.completionDurationMinutes", "--completion-minutes"),
    ("options.attempt", "--attempt"),
    ("options.batch", "--batch"),
    ("options.fsr.availabilityZones", "--fsr-az"),
    ("options.fsr.disableAfterHours", "--fsr-disable-after-hours"),
    ("options", "--completion-minutes/--copy-source-tags"),
];

fn flag_for(field: &str) -> &str {
    FLAGS
        .iter()
        .filter(|(name, _)| field == *name || field.starts_with(&format!("{name}.")))
        .max_by_key(|(name, _)| name.len())
        .map_or(field, |(_, flag)| flag)
}

/// A replication's error as this command reports it: an invalid request names the flag and is
/// a usage error (exit 2); anything else is the named error (exit 1, or 4 unreachable).
fn report_error(region: &str, error: &FerryError) -> ExitCode {
    match error {
        FerryError::InvalidRequest { field, reason } => report::failure(
            error.name(),
            &format!("{region}: {}: {reason}", flag_for(field)),
            "`ferry replicate --help` lists each flag's accepted values",
            report::USAGE,
        ),
        _ => report::error(region, error),
    }
}

impl Args {
    /// One replication request per destination.
    pub fn requests(&self) -> Vec<Replication> {
        self.destinations
            .iter()
            .map(|(region, key)| {
                let zones: Vec<String> = self
                    .fsr_zones
                    .iter()
                    .filter(|zone| request::is_zone_of(zone, region))
                    .cloned()
                    .collect();
                Replication::request(
                    Source {
                        region: self.source_region.clone(),
                        image_id: self.image.clone(),
                        snapshot_id: self.snapshot.clone(),
                    },
                    Destination {
                        region: region.clone(),
                        kms_key_id: key.clone(),
                        ..Default::default()
                    },
                    Options {
                        copy_source_tags: self.copy_source_tags.then_some(true),
                        completion_duration_minutes: self.completion_minutes,
                        batch: self.batch.clone(),
                        fsr: (!zones.is_empty()).then_some(FsrOptions {
                            availability_zones: zones,
                            disable_after_hours: self.fsr_disable_after_hours,
                            fail_when_quota_full: false,
                        }),
                        attempt: self.attempt,
                    },
                )
            })
            .collect()
    }

    /// Flags that would do nothing: refused (exit 2) or warned about, by name, before any AWS
    /// call; then every request checked as start-copy checks it.
    fn check(&self, requests: &[Replication]) -> Result<(), ExitCode> {
        let usage = |flag: &str, message: &str| Err(report::usage(flag, message, "replicate"));
        let regions: Vec<&str> = self.destinations.iter().map(|(r, _)| r.as_str()).collect();
        if let Some(zone) = self
            .fsr_zones
            .iter()
            .find(|zone| !regions.iter().any(|r| request::is_zone_of(zone, r)))
        {
            return usage(
                "--fsr-az",
                &format!(
                    "{zone} is not an Availability Zone of any --to Region ({})",
                    regions.join(", ")
                ),
            );
        }
        if self.fsr_disable_after_hours.is_some() && self.fsr_zones.is_empty() {
            return usage("--fsr-disable-after-hours", "does nothing without --fsr-az");
        }
        if self.snapshot.is_some() && self.copy_source_tags {
            report::warn(
                "CopySourceTagsIgnored",
                "--copy-source-tags does nothing for a snapshot: CopySnapshot copies no tags (ferry's lineage tags are written either way)",
            );
        }
        if self.fsr_disable_after_hours.is_some() && self.state_machine.is_none() && !self.dry_run {
            report::warn(
                "FsrNotDisabledHere",
                "--fsr-disable-after-hours only tags the replica (ferry:fsr-disable-at): a deployed ferry's scheduled sweep disables FSR then, this command does not; without a deployed stack, disable it yourself",
            );
        }
        for request in requests {
            if let Err(error) = request::validate(request) {
                return Err(report_error(&request.destination.region, &error));
            }
        }
        Ok(())
    }
}

pub async fn run(global: &Global, config: Config, args: Args) -> ExitCode {
    let output = if args.json {
        Output::Json
    } else {
        global.output
    };
    let requests = args.requests();
    if let Err(code) = args.check(&requests) {
        return code;
    }
    let sdk = match global.aws.connect(&config, Some(&args.source_region)).await {
        Ok(sdk) => sdk,
        Err(unusable) => return unusable.report(),
    };
    if let Some(arn) = &args.state_machine {
        let inputs: Vec<Value> = requests.iter().map(document_json).collect();
        return via_state_machine(&sdk, arn, &inputs, output).await;
    }
    let deps = Arc::new(Deps::from_sdk(&sdk, config));
    if args.dry_run {
        return dry_run(&deps, requests, output).await;
    }
    let mut outcomes = in_process(deps.clone(), requests.clone()).await;
    let mut replaced = HashMap::new();
    if args.replace {
        for (index, request) in requests.into_iter().enumerate() {
            let Err(error) = &outcomes[index].1 else {
                continue;
            };
            let Some(old) = failed_replica(error) else {
                continue;
            };
            let region = request.destination.region.clone();
            match replace(&deps, request, &old, error).await {
                Ok((record, outcome)) => {
                    replaced.insert(region, record);
                    outcomes[index].1 = outcome;
                }
                Err(error) => outcomes[index].1 = Err(error),
            }
        }
    }
    summarize(&outcomes, output, &replaced)
}

/// The replica a verification failure names, when it is one `--replace` may replace.
fn failed_replica(error: &FerryError) -> Option<String> {
    match error {
        FerryError::ReplicaWrongKey { destination_id, .. }
        | FerryError::ReplicaNotEncrypted { destination_id, .. }
        | FerryError::ReplicaAssociatedKey { destination_id, .. }
        | FerryError::ReplicaIncomplete { destination_id, .. } => Some(destination_id.clone()),
        _ => None,
    }
}

/// `--replace`: deletes the failed replica (ferry's own for this replication only), then
/// replicates again with the next attempt. Returns what was replaced and the new outcome.
async fn replace(
    deps: &Arc<Deps>,
    request: Replication,
    old: &str,
    why: &FerryError,
) -> Result<(Value, Result<Replication, FerryError>), FerryError> {
    let region = request.destination.region.clone();
    let Preflight { document, .. } = start_copy::preflight(deps, request.clone()).await?;
    let removed = ferry_core::handlers::remove_copy(deps, &document, old).await?;
    let attempt = request.options.attempt.unwrap_or(1) + 1;
    report::warn(
        "Replaced",
        &format!(
            "{region}: {old} failed verification ({}); {}; copying afresh as attempt {attempt}",
            why.name(),
            if removed.is_empty() {
                "it is not tagged as this replication's, so it was left alone".to_string()
            } else {
                format!("deleted ferry's own {}", removed.join(", "))
            }
        ),
    );
    let mut again = request;
    again.options.attempt = Some(attempt);
    let outcome = in_process(deps.clone(), vec![again])
        .await
        .pop()
        .map_or_else(|| Err(why.clone()), |(_, outcome)| outcome);
    Ok((
        json!({"replica": old, "failed": why.name(), "deleted": removed, "attempt": attempt}),
        outcome,
    ))
}

fn document_json(document: &Replication) -> Value {
    serde_json::to_value(document).unwrap_or_default()
}

/// `--dry-run`: start-copy's preflight per destination, and what it found.
async fn dry_run(deps: &Deps, requests: Vec<Replication>, output: Output) -> ExitCode {
    let mut plans = vec![];
    let mut code = ExitCode::SUCCESS;
    for request in requests {
        let region = request.destination.region.clone();
        match start_copy::preflight(deps, request).await {
            Ok(preflight) => plans.push(plan_json(&preflight, deps.clock.now())),
            Err(error) => {
                code = report_error(&region, &error);
                plans.push(json!({"destination": region, "outcome": "refused", "error": report::error_json(&error)}));
            }
        }
    }
    match output {
        Output::Json => report::print_json(&plans),
        Output::Csv => report::print_csv(
            &plans,
            &[
                ("destination", "/destination"),
                ("outcome", "/outcome"),
                ("replication_id", "/replicationId"),
                ("key_arn", "/keyArn"),
                ("key_alias", "/keyAlias"),
                ("copy", "/copy"),
                ("existing_copy", "/existingCopy/id"),
                ("snapshots", "/snapshots"),
                ("bytes_to_transfer", "/bytesToTransfer"),
                ("time_based_minutes", "/timeBased/minutes"),
                ("price_tier", "/timeBased/priceTier"),
                ("error", "/error/name"),
            ],
        ),
        Output::Table => {
            for plan in plans.iter().filter(|p| p["outcome"] == "plan") {
                println!("{}", plan_text(plan));
            }
        }
    }
    code
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn ago(now: u64, then: u64) -> String {
    let minutes = now.saturating_sub(then) / 60;
    match minutes {
        0 => "under a minute ago".into(),
        1..=119 => format!("{minutes} min ago"),
        _ => format!("{} h ago", minutes / 60),
    }
}

/// One destination's dry run, as `--output json` shows it.
fn plan_json(preflight: &Preflight, now: u64) -> Value {
    let document = &preflight.document;
    let key = document.key.as_ref();
    let known: Vec<u64> = preflight.sizes.iter().filter_map(|(_, b)| *b).collect();
    let bytes = (known.len() == preflight.sizes.len()).then(|| known.iter().sum::<u64>());
    let existing = preflight.existing.as_ref().map(|copy| {
        let started = copy.created_at_ms.map(|ms| (ms / 1000) as u64);
        json!({
            "id": copy.id,
            "startedAt": started.map(rfc3339),
            "started": started.map(|s| ago(now, s)),
        })
    });
    json!({
        "destination": document.destination.region,
        "outcome": "plan",
        "source": format!("{}/{}", document.source.region, document.source_id()),
        "kind": match preflight.kind { SourceKind::Image => "image", SourceKind::Snapshot => "snapshot" },
        "replicationId": document.replication_id,
        "keyArn": key.map(|k| k.arn.clone()),
        "keyAlias": key.and_then(|k| k.alias.clone()),
        "copy": if existing.is_some() { "reuse" } else { "start" },
        "existingCopy": existing,
        "snapshots": preflight.sizes.len(),
        "bytesToTransfer": if existing.is_some() { Some(0) } else { bytes },
        "timeBased": document.options.completion_duration_minutes.map(|m| json!({
            "minutes": m,
            "priceTier": time_based::price_tier(m.max(0) as u64),
        })),
    })
}

fn plan_text(plan: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let copy = if plan["copy"] == "reuse" {
        format!(
            "would reuse copy {} (started {})",
            text(&plan["existingCopy"]["id"]),
            text(&plan["existingCopy"]["started"])
        )
    } else {
        format!(
            "would start a copy: {}",
            plan["bytesToTransfer"].as_u64().map_or(
                "size not reported by EC2".into(),
                |b| format!("{} to transfer", gib(b))
            )
        )
    };
    let mut lines = vec![
        format!(
            "{}: {} ({} snapshot(s)) {copy}",
            text(&plan["destination"]),
            text(&plan["source"]),
            plan["snapshots"]
        ),
        format!(
            "    key {}{}",
            text(&plan["keyArn"]),
            plan["keyAlias"]
                .as_str()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default()
        ),
        format!("    replication {}", text(&plan["replicationId"])),
    ];
    if plan["timeBased"].is_object() {
        lines.push(format!(
            "    time-based copy within {} min, billed at {}",
            plan["timeBased"]["minutes"],
            text(&plan["timeBased"]["priceTier"])
        ));
    }
    lines.join("\n")
}

/// Copies started and not yet settled, for the Ctrl-C message.
static IN_FLIGHT: Mutex<Vec<(String, String)>> = Mutex::new(vec![]);

fn in_flight(region: &str, copy: Option<&str>) {
    let mut copies = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    copies.retain(|(r, _)| r != region);
    if let Some(copy) = copy {
        copies.push((region.to_string(), copy.to_string()));
    }
}

/// What Ctrl-C says: what AWS goes on doing, and how to resume.
fn interrupted() -> String {
    let copies = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    let list: Vec<String> = copies.iter().map(|(r, c)| format!("{c} in {r}")).collect();
    format!(
        "interrupted: {}; rerun the same command to resume: it finds and reuses those copies, then verifies them",
        if list.is_empty() {
            "no copy was in flight".to_string()
        } else {
            format!("AWS keeps copying {}", list.join(", "))
        }
    )
}

/// Progress lines, plus the copies in flight for the Ctrl-C message.
struct Watch(Progress, String);

impl Observe for Watch {
    fn stage(&self, stage: Stage<'_>) {
        if let Stage::Copying(copy) = &stage {
            in_flight(&self.1, Some(&copy.destination_id));
        }
        self.0.stage(stage);
    }
}

/// Lets real time pass: the state machine's Wait states and retry pauses, in a terminal.
struct Sleep;

#[async_trait]
impl Pause for Sleep {
    async fn pause(&self, seconds: f64) {
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    }
}

/// Runs every destination at once, each through the replication flow the state machine runs
/// (`ferry_core::flow`), waiting here between checks and before retries.
pub async fn in_process(
    deps: Arc<Deps>,
    requests: Vec<Replication>,
) -> Vec<(String, Result<Replication, FerryError>)> {
    report::on_interrupt(interrupted);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, request) in requests.into_iter().enumerate() {
        let deps = deps.clone();
        tasks.spawn(async move {
            let label = request.destination.region.clone();
            let watch = Watch(Progress::new(&label), label.clone());
            let flow = Flow {
                deps: &deps,
                pause: &Sleep,
                observe: &watch,
            };
            let outcome = flow.replicate(request).await;
            in_flight(&label, None);
            watch.0.finish(match &outcome {
                Ok(_) => "verified",
                Err(error) => error.name(),
            });
            (index, label, outcome)
        });
    }
    let mut outcomes: Vec<(usize, String, Result<Replication, FerryError>)> =
        tasks.join_all().await;
    outcomes.sort_by_key(|(index, _, _)| *index);
    outcomes
        .into_iter()
        .map(|(_, label, outcome)| (label, outcome))
        .collect()
}

/// What was proved, per destination: `--output table` on stdout, failures on stderr with
/// their hint; `json` and `csv` put every destination on stdout, failed ones with the error's
/// name, message and hint (still also on stderr).
pub fn summarize(
    outcomes: &[(String, Result<Replication, FerryError>)],
    output: Output,
    replaced: &HashMap<String, Value>,
) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    let mut results = vec![];
    for (region, outcome) in outcomes {
        match outcome {
            Ok(document) => {
                if let Some(how) = document.copy.as_ref().and_then(|c| c.made_with.as_deref()) {
                    report::warn("CopyOptionsIgnored", &format!("{region}: the replica was already made: {how}; it is reused as it is (--replace after deleting it, or another --to, for a new copy)"));
                }
                let proof = proof(&document_json(document));
                match output {
                    Output::Table => println!("{proof}"),
                    // stdout carries the JSON or CSV; people still read what was proved.
                    _ if report::is_quiet() => {}
                    _ => eprintln!("{proof}"),
                }
                let mut result = result_json(region, document);
                if let Some(record) = replaced.get(region) {
                    result["replaced"] = record.clone();
                }
                results.push(result);
            }
            Err(error) => {
                code = report_error(region, error);
                results.push(json!({"destination": region, "outcome": "failed", "error": report::error_json(error)}));
            }
        }
    }
    match output {
        Output::Table => {}
        Output::Json => report::print_json(&results),
        Output::Csv => report::print_csv(
            &results,
            &[
                ("destination", "/destination"),
                ("outcome", "/outcome"),
                ("replication_id", "/replicationId"),
                ("replica_id", "/replicaId"),
                ("reused", "/reused"),
                ("key_arn", "/keyArn"),
                ("verified_at", "/verifiedAt"),
                ("error", "/error/name"),
                ("message", "/error/message"),
            ],
        ),
    }
    code
}

/// One verified destination as `--output json` shows it: the headline facts, then the whole
/// replication document (`document`), its evidence included.
fn result_json(region: &str, document: &Replication) -> Value {
    let verification = document.evidence.verification.as_ref();
    json!({
        "destination": region,
        "outcome": "verified",
        "replicationId": document.replication_id,
        "replicaId": document.copy.as_ref().map(|c| c.destination_id.clone()),
        "reused": document.copy.as_ref().is_some_and(|c| c.reused),
        "keyArn": verification.map(|v| v.key_arn.clone()),
        "verifiedAt": verification.map(|v| rfc3339(v.verified_at)),
        "document": document_json(document),
    })
}

/// The summary of one verified replication.
pub fn proof(document: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let verification = &document["evidence"]["verification"];
    let mut lines = vec![format!(
        "✔ {}: {} → {} verified at {} under {}{}",
        text(&document["destination"]["region"]),
        text(&document["source"]["imageId"]) + &text(&document["source"]["snapshotId"]),
        text(&document["copy"]["destinationId"]),
        rfc3339(verification["verifiedAt"].as_u64().unwrap_or(0)),
        text(&verification["keyArn"]),
        document["key"]["alias"]
            .as_str()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default()
    )];
    for snapshot in verification["snapshots"].as_array().into_iter().flatten() {
        lines.push(format!(
            "    {} encrypted={} key={}  ← {} (source key {})",
            text(&snapshot["snapshotId"]),
            snapshot["encrypted"],
            text(&snapshot["kmsKeyArn"]),
            text(&snapshot["sourceSnapshotId"]),
            snapshot["sourceKmsKeyArn"].as_str().unwrap_or("none")
        ));
    }
    let aws = &verification["awsLineage"];
    if aws.is_object() {
        lines.push(format!(
            "    AWS records it as a copy of {}/{} (DescribeImages SourceImageRegion/SourceImageId)",
            text(&aws["sourceImageRegion"]),
            text(&aws["sourceImageId"])
        ));
    }
    let copy = &document["copy"];
    let started = copy["startedAt"].as_u64().unwrap_or(0);
    lines.push(if copy["reused"] == true {
        format!(
            "    reused copy {} (started {}, {}){}",
            text(&copy["destinationId"]),
            ago(now(), started),
            rfc3339(started),
            copy["madeWith"]
                .as_str()
                .map(|how| format!("; {how}, which a finished copy keeps"))
                .unwrap_or_default()
        )
    } else {
        format!(
            "    started copy {} at {}",
            text(&copy["destinationId"]),
            rfc3339(started)
        )
    });
    let lineage = &document["evidence"]["lineage"];
    lines.push(format!(
        "    lineage: {} tags on {} resources (replication {}); evidence published: {}",
        lineage["tags"].as_object().map(|t| t.len()).unwrap_or(0),
        lineage["taggedResources"]
            .as_array()
            .map(|r| r.len())
            .unwrap_or(0),
        text(&document["replicationId"]),
        lineage["eventPublished"]
    ));
    let fsr = &document["evidence"]["fsr"];
    let states: Vec<String> = fsr["states"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            format!(
                "{} {} {}",
                text(&s["snapshotId"]),
                text(&s["availabilityZone"]),
                text(&s["state"])
            )
        })
        .collect();
    lines.push(format!(
        "    fast snapshot restore: {}{}",
        text(&fsr["outcome"]),
        if states.is_empty() {
            String::new()
        } else {
            format!(" ({})", states.join(", "))
        }
    ));
    lines.join("\n")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Execution names are derived from the request: the same request starts (or finds) the same execution.
pub fn execution_name(request: &Value) -> String {
    let digest = Sha256::digest(request.to_string().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("ferry-{hex}")
}

async fn via_state_machine(
    sdk: &aws_config::SdkConfig,
    arn: &str,
    requests: &[Value],
    output: Output,
) -> ExitCode {
    let region = arn.split(':').nth(3).unwrap_or_default().to_string();
    let client = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(sdk)
            .region(aws_config::Region::new(region))
            .build(),
    );
    let mut code = ExitCode::SUCCESS;
    let mut results = vec![];
    for request in requests {
        let label = request["destination"]["region"].as_str().unwrap_or("?");
        let progress = Progress::new(label);
        let name = execution_name(request);
        let started = client
            .start_execution()
            .state_machine_arn(arn)
            .name(&name)
            .input(request.to_string())
            .send()
            .await;
        let execution_arn = match started {
            Ok(output) => output.execution_arn().to_string(),
            // The same request ran before and has finished (names are unique for 90 days): report it.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_execution_already_exists()) =>
            {
                format!(
                    "{}:{name}",
                    arn.replacen(":stateMachine:", ":execution:", 1)
                )
            }
            Err(error) => {
                progress.finish("could not start");
                return report::sdk_failure("StartExecution", &error);
            }
        };
        progress.update(&format!("execution {execution_arn}"));
        loop {
            let described = match client
                .describe_execution()
                .execution_arn(&execution_arn)
                .send()
                .await
            {
                Ok(described) => described,
                Err(error) => return report::sdk_failure("DescribeExecution", &error),
            };
            match described.status() {
                ExecutionStatus::Running => {
                    progress.update(&format!(
                        "running: {}",
                        crate::status::current_state(&client, &execution_arn).await
                    ));
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                ExecutionStatus::Succeeded => {
                    progress.finish("succeeded");
                    let result: Value = described
                        .output()
                        .and_then(|o| serde_json::from_str(o).ok())
                        .unwrap_or(Value::Null);
                    if output == Output::Table {
                        println!("✔ {label}: {execution_arn} succeeded: {result}");
                    }
                    results.push(json!({"destination": label, "outcome": "succeeded", "executionArn": execution_arn, "document": result}));
                    break;
                }
                other => {
                    progress.finish(other.as_str());
                    let error = described.error().unwrap_or("ExecutionFailed");
                    let cause = described.cause().unwrap_or("no cause given");
                    code = report::failure(
                        error,
                        &format!("{label}: {cause}"),
                        &format!("`ferry status {execution_arn}` shows where it stopped"),
                        report::FAILED,
                    );
                    results.push(json!({"destination": label, "outcome": other.as_str().to_lowercase(), "executionArn": execution_arn, "error": {"name": error, "message": cause}}));
                    break;
                }
            }
        }
    }
    match output {
        Output::Table => {}
        Output::Json => report::print_json(&results),
        Output::Csv => report::print_csv(
            &results,
            &[
                ("destination", "/destination"),
                ("outcome", "/outcome"),
                ("execution_arn", "/executionArn"),
                ("error", "/error/name"),
                ("message", "/error/message"),
            ],
        ),
    }
    code
}
