//! The fleet audit: every replica ferry made in some Regions, rebuilt from its lineage tags and
//! checked against what EC2 reports now. Flags drift (a snapshot under another key, or with
//! another key associated), a destination key no longer enabled, unverified replicas, broken
//! lineage, lineage tags that AWS's own record contradicts, unencrypted snapshots and FSR left on
//! past its `ferry:fsr-disable-at`; and notes what is not a fault but worth knowing (a source
//! that was unencrypted).

use serde::Serialize;

use crate::deps::Deps;
use crate::error::FerryError;
use crate::handlers::aws_failure;
use crate::handlers::retire::assess;
use crate::ports::{ImageInfo, SnapshotInfo, Tag, TemplateImage};
use crate::rules::boot_check::BOOT_CHECKED;
use crate::rules::lineage::{self, aws_lineage_agrees, aws_recorded_source, source_label};
use crate::rules::retention::{Action, RetentionTarget, Verdict};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum Flag {
    /// The destination key the replica is under is no longer `Enabled` (disabled, pending
    /// deletion, gone) since it was verified: the replica cannot be restored from.
    KeyNotEnabled {
        key_arn: String,
        state: String,
    },
    /// A snapshot is under another key than the one recorded at replication.
    WrongKey {
        snapshot_id: String,
        recorded: String,
        actual: String,
    },
    /// Drift: a snapshot has KMS keys associated besides its own (`AssociateKmsKeyId`), each a
    /// second way to read the data.
    AssociatedKey {
        snapshot_id: String,
        key_arns: Vec<String>,
    },
    Unencrypted {
        snapshot_id: String,
    },
    /// No passing verification is recorded.
    NotVerified,
    /// The source no longer exists.
    BrokenLineage {
        source: String,
    },
    /// An AMI replica's `ferry:source-*` tags claim a source that AWS's own lineage record
    /// (DescribeImages `SourceImageRegion`/`SourceImageId`) contradicts, or AWS records none.
    LineageContradicted {
        claimed: String,
        recorded: String,
    },
    /// FSR ferry enabled is still on past its `ferry:fsr-disable-at`: billed per zone-hour.
    FsrPastDue {
        due_at: String,
        zones: usize,
        /// At the us-east-1 price of $0.75 per DSU-hour.
        usd_cents_per_hour: u64,
    },
}

impl Flag {
    /// The snapshot the flag is about, when it is about one snapshot rather than the replica.
    pub fn snapshot_id(&self) -> Option<&str> {
        match self {
            Flag::WrongKey { snapshot_id, .. }
            | Flag::AssociatedKey { snapshot_id, .. }
            | Flag::Unencrypted { snapshot_id } => Some(snapshot_id),
            _ => None,
        }
    }
}

/// Worth knowing, not a fault: notes never make the audit fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum Note {
    /// The source snapshot was unencrypted: the replica is encrypted under the destination key
    /// (verified), but the data sat unencrypted at the source.
    UnencryptedSource {
        snapshot_id: String,
        source_snapshot_id: String,
    },
}

/// The FSR state of a snapshot in one Availability Zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsrZone {
    pub availability_zone: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditedSnapshot {
    pub snapshot_id: String,
    pub source_snapshot_id: Option<String>,
    pub source_key_arn: Option<String>,
    pub encrypted: bool,
    pub key_arn: Option<String>,
    /// KMS keys associated besides `key_arn` (none on a compliant replica).
    pub associated_key_arns: Vec<String>,
    /// FSR state per Availability Zone.
    pub fsr: Vec<FsrZone>,
}

