//! `ferry audit`: the fleet compliance report, as a table, JSON or CSV. Exits 3 when anything is
//! flagged, so it can gate a pipeline.

use std::path::PathBuf;
use std::process::ExitCode;

use ferry_core::audit::{AuditedSnapshot, Flag, Note, ReplicaAudit};
use ferry_core::rules::retention::Action;
use ferry_core::{Config, Deps};

use crate::report::{self, Output};
use crate::Global;

pub const EXAMPLES: &str = "Examples:
  ferry audit --regions us-west-2,eu-west-1
  ferry audit --policy policy.json       # its destination Regions, with what retention would do
  ferry audit --regions us-west-2 --output csv > replicas.csv
  ferry audit --regions us-west-2 --output json | jq '.[] | select(.flags != [])'";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Destination Regions to audit, comma-separated (spaces allowed, repeats ignored); default
    /// with --policy: its destination Regions.
    #[arg(long, value_delimiter = ',', required_unless_present = "policy", value_parser = report::region)]
    regions: Vec<String>,
    /// A policy document as the stack deploys it: each AMI replica in a destination with
    /// `retention` also shows what the scheduled step would do with it, and why.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The same as --output.
    #[arg(long, value_enum, hide = true)]
    format: Option<Output>,
}

pub async fn run(global: &Global, config: Config, args: Args) -> ExitCode {
    let policy = match &args.policy {
        Some(path) => match crate::prune::load_policy(path, "audit") {
            Ok(policy) => Some(policy),
            Err(code) => return code,
        },
        None => None,
    };
    let targets = policy
        .as_ref()
        .map(|p| p.retention_targets())
        .unwrap_or_default();
    if let (Some(path), true) = (&args.policy, targets.is_empty()) {
        report::warn(
            "NoRetention",
            &format!(
                "{}: no destination has retention, so no replica shows a retention verdict",
                path.display()
            ),
        );
    }
    let regions = report::each_once(if args.regions.is_empty() {
        policy
            .iter()
            .flat_map(|p| &p.destinations)
            .map(|d| d.region.clone())
            .collect()
    } else {
        args.regions
    });
    let sdk = match global
        .aws
        .connect(&config, regions.first().map(String::as_str))
        .await
    {
        Ok(sdk) => sdk,
        Err(unusable) => return unusable.report(),
    };
    let deps = Deps::from_sdk(&sdk, config);
    let replicas = match ferry_core::audit::audit(&deps, &regions, &targets).await {
        Ok(replicas) => replicas,
        Err(error) => return report::error("audit", &error),
    };
    print(&replicas, args.format.unwrap_or(global.output));
    let flagged = replicas.iter().filter(|r| !r.flags.is_empty()).count();
    if !global.quiet {
        eprintln!(
            "{} replicas audited in {}; {flagged} flagged",
            replicas.len(),
            regions.join(", ")
        );
    }
    if flagged > 0 {
        ExitCode::from(report::FLAGGED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The replicas on stdout in `output`'s form.
pub fn print(replicas: &[ReplicaAudit], output: Output) {
    match output {
        Output::Table => print_table(replicas),
        Output::Json => report::print_json(&replicas),
        Output::Csv => print_csv(replicas),
    }
}

fn flag_text(flag: &Flag) -> String {
    match flag {
        Flag::KeyNotEnabled { key_arn, state } => {
            format!("KEY NOT ENABLED: {key_arn} is {state}")
        }
        Flag::WrongKey {
            snapshot_id,
            recorded,
            actual,
        } => format!("DRIFT {snapshot_id} under {actual}, recorded {recorded}"),
        Flag::AssociatedKey {
            snapshot_id,
            key_arns,
        } => format!(
            "DRIFT {snapshot_id} has another key associated: {}",
            key_arns.join(", ")
        ),
        Flag::Unencrypted { snapshot_id } => format!("UNENCRYPTED {snapshot_id}"),
        Flag::NotVerified => "NOT VERIFIED".into(),
        Flag::BrokenLineage { source } => format!("BROKEN LINEAGE: {source} is gone"),
        Flag::LineageContradicted { claimed, recorded } => {
            format!("LINEAGE CONTRADICTED: tags claim {claimed}, AWS records {recorded}")
        }
        Flag::FsrPastDue {
            due_at,
            zones,
            usd_cents_per_hour,
        } => format!(
            "FSR PAST DUE since {due_at}: {zones} zone(s) on, ${}.{:02}/h",
            usd_cents_per_hour / 100,
            usd_cents_per_hour % 100
        ),
    }
}

fn note_text(note: &Note) -> String {
    match note {
        Note::UnencryptedSource {
            snapshot_id,
            source_snapshot_id,
        } => format!("note: {snapshot_id}'s source {source_snapshot_id} was unencrypted"),
    }
}

fn or_dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

/// A replica's flags and notes in one cell: `ok` when nothing is flagged.
fn verdict(flags: &[&Flag], notes: &[&Note]) -> String {
    let mut parts: Vec<String> = flags.iter().map(|f| flag_text(f)).collect();
    if parts.is_empty() {
        parts.push("ok".into());
    }
    parts.extend(notes.iter().map(|n| note_text(n)));
    parts.join("; ")
}

/// A snapshot's key as the table shows it: the alias only beside the key it names (the
/// recorded one); a snapshot under another key says what was recorded.
fn key_text(replica: &ReplicaAudit, snapshot: &AuditedSnapshot) -> String {
    let actual = snapshot.key_arn.as_deref().unwrap_or("NONE");
    if snapshot.key_arn == replica.key_arn {
        match &replica.key_alias {
            Some(alias) => format!("{actual} ({alias})"),
            None => actual.to_string(),
        }
    } else {
        format!(
            "{actual} (recorded {})",
            replica
                .key_alias
                .as_deref()
                .or(replica.key_arn.as_deref())
                .unwrap_or("nothing")
        )
    }
}

fn fsr_text(snapshot: &AuditedSnapshot, separator: &str) -> String {
    snapshot
        .fsr
        .iter()
        .map(|z| format!("{}:{}", z.availability_zone, z.state))
        .collect::<Vec<_>>()
        .join(separator)
}

pub fn print_table(replicas: &[ReplicaAudit]) {
    println!(
        "{:<36} {:<36} {:<10} {:<22} FLAGS",
        "SOURCE", "DESTINATION", "STATE", "VERIFIED"
    );
    for replica in replicas {
        println!(
            "{:<36} {:<36} {:<10} {:<22} {}",
            format!(
                "{}/{}",
                or_dash(&replica.source_region),
                or_dash(&replica.source_id)
            ),
            format!("{}/{}", replica.destination_region, replica.destination_id),
            replica.state,
            or_dash(&replica.verified_at),
            verdict(
                &replica.flags.iter().collect::<Vec<_>>(),
                &replica.notes.iter().collect::<Vec<_>>()
            )
        );
        for snapshot in &replica.snapshots {
            let fsr = fsr_text(snapshot, ",");
            println!(
                "    {} ← {}  key {}  fsr {}",
                snapshot.snapshot_id,
                or_dash(&snapshot.source_snapshot_id),
                key_text(replica, snapshot),
                if fsr.is_empty() { "-" } else { &fsr }
            );
        }
        for line in usage_lines(replica) {
            println!("    {line}");
        }
    }
}

/// What uses an AMI replica and what retention would do with it, one line each, for the
/// table: only what there is to say.
fn usage_lines(replica: &ReplicaAudit) -> Vec<String> {
    let mut lines = vec![];
    if !replica.launch_templates.is_empty() {
        lines.push(format!(
            "launched by: {}",
            replica.launch_templates.join(", ")
        ));
    }
    if let Some(name) = &replica.ssm_parameter {
        lines.push(format!("parameter: {name}"));
    }
    // The tag says it: `passed <time> on <type>: running in … s, status ok in … s`.
    if let Some(checked) = &replica.boot_checked {
        lines.push(format!("boot check: {checked}"));
    }
    if let Some(retention) = &replica.retention {
        lines.push(format!(
            "retention: {} — {}",
            crate::prune::would(retention.action),
            retention.reason
        ));
    }
    lines
}

/// One row per replica snapshot; each row carries the replica's own flags and that snapshot's,
/// never another snapshot's.
fn print_csv(replicas: &[ReplicaAudit]) {
    println!("source_region,source_id,destination_region,destination_id,snapshot_id,source_snapshot_id,source_key_arn,key_arn,recorded_key_arn,key_alias,encrypted,verified_at,fsr,flags,launch_templates,ssm_parameter,boot_checked,retention_action,retention_reason");
    for replica in replicas {
        for snapshot in &replica.snapshots {
            let mine = |id: Option<&str>| id.is_none_or(|id| id == snapshot.snapshot_id);
            let flags: Vec<&Flag> = replica
                .flags
                .iter()
                .filter(|f| mine(f.snapshot_id()))
                .collect();
            let notes: Vec<&Note> = replica
                .notes
                .iter()
                .filter(|n| match n {
                    Note::UnencryptedSource { snapshot_id, .. } => {
                        *snapshot_id == snapshot.snapshot_id
                    }
                })
                .collect();
            println!(
                "{}",
                report::csv_row(&[
                    or_dash(&replica.source_region),
                    or_dash(&replica.source_id),
                    &replica.destination_region,
                    &replica.destination_id,
                    &snapshot.snapshot_id,
                    or_dash(&snapshot.source_snapshot_id),
                    or_dash(&snapshot.source_key_arn),
                    or_dash(&snapshot.key_arn),
                    or_dash(&replica.key_arn),
                    or_dash(&replica.key_alias),
                    &snapshot.encrypted.to_string(),
                    or_dash(&replica.verified_at),
                    &fsr_text(snapshot, " "),
                    &verdict(&flags, &notes),
                    &replica.launch_templates.join("; "),
                    or_dash(&replica.ssm_parameter),
                    or_dash(&replica.boot_checked),
                    replica
                        .retention
                        .as_ref()
                        .map_or("-", |r| action_name(r.action)),
                    replica
                        .retention
                        .as_ref()
                        .map_or("-", |r| r.reason.as_str()),
                ])
            );
        }
    }
}

/// A retention action as JSON and CSV name it.
fn action_name(action: Action) -> &'static str {
    match action {
        Action::Keep => "keep",
        Action::Deprecate => "deprecate",
        Action::AwaitGrace => "awaitGrace",
        Action::Deregister => "deregister",
    }
}
