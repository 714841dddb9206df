//! `ferry replicate`: in-process by default (the Lambdas' own logic, waiting here instead of in
//! a state machine), or through a deployed state machine with `--state-machine ARN`; with
//! `--dry-run`, start-copy's preflight only.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sfn::types::ExecutionStatus;
use ferry_core::document::{
    BootCheckRequest, Destination, FsrOptions, LaunchTemplateRef, Options, RetentionRequest,
    Source, SourceKind,
};
use ferry_core::flow::{Flow, Observe, Pause, Stage};
use ferry_core::handlers::start_copy::{self, Preflight};
use ferry_core::rules::lineage::rfc3339;
use ferry_core::rules::{boot_check, request, time_based};
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
  ferry replicate --source-region us-east-1 --image ami-0123456789abcdef0 --to us-west-2=alias/dr \\
      --boot-check us-west-2=subnet-0123456789abcdef0 \\
      --launch-template us-west-2=web:default --ssm-parameter us-west-2=/golden/web/ami
  ferry replicate --source-region us-east-1 --image ami-0123456789abcdef0 --to us-west-2=alias/dr \\
      --retention-keep 3 --retention-group-by app --retention-max-age-days 90
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
    /// Once the replica is verified (and boot-checked), add a version to this launch template
    /// of a destination Region, REGION=NAME: the replica as its image, every EBS mapping under
    /// the destination key. REGION=NAME:default also makes it the default version. The template
    /// must exist (ferry only adds versions). AMIs only; repeatable, at most 10 per Region.
    #[arg(long = "launch-template", value_name = "REGION=NAME[:default]", value_parser = parse_launch_template)]
    launch_templates: Vec<(String, LaunchTemplateRef)>,
    /// Once the replica is verified (and boot-checked), set this SSM parameter of a destination
    /// Region to its id (DataType aws:ec2:image), REGION=NAME, e.g. us-west-2=/golden/web/ami:
    /// letters, digits and _ . - /, a path starting with /, no aws or ssm prefix. AMIs only; at
    /// most one per Region.
    #[arg(long = "ssm-parameter", value_name = "REGION=NAME", value_parser = parse_ssm_parameter)]
    ssm_parameters: Vec<(String, String)>,
    /// After verification and before any wiring, boot one instance from the replica in this
    /// subnet of a destination Region, REGION=SUBNET (subnet- and 8 or 17 hex digits), with no
    /// public IP: it passes when the instance is running, both status checks are ok and every
    /// volume is under the destination key; the instance is terminated either way. AMIs only;
    /// at most one per Region.
    #[arg(long = "boot-check", value_name = "REGION=SUBNET", value_parser = parse_boot_check)]
    boot_checks: Vec<(String, String)>,
    /// The boot-check instance's type, e.g. t3.micro (the default) or m7i.large. Needs
    /// --boot-check.
    #[arg(long, value_name = "TYPE")]
    boot_check_instance_type: Option<String>,
    /// A security group for a Region's boot-check instance, REGION=SG (sg- and 8 or 17 hex
    /// digits, of the subnet's VPC); without one, the VPC's default group. Repeatable, at most 5
    /// per Region; needs --boot-check for that Region.
    #[arg(long = "boot-check-security-group", value_name = "REGION=SG", value_parser = parse_security_group)]
    boot_check_security_groups: Vec<(String, String)>,
    /// How long the boot-check instance may take to pass its status checks: 5 to 120 minutes
    /// (default 15). Needs --boot-check.
    #[arg(long, value_name = "MINUTES")]
    boot_check_timeout_minutes: Option<u32>,
    /// Retention for every --to Region: the newest N verified replicas of each image family
    /// (sources sharing the --retention-group-by tag's value) are kept; at least 1. The replica
    /// is tagged with its group (ferry:group); `ferry prune` or a deployed ferry's scheduled
    /// sweep retires the rest, this command does not. AMIs only; needs --retention-group-by.
    #[arg(long, value_name = "N")]
    retention_keep: Option<u32>,
    /// The source tag whose value names the image family, e.g. app (1 to 128 characters, no
    /// aws: prefix). Needs --retention-keep.
    #[arg(long, value_name = "KEY")]
    retention_group_by: Option<String>,
    /// Also retire replicas verified more than this many days ago (at least 1; never the
    /// newest). Needs --retention-keep and --retention-group-by.
    #[arg(long, value_name = "DAYS")]
    retention_max_age_days: Option<u32>,
    /// Days between deprecating a replica and deregistering it: 0 to 365 (default 7). Needs
    /// --retention-keep and --retention-group-by.
    #[arg(long, value_name = "DAYS")]
    retention_grace_days: Option<u32>,
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

