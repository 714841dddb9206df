//! `ferry prune`: what retention retires, and why, exactly as the scheduled step decides it
//! (`ferry_core::handlers::retire::assess`); `--apply` carries out those very verdicts
//! (`retire::apply`): deprecate and tag `ferry:retire-after`, and after the grace period
//! deregister with the snapshots. The default is a dry run, which changes nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferry_core::document::RetentionRequest;
use ferry_core::handlers::retire::{apply, assess, Applied};
use ferry_core::policy::Policy;
use ferry_core::rules::retention::{check_retention, Action, RetentionTarget, Verdict};
use ferry_core::rules::wiring::check_parameter_name;
use ferry_core::{Config, Deps};
use serde_json::{json, Value};

use crate::report::{self, Output};
use crate::Global;

pub const EXAMPLES: &str = "Examples:
  ferry prune --policy policy.json
  ferry prune --region us-west-2 --keep 3 --group-by app --max-age-days 90 --ssm-parameter /golden/web/ami
  ferry prune --policy policy.json --apply
  ferry prune --region us-west-2 --keep 1 --group-by app --grace-days 0 --apply --output json

The Region to prune without --policy is the global --region (or AWS_REGION). Without --apply
nothing is changed.";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A policy document as the stack deploys it (its ReplicationPolicy parameter, e.g.
    /// infra/policy.example.json): every destination with `retention`, with its `ssmParameter`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["keep", "group_by", "max_age_days", "grace_days", "ssm_parameter"])]
    policy: Option<PathBuf>,
    /// Without --policy: keep the newest N verified replicas of each group in --region (at
    /// least 1; the newest is never retired). Needs --group-by.
    #[arg(long, value_name = "N")]
    keep: Option<u32>,
    /// The source tag whose value names the image family (the replicas' ferry:group), e.g. app:
    /// 1 to 128 characters, no aws: prefix. Needs --keep.
    #[arg(long, value_name = "KEY")]
    group_by: Option<String>,
    /// Also retire replicas verified more than this many days ago (at least 1; never the
    /// newest).
    #[arg(long, value_name = "DAYS")]
    max_age_days: Option<u32>,
    /// Days between deprecating a replica and deregistering it: 0 to 365 (default 7). With 0,
    /// --apply deprecates and deregisters at once.
    #[arg(long, value_name = "DAYS")]
    grace_days: Option<u32>,
    /// The SSM parameter ferry wires in --region (e.g. /golden/web/ami): the replica it holds is
    /// kept.
    #[arg(long, value_name = "NAME")]
    ssm_parameter: Option<String>,
    /// Only show what would be retired and why (the default).
    #[arg(long, conflicts_with = "apply")]
    dry_run: bool,
    /// Carry out exactly the verdicts shown: deprecate (tag ferry:retire-after), and deregister
    /// with the snapshots those whose grace period is over. Only images and snapshots tagged
    /// ferry:managed-by=ferry are touched.
    #[arg(long)]
    apply: bool,
}

/// A policy file, parsed and checked as the stack checks it; anything wrong is a usage error
/// (exit 2) naming `--policy`.
pub fn load_policy(path: &Path, command: &str) -> Result<Policy, ExitCode> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|error| report::usage("--policy", &format!("{shown}: {error}"), command))?;
    Policy::parse(&text)
        .map_err(|error| report::usage("--policy", &format!("{shown}: {error}"), command))
}

/// The flag a retention field comes from.
fn flag_of(field: &str) -> &'static str {
    match field {
        "keep" => "--keep",
        "maxAgeDays" => "--max-age-days",
        "graceDays" => "--grace-days",
        _ => "--group-by",
    }
}

