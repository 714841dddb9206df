//! `ferry audit`: the fleet compliance report, as a table, JSON or CSV. Exits 3 when anything is
//! flagged, so it can gate a pipeline.

use std::process::ExitCode;

use ferry_core::audit::{Flag, ReplicaAudit};
use ferry_core::{Config, Deps};

use crate::report;
use crate::AwsArgs;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Destination Regions to audit, comma-separated (spaces allowed, repeats ignored).
    #[arg(long, value_delimiter = ',', required = true, value_parser = crate::report::region)]
    regions: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub async fn run(aws: &AwsArgs, config: Config, mut args: Args) -> ExitCode {
    args.regions = crate::report::each_once(args.regions);
    let sdk = aws.sdk_config(&config).await;
    let deps = Deps::from_sdk(&sdk, config);
    let replicas = match ferry_core::audit::audit(&deps, &args.regions).await {
        Ok(replicas) => replicas,
        Err(error) => return report::error("audit", &error),
    };
    match args.format {
        Format::Table => print_table(&replicas),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&replicas).unwrap_or_default()
        ),
        Format::Csv => print_csv(&replicas),
    }
    let flagged = replicas.iter().filter(|r| !r.flags.is_empty()).count();
    eprintln!(
        "{} replicas audited in {}; {flagged} flagged",
        replicas.len(),
        args.regions.join(", ")
    );
    if flagged > 0 {
        ExitCode::from(report::FLAGGED)
    } else {
        ExitCode::SUCCESS
    }
}

fn flag_text(flag: &Flag) -> String {
    match flag {
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

fn or_dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

pub fn print_table(replicas: &[ReplicaAudit]) {
    println!(
        "{:<36} {:<36} {:<10} {:<22} FLAGS",
        "SOURCE", "DESTINATION", "STATE", "VERIFIED"
    );
    for replica in replicas {
        let flags: Vec<String> = replica.flags.iter().map(flag_text).collect();
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
            if flags.is_empty() {
                "ok".to_string()
            } else {
                flags.join("; ")
            }
        );
        for snapshot in &replica.snapshots {
            let fsr: Vec<String> = snapshot
                .fsr
                .iter()
                .map(|(zone, state)| format!("{zone}:{state}"))
                .collect();
            println!(
                "    {} ← {}  key {}{}  fsr {}",
                snapshot.snapshot_id,
                or_dash(&snapshot.source_snapshot_id),
                snapshot.key_arn.as_deref().unwrap_or("NONE"),
                replica
                    .key_alias
                    .as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default(),
                if fsr.is_empty() {
                    "-".into()
                } else {
                    fsr.join(",")
                }
            );
        }
    }
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn print_csv(replicas: &[ReplicaAudit]) {
    println!("source_region,source_id,destination_region,destination_id,snapshot_id,source_snapshot_id,source_key_arn,key_arn,recorded_key_arn,key_alias,encrypted,verified_at,fsr,flags");
    for replica in replicas {
        let flags: Vec<String> = replica.flags.iter().map(flag_text).collect();
        for snapshot in &replica.snapshots {
            let fsr: Vec<String> = snapshot
                .fsr
                .iter()
                .map(|(zone, state)| format!("{zone}:{state}"))
                .collect();
            let row = [
                or_dash(&replica.source_region).to_string(),
                or_dash(&replica.source_id).to_string(),
                replica.destination_region.clone(),
                replica.destination_id.clone(),
                snapshot.snapshot_id.clone(),
                or_dash(&snapshot.source_snapshot_id).to_string(),
                or_dash(&snapshot.source_key_arn).to_string(),
                or_dash(&snapshot.key_arn).to_string(),
                or_dash(&replica.key_arn).to_string(),
                or_dash(&replica.key_alias).to_string(),
                snapshot.encrypted.to_string(),
                or_dash(&replica.verified_at).to_string(),
                fsr.join(" "),
                flags.join("; "),
            ];
            println!(
                "{}",
                row.iter()
                    .map(|f| csv_field(f))
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
    }
}