/// The boot-check instance type when `--boot-check-instance-type` is not given.
const BOOT_CHECK_INSTANCE_TYPE: &str = "t3.micro";

/// A `REGION=VALUE` flag's value: a real Region and something after `=`; else a usage error
/// showing `form` and `example`.
fn region_and(value: &str, form: &str, example: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((region, rest)) if !region.is_empty() && !rest.is_empty() => {
            Ok((report::region(region)?, rest.to_string()))
        }
        _ => Err(format!("{value:?}: give {form}, e.g. {example}")),
    }
}

fn parse_destination(value: &str) -> Result<(String, String), String> {
    region_and(value, "REGION=KEY", "us-west-2=alias/prod-ebs-usw2")
}

fn parse_launch_template(value: &str) -> Result<(String, LaunchTemplateRef), String> {
    let form = "REGION=NAME or REGION=NAME:default";
    let (region, name) = region_and(value, form, "us-west-2=web:default")?;
    // A template name has no `:` (letters, digits and ( ) . - / _), so the suffix is unambiguous.
    let (name, set_default) = match name.split_once(':') {
        None => (name, false),
        Some((name, "default")) if !name.is_empty() => (name.to_string(), true),
        Some(_) => {
            return Err(format!(
                "{value:?}: give {form}, e.g. us-west-2=web:default"
            ))
        }
    };
    Ok((region, LaunchTemplateRef { name, set_default }))
}

fn parse_ssm_parameter(value: &str) -> Result<(String, String), String> {
    region_and(value, "REGION=NAME", "us-west-2=/golden/web/ami")
}

fn parse_boot_check(value: &str) -> Result<(String, String), String> {
    region_and(value, "REGION=SUBNET", "us-west-2=subnet-0123456789abcdef0")
}

fn parse_security_group(value: &str) -> Result<(String, String), String> {
    region_and(value, "REGION=SG", "us-west-2=sg-0123456789abcdef0")
}

/// The Regions a `REGION=VALUE` flag names, in their order.
fn regions_of<T>(pairs: &[(String, T)]) -> Vec<&str> {
    pairs.iter().map(|(region, _)| region.as_str()).collect()
}

/// The values a `REGION=VALUE` flag gives `region`, in their order.
fn in_region<'a, T>(pairs: &'a [(String, T)], region: &'a str) -> impl Iterator<Item = &'a T> {
    pairs
        .iter()
        .filter(move |(r, _)| r == region)
        .map(|(_, value)| value)
}