impl Args {
    /// What to prune: the policy's destinations with retention, or one Region's from the
    /// flags; each checked before any AWS call.
    fn targets(&self, global: &Global) -> Result<Vec<RetentionTarget>, ExitCode> {
        let usage = |flag: &str, message: &str| report::usage(flag, message, "prune");
        if let Some(path) = &self.policy {
            let targets = load_policy(path, "prune")?.retention_targets();
            if targets.is_empty() {
                return Err(usage(
                    "--policy",
                    &format!(
                        "{}: no destination has retention: add \"retention\": {{\"keep\": N, \"groupBy\": KEY}} to a destination, or give --region, --keep and --group-by",
                        path.display()
                    ),
                ));
            }
            return Ok(targets);
        }
        let (keep, group_by) =
            match (self.keep, &self.group_by) {
                (Some(keep), Some(group_by)) => (keep, group_by.clone()),
                (Some(_), None) => {
                    return Err(usage(
                        "--group-by",
                        "--keep needs it: the source tag that names the image family",
                    ))
                }
                (None, Some(_)) => {
                    return Err(usage(
                        "--keep",
                        "--group-by needs it: how many replicas of each group to keep",
                    ))
                }
                (None, None) => return Err(usage(
                    "--policy",
                    "say what to prune: --policy FILE, or --region REGION --keep N --group-by KEY",
                )),
            };
        let retention = RetentionRequest {
            keep,
            max_age_days: self.max_age_days,
            group_by,
            grace_days: self.grace_days,
        };
        check_retention(&retention).map_err(|(field, reason)| usage(flag_of(field), &reason))?;
        if let Some(name) = &self.ssm_parameter {
            check_parameter_name(name).map_err(|reason| usage("--ssm-parameter", &reason))?;
        }
        let Some(region) = global.aws.region.clone() else {
            return Err(usage(
                "--region",
                "name the Region to prune (or set AWS_REGION), or give --policy",
            ));
        };
        Ok(vec![RetentionTarget {
            region,
            retention,
            ssm_parameter: self.ssm_parameter.clone(),
        }])
    }
}

pub async fn run(global: &Global, config: Config, args: Args) -> ExitCode {
    let targets = match args.targets(global) {
        Ok(targets) => targets,
        Err(code) => return code,
    };
    let sdk = match global
        .aws
        .connect(&config, targets.first().map(|t| t.region.as_str()))
        .await
    {
        Ok(sdk) => sdk,
        Err(unusable) => return unusable.report(),
    };
    let deps = Deps::from_sdk(&sdk, config);
    let mut assessed: Vec<(&RetentionTarget, Vec<Verdict>)> = vec![];
    for target in &targets {
        match assess(&deps, target).await {
            Ok(verdicts) => assessed.push((target, verdicts)),
            Err(error) => return report::error(&format!("prune {}", target.region), &error),
        }
    }
    if !args.apply {
        let records: Vec<Value> = assessed
            .iter()
            .flat_map(|(target, verdicts)| verdicts.iter().map(|v| record(target, v, None)))
            .collect();
        print(&records, global.output, false);
        if !global.quiet {
            eprintln!(
                "{}; dry run: nothing was changed (--apply carries it out)",
                summary(&assessed)
            );
        }
        return ExitCode::SUCCESS;
    }
    // The very verdicts assessed above, nothing re-read: what is shown is what is done.
    let mut records = vec![];
    let mut applied: Vec<Applied> = vec![];
    let mut failed = None;
    for (target, verdicts) in &assessed {
        match apply(&deps, target, verdicts).await {
            Ok(done) => {
                records.extend(verdicts.iter().map(|v| record(target, v, Some(&done))));
                applied.push(done);
            }
            Err(error) => {
                failed = Some((target.region.clone(), error));
                break;
            }
        }
    }
    print(&records, global.output, true);
    for refused in applied.iter().flat_map(|a| &a.refused) {
        report::warn("RetirementRefused", refused);
    }
    if let Some((region, error)) = failed {
        return report::error(&format!("prune {region}"), &error);
    }
    if !global.quiet {
        eprintln!("{}", applied_summary(&applied));
    }
    ExitCode::SUCCESS
}

/// What retention would do, as the tables say it.
pub fn would(action: Action) -> &'static str {
    match action {
        Action::Keep => "keep",
        Action::Deprecate => "would deprecate",
        Action::AwaitGrace => "awaiting grace",
        Action::Deregister => "would deregister",
    }
}