/// One replica, rebuilt from tags: the evidence record as `ferry audit` sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaAudit {
    pub replication_id: Option<String>,
    pub source_region: Option<String>,
    pub source_id: Option<String>,
    pub destination_region: String,
    pub destination_id: String,
    pub state: String,
    pub key_arn: Option<String>,
    pub key_alias: Option<String>,
    pub batch: Option<String>,
    pub verified_at: Option<String>,
    /// For an AMI replica: the source AWS recorded for it (`region/id`, or `none recorded`).
    pub aws_source: Option<String>,
    pub snapshots: Vec<AuditedSnapshot>,
    /// AMI replicas: the launch-template versions (default or latest) that launch it now.
    pub launch_templates: Vec<String>,
    /// AMI replicas: the SSM parameter wire-destination pointed at it, if it still holds it.
    pub ssm_parameter: Option<String>,
    /// AMI replicas: the last boot check that passed (`ferry:boot-checked`).
    pub boot_checked: Option<String>,
    /// AMI replicas, when the audit is given the destination's retention: what the next
    /// sweep would do with it, and why.
    pub retention: Option<RetentionView>,
    pub flags: Vec<Flag>,
    pub notes: Vec<Note>,
}

/// What retention would do with a replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionView {
    pub action: Action,
    pub reason: String,
}

fn tag(tags: &[Tag], key: &str) -> Option<String> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.clone())
}

/// The rule: compare what was recorded with what EC2 says now.
pub fn flags(
    recorded_key: Option<&str>,
    verified_at: Option<&str>,
    source_exists: bool,
    source: &str,
    snapshots: &[SnapshotInfo],
) -> Vec<Flag> {
    let mut flags = vec![];
    if verified_at.is_none() {
        flags.push(Flag::NotVerified);
    }
    for snapshot in snapshots {
        if !snapshot.encrypted {
            flags.push(Flag::Unencrypted {
                snapshot_id: snapshot.snapshot_id.clone(),
            });
        } else if let Some(recorded) =
            recorded_key.filter(|recorded| snapshot.kms_key_id.as_deref() != Some(*recorded))
        {
            flags.push(Flag::WrongKey {
                snapshot_id: snapshot.snapshot_id.clone(),
                recorded: recorded.to_string(),
                actual: snapshot.kms_key_id.clone().unwrap_or_else(|| "none".into()),
            });
        }
        if !snapshot.associated_kms_key_ids.is_empty() {
            flags.push(Flag::AssociatedKey {
                snapshot_id: snapshot.snapshot_id.clone(),
                key_arns: snapshot.associated_kms_key_ids.clone(),
            });
        }
    }
    if !source_exists {
        flags.push(Flag::BrokenLineage {
            source: source.to_string(),
        });
    }
    flags
}

/// An AMI replica whose `ferry:source-region`/`ferry:source-id` tags claim a source that AWS's
/// own lineage record of the image does not name (tags can be forged; the record cannot).
pub fn lineage_contradiction(image: &ImageInfo) -> Option<Flag> {
    let (region, id) = (
        tag(&image.tags, lineage::SOURCE_REGION),
        tag(&image.tags, lineage::SOURCE_ID),
    );
    if let (Some(region), Some(id)) = (&region, &id) {
        if aws_lineage_agrees(image, region, id) {
            return None;
        }
    }
    Some(Flag::LineageContradicted {
        claimed: source_label(region.as_deref(), id.as_deref()),
        recorded: aws_recorded_source(image),
    })
}

/// FSR still on, on snapshots whose `ferry:fsr-disable-at` has passed, as one flag.
pub fn fsr_past_due(
    snapshots: &[SnapshotInfo],
    fsr: &[crate::ports::FsrState],
    now: u64,
) -> Option<Flag> {
    let due: Vec<&SnapshotInfo> = snapshots
        .iter()
        .filter(|s| crate::rules::fsr::is_due(&s.tags, now))
        .collect();
    let zones = fsr
        .iter()
        .filter(|f| {
            crate::rules::fsr::is_active(&f.state)
                && due.iter().any(|s| s.snapshot_id == f.snapshot_id)
        })
        .count();
    let due_at = due
        .iter()
        .filter_map(|s| tag(&s.tags, crate::rules::fsr::DISABLE_AT))
        .min()?;
    (zones > 0).then(|| Flag::FsrPastDue {
        due_at,
        zones,
        usd_cents_per_hour: (crate::rules::fsr::hourly_cost_usd(zones) * 100.0).round() as u64,
    })
}