/// The flag a document field comes from, for messages that name what the operator typed.
const FLAGS: [(&str, &str); 23] = [
    ("source.region", "--source-region"),
    ("source.imageId", "--image"),
    ("source.snapshotId", "--snapshot"),
    ("destination.region", "--to REGION"),
    ("destination.kmsKeyId", "--to REGION=KEY"),
    ("destination.launchTemplates", "--launch-template"),
    ("destination.ssmParameter", "--ssm-parameter"),
    ("destination.bootCheck", "--boot-check"),
    (
        "destination.bootCheck.subnetId",
        "--boot-check REGION=SUBNET",
    ),
    (
        "destination.bootCheck.instanceType",
        "--boot-check-instance-type",
    ),
    (
        "destination.bootCheck.securityGroupIds",
        "--boot-check-security-group",
    ),
    (
        "destination.bootCheck.timeoutMinutes",
        "--boot-check-timeout-minutes",
    ),
    (
        "destination.retention",
        "--retention-keep/--retention-group-by",
    ),
    ("destination.retention.keep", "--retention-keep"),
    ("destination.retention.groupBy", "--retention-group-by"),
    (
        "destination.retention.maxAgeDays",
        "--retention-max-age-days",
    ),
    ("destination.retention.graceDays", "--retention-grace-days"),
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
    /// The retention every destination asks for, when --retention-keep and
    /// --retention-group-by are both given.
    fn retention(&self) -> Option<RetentionRequest> {
        Some(RetentionRequest {
            keep: self.retention_keep?,
            group_by: self.retention_group_by.clone()?,
            max_age_days: self.retention_max_age_days,
            grace_days: self.retention_grace_days,
        })
    }

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
                        launch_templates: in_region(&self.launch_templates, region)
                            .cloned()
                            .collect(),
                        ssm_parameter: in_region(&self.ssm_parameters, region).next().cloned(),
                        boot_check: in_region(&self.boot_checks, region).next().map(|subnet| {
                            BootCheckRequest {
                                subnet_id: subnet.clone(),
                                instance_type: self
                                    .boot_check_instance_type
                                    .clone()
                                    .unwrap_or_else(|| BOOT_CHECK_INSTANCE_TYPE.into()),
                                security_group_ids: in_region(
                                    &self.boot_check_security_groups,
                                    region,
                                )
                                .cloned()
                                .collect(),
                                timeout_minutes: self.boot_check_timeout_minutes,
                            }
                        }),
                        retention: self.retention(),
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
        let regions = regions_of(&self.destinations);
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
        let templates = regions_of(&self.launch_templates);
        let parameters = regions_of(&self.ssm_parameters);
        let checks = regions_of(&self.boot_checks);
        let groups = regions_of(&self.boot_check_security_groups);
        for (flag, named) in [
            ("--launch-template", &templates),
            ("--ssm-parameter", &parameters),
            ("--boot-check", &checks),
            ("--boot-check-security-group", &groups),
        ] {
            if let Some(region) = named.iter().find(|r| !regions.contains(r)) {
                return usage(
                    flag,
                    &format!("{region} is not a --to Region ({})", regions.join(", ")),
                );
            }
        }
        for (flag, named) in [("--ssm-parameter", &parameters), ("--boot-check", &checks)] {
            if let Some(region) = named
                .iter()
                .enumerate()
                .find_map(|(i, r)| named[..i].contains(r).then_some(r))
            {
                return usage(
                    flag,
                    &format!("{region} is named twice: at most one per Region"),
                );
            }
        }
        if let Some(region) = groups.iter().find(|r| !checks.contains(r)) {
            return usage(
                "--boot-check-security-group",
                &format!("does nothing without --boot-check {region}=SUBNET"),
            );
        }
        for (flag, given) in [
            (
                "--boot-check-instance-type",
                self.boot_check_instance_type.is_some(),
            ),
            (
                "--boot-check-timeout-minutes",
                self.boot_check_timeout_minutes.is_some(),
            ),
        ] {
            if given && checks.is_empty() {
                return usage(flag, "does nothing without --boot-check");
            }
        }
        match (self.retention_keep, &self.retention_group_by) {
            (Some(_), None) => {
                return usage(
                    "--retention-group-by",
                    "--retention-keep needs it: the source tag that names the image family",
                )
            }
            (None, Some(_)) => {
                return usage(
                    "--retention-keep",
                    "--retention-group-by needs it: how many replicas of each family to keep",
                )
            }
            (None, None) => {
                for (flag, given) in [
                    (
                        "--retention-max-age-days",
                        self.retention_max_age_days.is_some(),
                    ),
                    (
                        "--retention-grace-days",
                        self.retention_grace_days.is_some(),
                    ),
                ] {
                    if given {
                        return usage(
                            flag,
                            "does nothing without --retention-keep and --retention-group-by",
                        );
                    }
                }
            }
            (Some(_), Some(_)) => {}
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
        if let Some(retention) = self.retention().filter(|_| !self.dry_run) {
            report::warn(
                "RetentionNotAppliedHere",
                &format!(
                    "--retention-* tags each replica with its group (ferry:group) and retires nothing: `ferry prune --region REGION --keep {} --group-by {}` shows and (--apply) retires what is beyond it, as a deployed ferry's scheduled sweep does with its policy's retention",
                    retention.keep, retention.group_by
                ),
            );
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
                ("boot_check_subnet", "/bootCheck/subnetId"),
                ("ssm_parameter", "/wiring/ssmParameter"),
                ("group", "/group"),
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
    let destination = &document.destination;
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
        "bootCheck": destination.boot_check.as_ref().map(|check| json!({
            "subnetId": check.subnet_id,
            "instanceType": check.instance_type,
            "securityGroupIds": check.security_group_ids,
            "timeoutMinutes": boot_check::timeout_minutes(check),
        })),
        "wiring": destination.wants_wiring().then(|| json!({
            "launchTemplates": destination.launch_templates,
            "ssmParameter": destination.ssm_parameter,
        })),
        "retention": destination.retention,
        "group": document.group,
    })
}