/// What `--apply` did with one verdict.
fn done_text(verdict: &Verdict, applied: &Applied) -> String {
    let id = &verdict.image_id;
    let has = |list: &[String]| list.iter().any(|i| i == id);
    let mut parts: Vec<String> = vec![];
    if has(&applied.deprecated) {
        parts.push("deprecated".into());
    }
    if has(&applied.retired) {
        parts.push("retired".into());
    }
    if has(&applied.awaiting_fsr_disable) {
        parts.push("awaiting FSR disable".into());
    }
    let prefix = format!("{id}: ");
    parts.extend(
        applied
            .refused
            .iter()
            .filter_map(|r| r.strip_prefix(&prefix))
            .map(|why| format!("refused: {why}")),
    );
    if parts.is_empty() {
        return match verdict.action {
            Action::Keep => "kept",
            Action::AwaitGrace => "awaiting grace",
            // Gone already, or nothing on it tagged as its replication's.
            Action::Deprecate | Action::Deregister => "left alone",
        }
        .into();
    }
    parts.join(", ")
}

/// One verdict as `--output json` shows it; `done` with `--apply`.
fn record(target: &RetentionTarget, verdict: &Verdict, applied: Option<&Applied>) -> Value {
    let mut record = json!({
        "region": target.region,
        "group": verdict.group,
        "imageId": verdict.image_id,
        "action": verdict.action,
        "reason": verdict.reason,
        "verifiedAt": verdict.verified_at,
        "replicationId": verdict.replication_id,
        "source": verdict.source,
        "graceDays": target.retention.grace_days.unwrap_or(ferry_core::rules::retention::DEFAULT_GRACE_DAYS),
    });
    if let Some(applied) = applied {
        record["done"] = json!(done_text(verdict, applied));
    }
    record
}

fn print(records: &[Value], output: Output, applied: bool) {
    match output {
        Output::Json => report::print_json(&records),
        Output::Csv => {
            let mut columns = vec![
                ("region", "/region"),
                ("group", "/group"),
                ("image_id", "/imageId"),
                ("action", "/action"),
                ("reason", "/reason"),
                ("verified_at", "/verifiedAt"),
                ("replication_id", "/replicationId"),
                ("source", "/source"),
            ];
            if applied {
                columns.push(("done", "/done"));
            }
            report::print_csv(records, &columns);
        }
        Output::Table => print_table(records, applied),
    }
}

fn action_text(record: &Value) -> String {
    let action: Option<Action> = match record["action"].as_str() {
        Some("keep") => Some(Action::Keep),
        Some("deprecate") => Some(Action::Deprecate),
        Some("awaitGrace") => Some(Action::AwaitGrace),
        Some("deregister") => Some(Action::Deregister),
        _ => None,
    };
    match action {
        Some(Action::Deprecate) if record["graceDays"] == 0 => {
            "would deprecate and deregister".into()
        }
        Some(action) => would(action).into(),
        None => "-".into(),
    }
}

fn print_table(records: &[Value], applied: bool) {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    if applied {
        println!(
            "{:<14} {:<20} {:<21} {:<30} {:<24} REASON",
            "REGION", "GROUP", "IMAGE", "ACTION", "DONE"
        );
    } else {
        println!(
            "{:<14} {:<20} {:<21} {:<30} REASON",
            "REGION", "GROUP", "IMAGE", "ACTION"
        );
    }
    for record in records {
        let head = format!(
            "{:<14} {:<20} {:<21} {:<30}",
            text(&record["region"]),
            text(&record["group"]),
            text(&record["imageId"]),
            action_text(record)
        );
        if applied {
            println!(
                "{head} {:<24} {}",
                text(&record["done"]),
                text(&record["reason"])
            );
        } else {
            println!("{head} {}", text(&record["reason"]));
        }
    }
}

/// The dry run in one line: per action, how many.
fn summary(assessed: &[(&RetentionTarget, Vec<Verdict>)]) -> String {
    let count = |action: Action| {
        assessed
            .iter()
            .flat_map(|(_, verdicts)| verdicts)
            .filter(|v| v.action == action)
            .count()
    };
    let regions: Vec<&str> = assessed.iter().map(|(t, _)| t.region.as_str()).collect();
    format!(
        "{} replicas in {}: {} kept, {} would be deprecated, {} awaiting grace, {} would be deregistered",
        assessed.iter().map(|(_, v)| v.len()).sum::<usize>(),
        report::each_once(regions.iter().map(|r| r.to_string()).collect()).join(", "),
        count(Action::Keep),
        count(Action::Deprecate),
        count(Action::AwaitGrace),
        count(Action::Deregister),
    )
}