/// Replica snapshots whose source was unencrypted: tag-lineage records a source snapshot and,
/// only for an encrypted one, its key (`ferry:source-key-arn`).
pub fn unencrypted_sources(snapshots: &[AuditedSnapshot]) -> Vec<Note> {
    snapshots
        .iter()
        .filter(|s| s.source_key_arn.is_none())
        .filter_map(|s| {
            Some(Note::UnencryptedSource {
                snapshot_id: s.snapshot_id.clone(),
                source_snapshot_id: s.source_snapshot_id.clone()?,
            })
        })
        .collect()
}

/// One replica as the audit gathers it: id, state, tags, snapshots, and for an AMI, AWS's
/// recorded source with the flag its contradiction raises.
type Entry = (
    String,
    String,
    Vec<Tag>,
    Vec<SnapshotInfo>,
    Option<(String, Option<Flag>)>,
);

/// A replica's recorded destination key, when KMS says it is not `Enabled` now (a key KMS does
/// not find is `NotFound`). Each key is described once per audit.
async fn key_not_enabled(
    deps: &Deps,
    region: &str,
    key_arn: &str,
    seen: &mut std::collections::HashMap<(String, String), String>,
) -> Result<Option<Flag>, FerryError> {
    let slot = (region.to_string(), key_arn.to_string());
    let state = match seen.get(&slot) {
        Some(state) => state.clone(),
        None => {
            let state = match deps.keys.describe_key(region, key_arn).await {
                Ok(key) => key.state,
                Err(error) if error.is_not_found() => "NotFound".into(),
                Err(error) => return Err(aws_failure("kms:DescribeKey", error)),
            };
            seen.insert(slot, state.clone());
            state
        }
    };
    Ok((state != "Enabled").then(|| Flag::KeyNotEnabled {
        key_arn: key_arn.to_string(),
        state,
    }))
}

/// What points at or would retire each AMI replica of `region`: launch-template versions, and
/// retention's verdicts when `retention` names this Region.
async fn usage(
    deps: &Deps,
    region: &str,
    retention: &[RetentionTarget],
) -> Result<(Vec<TemplateImage>, Vec<Verdict>), FerryError> {
    let templates = deps
        .launch_templates
        .template_images(region)
        .await
        .map_err(|e| aws_failure("ec2:DescribeLaunchTemplateVersions", e))?;
    let mut verdicts = vec![];
    for target in retention.iter().filter(|t| t.region == region) {
        verdicts.extend(assess(deps, target).await?);
    }
    Ok((templates, verdicts))
}