/// What `--retention-*` means for one replica: its group, or why it has none.
fn retention_text(retention: &Value, group: &Value) -> Option<String> {
    let group_by = retention["groupBy"].as_str()?;
    let keep = &retention["keep"];
    let age = retention["maxAgeDays"]
        .as_u64()
        .map(|d| format!(", and those verified more than {d} days ago,"))
        .unwrap_or_default();
    let grace = retention["graceDays"].as_u64().unwrap_or(7);
    Some(match group.as_str() {
        Some(group) => format!(
            "retention group {group} (ferry:group): replicas beyond the newest {keep}{age} are retired by `ferry prune` or a deployed ferry's sweep, deregistered {grace} day(s) after deprecation"
        ),
        None => format!(
            "retention: the source has no {group_by} tag, so the replica has no group and is never retired"
        ),
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
    let check = &plan["bootCheck"];
    if check.is_object() {
        let groups: Vec<String> = items(&check["securityGroupIds"]).map(text).collect();
        lines.push(format!(
            "    would boot-check one {} in {} ({}, no public IP): running, status checks ok and every volume under the key within {} min, then terminated",
            text(&check["instanceType"]),
            text(&check["subnetId"]),
            if groups.is_empty() {
                "the VPC's default security group".to_string()
            } else {
                format!("security groups {}", groups.join(", "))
            },
            check["timeoutMinutes"]
        ));
    }
    let wiring = &plan["wiring"];
    if wiring.is_object() {
        let templates = items(&wiring["launchTemplates"]).map(|t| {
            let default = if t["setDefault"] == true {
                " (default)"
            } else {
                ""
            };
            (text(&t["name"]), format!("a new version{default}"))
        });
        let parameter = wiring["ssmParameter"]
            .as_str()
            .map(|name| (name.to_string(), "the replica".to_string()));
        lines.push(format!("    would wire {}", wired(templates, parameter)));
    }
    if let Some(retention) = retention_text(&plan["retention"], &plan["group"]) {
        lines.push(format!("    {retention}"));
    }
    lines.join("\n")
}

/// A JSON list's items (none when it is not a list).
fn items(list: &Value) -> impl Iterator<Item = &Value> {
    list.as_array().into_iter().flatten()
}

/// What wiring points (or would point) at the replica, from (name, what) pairs:
/// `launch template NAME → WHAT, …, parameter NAME → WHAT`.
fn wired(
    templates: impl Iterator<Item = (String, String)>,
    parameter: Option<(String, String)>,
) -> String {
    templates
        .map(|(name, what)| format!("launch template {name} → {what}"))
        .chain(parameter.map(|(name, what)| format!("parameter {name} → {what}")))
        .collect::<Vec<_>>()
        .join(", ")
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
                ("boot_check", "/document/evidence/bootCheck/status"),
                ("group", "/document/group"),
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
    let check = &document["evidence"]["bootCheck"];
    if check.is_object() {
        let volumes: Vec<String> = items(&check["volumes"])
            .map(|v| format!("{} {}", text(&v["volumeId"]), text(&v["deviceName"])))
            .collect();
        let keys = report::each_once(
            items(&check["volumes"])
                .map(|v| text(&v["kmsKeyId"]))
                .collect(),
        );
        lines.push(format!(
            "    boot check {}: {} ({} in {}) running in {} s, status checks ok in {} s; {} volume(s) under {} ({}){}",
            text(&check["status"]),
            text(&check["instanceId"]),
            text(&check["instanceType"]),
            text(&check["subnetId"]),
            check["secondsToRunning"],
            check["secondsToStatusOk"],
            volumes.len(),
            keys.join(" and "),
            volumes.join(", "),
            if check["terminatedAt"].is_u64() { "; terminated" } else { "" }
        ));
    }
    let wiring = &document["evidence"]["wiring"];
    if wiring.is_object() {
        let noted = |version: &Value, notes: &[(bool, &str)]| {
            let notes: Vec<&str> = notes
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, n)| *n)
                .collect();
            if notes.is_empty() {
                format!("version {version}")
            } else {
                format!("version {version} ({})", notes.join(", "))
            }
        };
        let templates = items(&wiring["launchTemplates"]).map(|t| {
            let notes = [
                (t["isDefault"] == true, "default"),
                (t["created"] == false, "already made"),
            ];
            (text(&t["name"]), noted(&t["version"], &notes))
        });
        let parameter = &wiring["ssmParameter"];
        let parameter = parameter.is_object().then(|| {
            let notes = [(parameter["written"] == false, "already held the replica")];
            (
                text(&parameter["name"]),
                noted(&parameter["version"], &notes),
            )
        });
        lines.push(format!("    wired: {}", wired(templates, parameter)));
    }
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
    if let Some(retention) =
        retention_text(&document["destination"]["retention"], &document["group"])
    {
        lines.push(format!("    {retention}"));
    }
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

#[cfg(test)]
mod tests {
    use clap::Parser;
    use ferry_core::document::{BootCheckRequest, LaunchTemplateRef};
    use serde_json::json;

    use super::{flag_for, parse_launch_template, plan_text, proof, Args};

    #[derive(Parser)]
    struct Replicate {
        #[command(flatten)]
        args: Args,
    }

    /// `ferry replicate` of an AMI to us-west-2 and eu-west-1, with `extra` flags.
    fn args(extra: &[&str]) -> Args {
        let mut argv = vec![
            "replicate",
            "--source-region",
            "us-east-1",
            "--image",
            "ami-0123456789abcdef0",
            "--to",
            "us-west-2=alias/a",
            "--to",
            "eu-west-1=alias/b",
        ];
        argv.extend(extra);
        Replicate::try_parse_from(argv).expect("flags parse").args
    }

    #[test]
    fn each_destination_gets_only_the_templates_parameter_and_boot_check_named_for_its_region() {
        let requests = args(&[
            "--launch-template",
            "us-west-2=web:default",
            "--launch-template",
            "us-west-2=batch",
            "--ssm-parameter",
            "eu-west-1=/golden/web/ami",
            "--boot-check",
            "us-west-2=subnet-0123456789abcdef0",
            "--boot-check-security-group",
            "us-west-2=sg-0123456789abcdef0",
            "--boot-check-timeout-minutes",
            "30",
        ])
        .requests();
        let (west, ireland) = (&requests[0].destination, &requests[1].destination);
        assert_eq!(
            west.launch_templates,
            [
                LaunchTemplateRef {
                    name: "web".into(),
                    set_default: true
                },
                LaunchTemplateRef {
                    name: "batch".into(),
                    set_default: false
                }
            ]
        );
        assert_eq!(west.ssm_parameter, None);
        assert_eq!(
            west.boot_check,
            Some(BootCheckRequest {
                subnet_id: "subnet-0123456789abcdef0".into(),
                instance_type: "t3.micro".into(),
                security_group_ids: vec!["sg-0123456789abcdef0".into()],
                timeout_minutes: Some(30),
            })
        );
        assert!(ireland.launch_templates.is_empty() && ireland.boot_check.is_none());
        assert_eq!(ireland.ssm_parameter.as_deref(), Some("/golden/web/ami"));
    }

    #[test]
    fn a_launch_template_takes_default_as_its_only_suffix() {
        let (region, template) = parse_launch_template("eu-west-1=web").unwrap();
        assert_eq!(
            (region.as_str(), template.set_default),
            ("eu-west-1", false)
        );
        for wrong in ["us-west-2=web:latest", "us-west-2=:default", "web:default"] {
            let error = parse_launch_template(wrong).unwrap_err();
            assert!(error.contains("REGION=NAME:default"), "{wrong}: {error}");
        }
    }

    #[test]
    fn wiring_and_boot_check_flags_that_cannot_work_or_would_do_nothing_are_refused() {
        let subnet = "us-west-2=subnet-0123456789abcdef0";
        for extra in [
            &["--launch-template", "ap-south-1=web"][..],
            &["--ssm-parameter", "ap-south-1=/golden/web/ami"],
            &["--boot-check", "ap-south-1=subnet-0123456789abcdef0"],
            &[
                "--ssm-parameter",
                "us-west-2=/a",
                "--ssm-parameter",
                "us-west-2=/b",
            ],
            &["--boot-check", subnet, "--boot-check", subnet],
            &[
                "--boot-check-security-group",
                "us-west-2=sg-0123456789abcdef0",
            ],
            &[
                "--boot-check",
                subnet,
                "--boot-check-security-group",
                "eu-west-1=sg-0123456789abcdef0",
            ],
            &["--boot-check-instance-type", "t3.small"],
            &["--boot-check-timeout-minutes", "30"],
            &["--boot-check", subnet, "--boot-check-timeout-minutes", "4"],
            &["--boot-check", "us-west-2=subnet-nope"],
        ] {
            let args = args(extra);
            assert!(args.check(&args.requests()).is_err(), "{extra:?}");
        }
        let args = args(&[
            "--boot-check",
            subnet,
            "--boot-check-instance-type",
            "m7i.large",
            "--boot-check-timeout-minutes",
            "120",
            "--launch-template",
            "eu-west-1=web",
        ]);
        assert!(args.check(&args.requests()).is_ok());
    }

    #[test]
    fn retention_goes_to_every_destination_and_half_of_it_is_refused() {
        let whole = args(&[
            "--retention-keep",
            "3",
            "--retention-group-by",
            "app",
            "--retention-grace-days",
            "0",
        ]);
        let requests = whole.requests();
        assert!(whole.check(&requests).is_ok());
        for request in &requests {
            let retention = request.destination.retention.as_ref().unwrap();
            assert_eq!(
                (
                    retention.keep,
                    retention.group_by.as_str(),
                    retention.grace_days
                ),
                (3, "app", Some(0))
            );
        }
        assert!(args(&[]).requests()[0].destination.retention.is_none());
        for extra in [
            &["--retention-keep", "3"][..],
            &["--retention-group-by", "app"],
            &["--retention-max-age-days", "30"],
            &["--retention-grace-days", "1"],
            &["--retention-keep", "0", "--retention-group-by", "app"],
            &["--retention-keep", "1", "--retention-group-by", "aws:app"],
            &[
                "--retention-keep",
                "1",
                "--retention-group-by",
                "app",
                "--retention-grace-days",
                "400",
            ],
        ] {
            let args = args(extra);
            assert!(args.check(&args.requests()).is_err(), "{extra:?}");
        }
    }

    #[test]
    fn the_plan_names_the_replicas_retention_group_or_why_it_has_none() {
        let plan = |group: serde_json::Value| {
            plan_text(&json!({
                "destination": "us-west-2",
                "retention": {"keep": 3, "groupBy": "app", "maxAgeDays": 90},
                "group": group,
            }))
        };
        assert!(
            plan(json!("app=web")).ends_with("    retention group app=web (ferry:group): replicas beyond the newest 3, and those verified more than 90 days ago, are retired by `ferry prune` or a deployed ferry's sweep, deregistered 7 day(s) after deprecation"),
            "{}",
            plan(json!("app=web"))
        );
        assert!(
            plan(json!(null)).ends_with("    retention: the source has no app tag, so the replica has no group and is never retired"),
            "{}",
            plan(json!(null))
        );
        assert!(!plan_text(&json!({"destination": "us-west-2"})).contains("retention"));
    }

    #[test]
    fn every_document_field_names_a_flag_replicate_really_has() {
        use clap::Args as _;
        let command = Args::augment_args(clap::Command::new("replicate"));
        let longs: Vec<String> = command
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        for (field, flag) in super::FLAGS {
            let named: Vec<&str> = flag
                .split([' ', '/', '='])
                .filter(|t| t.starts_with("--"))
                .collect();
            assert!(!named.is_empty(), "{field}: {flag}");
            for token in named {
                assert!(
                    longs.iter().any(|l| l == token),
                    "{field}: {token} is not a flag"
                );
            }
        }
        assert_eq!(
            flag_for("destination.bootCheck.timeoutMinutes"),
            "--boot-check-timeout-minutes"
        );
        assert_eq!(
            flag_for("destination.retention.unknown"),
            "--retention-keep/--retention-group-by"
        );
    }

    #[test]
    fn the_proof_and_the_plan_say_what_was_boot_checked_and_wired() {
        let key = "arn:aws:kms:us-west-2:111122223333:key/k";
        let document = json!({
            "destination": {"region": "us-west-2"},
            "evidence": {
                "bootCheck": {"status": "passed", "instanceId": "i-0123456789abcdef0",
                              "instanceType": "t3.micro", "subnetId": "subnet-0123456789abcdef0",
                              "secondsToRunning": 12, "secondsToStatusOk": 95, "terminatedAt": 1,
                              "volumes": [{"volumeId": "vol-1", "deviceName": "/dev/xvda", "kmsKeyId": key},
                                          {"volumeId": "vol-2", "deviceName": "/dev/xvdb", "kmsKeyId": key}]},
                "wiring": {"launchTemplates": [{"name": "web", "version": 7, "isDefault": true, "created": true},
                                               {"name": "batch", "version": 3, "isDefault": false, "created": false}],
                           "ssmParameter": {"name": "/golden/web/ami", "version": 4, "written": true}}
            }
        });
        let proof = proof(&document);
        assert!(
            proof.contains(&format!("    boot check passed: i-0123456789abcdef0 (t3.micro in subnet-0123456789abcdef0) running in 12 s, status checks ok in 95 s; 2 volume(s) under {key} (vol-1 /dev/xvda, vol-2 /dev/xvdb); terminated\n")),
            "{proof}"
        );
        assert!(
            proof.contains("    wired: launch template web → version 7 (default), launch template batch → version 3 (already made), parameter /golden/web/ami → version 4\n"),
            "{proof}"
        );

        let plan = plan_text(&json!({
            "destination": "us-west-2",
            "bootCheck": {"subnetId": "subnet-0123456789abcdef0", "instanceType": "m7i.large",
                          "securityGroupIds": ["sg-1", "sg-2"], "timeoutMinutes": 30},
            "wiring": {"launchTemplates": [], "ssmParameter": "/golden/web/ami"}
        }));
        assert!(
            plan.contains("    would boot-check one m7i.large in subnet-0123456789abcdef0 (security groups sg-1, sg-2, no public IP): running, status checks ok and every volume under the key within 30 min, then terminated"),
            "{plan}"
        );
        assert!(
            plan.ends_with("    would wire parameter /golden/web/ami → the replica"),
            "{plan}"
        );
    }
}