/// What `--apply` did, in one line.
fn applied_summary(applied: &[Applied]) -> String {
    let sum = |f: fn(&Applied) -> usize| applied.iter().map(f).sum::<usize>();
    let regions = report::each_once(applied.iter().map(|a| a.region.clone()).collect());
    let fsr = sum(|a| a.awaiting_fsr_disable.len());
    format!(
        "applied in {}: {} deprecated, {} retired (deregistered with their snapshots), {} kept, {} awaiting grace, {fsr} awaiting FSR disable, {} refused{}",
        regions.join(", "),
        sum(|a| a.deprecated.len()),
        sum(|a| a.retired.len()),
        sum(|a| a.kept),
        sum(|a| a.awaiting_grace),
        sum(|a| a.refused.len()),
        if fsr > 0 {
            "; FSR was still on for some: ferry disabled it, the next prune (or sweep) retires them"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use ferry_core::handlers::retire::Applied;
    use ferry_core::rules::retention::{Action, Verdict};

    use super::{done_text, Args};
    use crate::{AwsArgs, Global};

    #[derive(Parser)]
    struct Prune {
        #[command(flatten)]
        args: Args,
    }

    fn global(region: Option<&str>) -> Global {
        Global {
            aws: AwsArgs {
                region: region.map(String::from),
                ..Default::default()
            },
            output: crate::report::Output::Table,
            quiet: false,
            verbose: 0,
        }
    }

    fn targets(argv: &[&str], region: Option<&str>) -> bool {
        let args = Prune::try_parse_from([&["prune"][..], argv].concat())
            .expect("flags parse")
            .args;
        args.targets(&global(region)).is_ok()
    }

    #[test]
    fn flags_name_one_regions_retention_and_a_bad_value_is_refused() {
        let whole = [
            "--keep",
            "3",
            "--group-by",
            "app",
            "--ssm-parameter",
            "/golden/web/ami",
        ];
        assert!(targets(&whole, Some("us-west-2")));
        assert!(!targets(&whole, None), "no Region to prune");
        for wrong in [
            &[][..],
            &["--keep", "3"],
            &["--group-by", "app"],
            &["--keep", "0", "--group-by", "app"],
            &["--keep", "1", "--group-by", "aws:app"],
            &["--keep", "1", "--group-by", "app", "--max-age-days", "0"],
            &["--keep", "1", "--group-by", "app", "--grace-days", "366"],
            &[
                "--keep",
                "1",
                "--group-by",
                "app",
                "--ssm-parameter",
                "/aws/x",
            ],
            &["--policy", "/nonexistent/policy.json"],
        ] {
            assert!(!targets(wrong, Some("us-west-2")), "{wrong:?}");
        }
        assert!(
            Prune::try_parse_from(["prune", "--policy", "p.json", "--keep", "1"]).is_err(),
            "a policy or flags, not both"
        );
    }

    #[test]
    fn what_was_done_is_read_off_the_apply_for_each_verdict() {
        let verdict = |id: &str, action| Verdict {
            image_id: id.into(),
            group: "app=web".into(),
            action,
            reason: "r".into(),
            verified_at: None,
            replication_id: None,
            source: None,
        };
        let applied = Applied {
            region: "us-west-2".into(),
            deprecated: vec!["ami-1".into(), "ami-2".into()],
            retired: vec!["ami-1".into()],
            awaiting_fsr_disable: vec!["ami-3".into()],
            refused: vec!["ami-4: OperationNotPermitted: protected".into()],
            ..Default::default()
        };
        for (id, action, done) in [
            ("ami-1", Action::Deprecate, "deprecated, retired"),
            ("ami-2", Action::Deprecate, "deprecated"),
            ("ami-3", Action::Deregister, "awaiting FSR disable"),
            (
                "ami-4",
                Action::Deregister,
                "refused: OperationNotPermitted: protected",
            ),
            ("ami-5", Action::Keep, "kept"),
            ("ami-6", Action::AwaitGrace, "awaiting grace"),
            ("ami-7", Action::Deregister, "left alone"),
        ] {
            assert_eq!(done_text(&verdict(id, action), &applied), done, "{id}");
        }
    }
}