/// Audits every replica ferry made in `regions`; `retention` (the policy destinations that
/// ask for it) adds each AMI replica's verdict.
pub async fn audit(
    deps: &Deps,
    regions: &[String],
    retention: &[RetentionTarget],
) -> Result<Vec<ReplicaAudit>, FerryError> {
    let ours = [Tag::new(lineage::MANAGED_BY, "ferry")];
    let mut replicas = vec![];
    let mut key_states = std::collections::HashMap::new();
    for region in regions {
        let (templates, verdicts) = usage(deps, region, retention).await?;
        let images = deps
            .images
            .find_images_tagged(region, &ours)
            .await
            .map_err(|e| aws_failure("ec2:DescribeImages", e))?;
        let all_snapshots = deps
            .snapshots
            .find_snapshots_tagged(region, &ours)
            .await
            .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?;
        let fsr = deps
            .fast_restore
            .describe(region, &[])
            .await
            .map_err(|e| aws_failure("ec2:DescribeFastSnapshotRestores", e))?;
        // (replica id, state, tags, snapshots, for an AMI: AWS's recorded source and whether
        // the tags contradict it)
        let mut entries: Vec<Entry> = vec![];
        for image in images {
            let members = image
                .snapshots
                .iter()
                .filter_map(|d| {
                    all_snapshots
                        .iter()
                        .find(|s| s.snapshot_id == d.snapshot_id)
                        .cloned()
                })
                .collect();
            let aws = (aws_recorded_source(&image), lineage_contradiction(&image));
            entries.push((image.image_id, image.state, image.tags, members, Some(aws)));
        }
        // Standalone snapshot replicas: their source is a snapshot, not an AMI.
        for snapshot in all_snapshots
            .iter()
            .filter(|s| tag(&s.tags, lineage::SOURCE_ID).is_some_and(|id| id.starts_with("snap-")))
        {
            entries.push((
                snapshot.snapshot_id.clone(),
                snapshot.state.clone(),
                snapshot.tags.clone(),
                vec![snapshot.clone()],
                None,
            ));
        }
        for (destination_id, state, tags, members, aws) in entries {
            let (aws_source, contradiction) = match aws {
                Some((recorded, flag)) => (Some(recorded), flag),
                None => (None, None),
            };
            let (source_region, source_id) = (
                tag(&tags, lineage::SOURCE_REGION),
                tag(&tags, lineage::SOURCE_ID),
            );
            let source_exists = match (&source_region, &source_id) {
                (Some(region), Some(id)) if id.starts_with("ami-") => deps
                    .images
                    .describe_image(region, id)
                    .await
                    .map_err(|e| aws_failure("ec2:DescribeImages", e))?
                    .is_some(),
                (Some(region), Some(id)) => !deps
                    .snapshots
                    .describe_snapshots(region, std::slice::from_ref(id))
                    .await
                    .map_err(|e| aws_failure("ec2:DescribeSnapshots", e))?
                    .is_empty(),
                _ => false,
            };
            let key_arn = tag(&tags, lineage::KEY_ARN);
            let verified_at = tag(&tags, lineage::VERIFIED_AT);
            let source = source_label(source_region.as_deref(), source_id.as_deref());
            let mut flags = flags(
                key_arn.as_deref(),
                verified_at.as_deref(),
                source_exists,
                &source,
                &members,
            );
            if let Some(key) = &key_arn {
                flags.extend(key_not_enabled(deps, region, key, &mut key_states).await?);
            }
            flags.extend(contradiction);
            flags.extend(fsr_past_due(&members, &fsr, deps.clock.now()));
            let snapshots: Vec<AuditedSnapshot> = members
                .iter()
                .map(|s| AuditedSnapshot {
                    snapshot_id: s.snapshot_id.clone(),
                    source_snapshot_id: tag(&s.tags, lineage::SOURCE_SNAPSHOT_ID),
                    source_key_arn: tag(&s.tags, lineage::SOURCE_KEY_ARN),
                    encrypted: s.encrypted,
                    key_arn: s.kms_key_id.clone(),
                    associated_key_arns: s.associated_kms_key_ids.clone(),
                    fsr: fsr
                        .iter()
                        .filter(|f| f.snapshot_id == s.snapshot_id)
                        .map(|f| FsrZone {
                            availability_zone: f.availability_zone.clone(),
                            state: f.state.clone(),
                        })
                        .collect(),
                })
                .collect();
            let notes = unencrypted_sources(&snapshots);
            let image = aws_source.is_some();
            let ssm_parameter = match tag(&tags, lineage::SSM_PARAMETER).filter(|_| image) {
                Some(name) => deps
                    .parameters
                    .get(region, &name)
                    .await
                    .map_err(|e| aws_failure("ssm:GetParameter", e))?
                    .filter(|p| p.value == destination_id)
                    .map(|_| name),
                None => None,
            };
            let launch_templates = templates
                .iter()
                .filter(|t| image && t.image_id == destination_id)
                .map(|t| {
                    let which = if t.is_default { "default" } else { "latest" };
                    format!("{} ({which} version {})", t.template_name, t.version)
                })
                .collect();
            let retention = verdicts
                .iter()
                .find(|v| v.image_id == destination_id)
                .map(|v| RetentionView {
                    action: v.action,
                    reason: v.reason.clone(),
                });
            replicas.push(ReplicaAudit {
                replication_id: tag(&tags, lineage::REPLICATION_ID),
                source_region,
                source_id,
                destination_region: region.clone(),
                destination_id,
                state,
                key_arn,
                key_alias: tag(&tags, lineage::KEY_ALIAS),
                batch: tag(&tags, lineage::BATCH),
                verified_at,
                aws_source,
                snapshots,
                launch_templates,
                ssm_parameter,
                boot_checked: tag(&tags, BOOT_CHECKED).filter(|_| image),
                retention,
                flags,
                notes,
            });
        }
    }
    Ok(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(id: &str, encrypted: bool, key: Option<&str>) -> SnapshotInfo {
        SnapshotInfo {
            snapshot_id: id.into(),
            encrypted,
            kms_key_id: key.map(Into::into),
            state: "completed".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_verified_replica_under_its_recorded_key_is_clean() {
        assert!(flags(
            Some("arn:k"),
            Some("2026-11-22T08:00:00Z"),
            true,
            "us-east-1/ami-1",
            &[snapshot("snap-1", true, Some("arn:k"))]
        )
        .is_empty());
    }

    #[test]
    fn drift_unverified_broken_lineage_and_unencrypted_are_all_flagged() {
        let found = flags(
            None,
            None,
            false,
            "us-east-1/ami-gone",
            &[snapshot("snap-1", false, None)],
        );
        assert_eq!(
            found,
            vec![
                Flag::NotVerified,
                Flag::Unencrypted {
                    snapshot_id: "snap-1".into()
                },
                Flag::BrokenLineage {
                    source: "us-east-1/ami-gone".into()
                }
            ]
        );
        let drift = flags(
            Some("arn:k"),
            Some("t"),
            true,
            "s",
            &[snapshot("snap-2", true, Some("arn:other"))],
        );
        assert_eq!(
            drift,
            vec![Flag::WrongKey {
                snapshot_id: "snap-2".into(),
                recorded: "arn:k".into(),
                actual: "arn:other".into()
            }]
        );
    }
}

#[cfg(test)]
mod fsr_tests {
    use super::*;
    use crate::ports::FsrState;

    #[test]
    fn fsr_on_past_its_time_is_flagged_with_its_hourly_cost() {
        let snapshot = |id: &str, due: Option<&str>| SnapshotInfo {
            snapshot_id: id.into(),
            tags: due
                .map(|d| vec![Tag::new(crate::rules::fsr::DISABLE_AT, d)])
                .unwrap_or_default(),
            ..Default::default()
        };
        let on = |id: &str, zone: &str| FsrState {
            snapshot_id: id.into(),
            availability_zone: zone.into(),
            state: "enabled".into(),
        };
        let now = 1_764_547_200; // 2025-12-01T00:00:00Z
        let members = [
            snapshot("snap-1", Some("2025-11-30T00:00:00Z")),
            snapshot("snap-2", None),
        ];
        let fsr = [
            on("snap-1", "us-west-2a"),
            on("snap-1", "us-west-2b"),
            on("snap-2", "us-west-2a"),
        ];
        assert_eq!(
            fsr_past_due(&members, &fsr, now),
            Some(Flag::FsrPastDue {
                due_at: "2025-11-30T00:00:00Z".into(),
                zones: 2,
                usd_cents_per_hour: 150
            })
        );
        let later = [snapshot("snap-1", Some("2025-12-02T00:00:00Z"))];
        assert_eq!(fsr_past_due(&later, &fsr, now), None, "not due yet");
        assert_eq!(fsr_past_due(&members, &[], now), None, "already off");
    }
}
