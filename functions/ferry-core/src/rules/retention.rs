//! Retention as pure rules: which verified replicas of an image family the scheduled step
//! keeps in a Region, which it retires and why.
//!
//! Replicas whose sources share the `groupBy` tag's value form one lineage (start-copy tags each
//! replica `ferry:group = groupBy=value`). Newest first by `ferry:verified-at`, a group keeps its
//! newest `keep`, and retires the rest and any verified more than `maxAgeDays` ago, but never:
//! the newest verified replica, one a launch template's default or latest version or the managed
//! SSM parameter points at, one an instance uses, or anything not tagged
//! `ferry:managed-by=ferry`. Retiring deprecates first (EC2 user guide, "Deprecate an AMI": a
//! deprecated AMI can still be launched by its owner, so nothing breaks), tags
//! `ferry:retire-after`, and after the grace period deregisters the image and deletes its
//! snapshots.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::document::RetentionRequest;
use crate::ports::{ImageInfo, Tag};
use crate::rules::lineage::{
    as_map, check_tag_value, hex_digest, rfc3339, time_tag_reached, MANAGED_BY, REPLICATION_ID,
    SOURCE_ID, SOURCE_REGION, VERIFIED_AT,
};

/// On a replica: its retention group, `groupBy=value` of its source's tag.
pub const GROUP: &str = "ferry:group";
/// On a deprecated replica: when the scheduled step deregisters it (RFC 3339).
pub const RETIRE_AFTER: &str = "ferry:retire-after";
/// On a deprecated replica: why it is being retired.
pub const RETIRE_REASON: &str = "ferry:retire-reason";

pub const DEFAULT_GRACE_DAYS: u32 = 7;
pub const MAX_GRACE_DAYS: u32 = 365;

/// One destination Region's retention, as the scheduled step and `ferry prune` apply it: the
/// policy destination's `retention` and its managed `ssmParameter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionTarget {
    pub region: String,
    pub retention: RetentionRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm_parameter: Option<String>,
}

/// The request's retention, checked.
pub fn check_retention(retention: &RetentionRequest) -> Result<(), (&'static str, String)> {
    if retention.keep == 0 {
        return Err((
            "keep",
            "keep at least 1: the newest verified replica is never retired".into(),
        ));
    }
    if retention.max_age_days == Some(0) {
        return Err(("maxAgeDays", "give at least 1 day, or leave it out".into()));
    }
    if retention.grace_days.is_some_and(|d| d > MAX_GRACE_DAYS) {
        return Err(("graceDays", format!("at most {MAX_GRACE_DAYS} days")));
    }
    let key = &retention.group_by;
    if key.is_empty() || key.chars().count() > 128 || key.to_ascii_lowercase().starts_with("aws:") {
        return Err((
            "groupBy",
            format!(
                "{key:?}: give a source tag key of 1 to 128 characters, without the aws: prefix"
            ),
        ));
    }
    Ok(())
}

/// The group a source tagged `source_tags` belongs to under `group_by`: `group_by=value`, or
/// `None` when the source lacks that tag. A value that cannot be a tag value is replaced by a
/// digest of it (the group stays distinct).
pub fn group_of(source_tags: &[Tag], group_by: &str) -> Option<String> {
    let value = source_tags
        .iter()
        .find(|t| t.key == group_by)?
        .value
        .clone();
    let group = format!("{group_by}={value}");
    Some(match check_tag_value(&group) {
        Ok(()) => group,
        Err(_) => format!("{group_by}=sha256:{}", &hex_digest(&[&value])[..16]),
    })
}

/// What the scheduled step does to one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Keep,
    /// Deprecate now and tag `ferry:retire-after`.
    Deprecate,
    /// Deprecated already; its grace period is not over.
    AwaitGrace,
    /// Deprecated and its grace period is over: deregister with its snapshots.
    Deregister,
}

/// One replica's verdict, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub image_id: String,
    pub group: String,
    pub action: Action,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Whether an image is one of ferry's verified replicas in `group_by`'s groups.
fn group_of_replica<'a>(tags: &'a BTreeMap<String, String>, group_by: &str) -> Option<&'a str> {
    if tags.get(MANAGED_BY).map(String::as_str) != Some("ferry") || !tags.contains_key(VERIFIED_AT)
    {
        return None;
    }
    tags.get(GROUP)
        .map(String::as_str)
        .filter(|g| g.split_once('=').is_some_and(|(key, _)| key == group_by))
}

/// A replica of a group, with its tags by key.
type Member<'a> = (&'a ImageInfo, BTreeMap<String, String>);

/// The verdict on every verified ferry replica among `images` that belongs to a group of
/// `retention.groupBy`, newest first within each group; `protected` gives, per image id, why it
/// must stay (a template or parameter points at it, an instance uses it).
pub fn decide(
    images: &[ImageInfo],
    protected: &BTreeMap<String, String>,
    retention: &RetentionRequest,
    now: u64,
) -> Vec<Verdict> {
    let mut groups: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for image in images {
        let tags = as_map(&image.tags);
        if let Some(group) = group_of_replica(&tags, &retention.group_by) {
            groups
                .entry(group.to_string())
                .or_default()
                .push((image, tags.clone()));
        }
    }
    let mut verdicts = vec![];
    for (group, mut members) in groups {
        // ferry's fixed-width RFC 3339 sorts as time; ties by creation, then id.
        members.sort_by(|(a, at), (b, bt)| {
            (bt.get(VERIFIED_AT), b.created_at_ms, &b.image_id).cmp(&(
                at.get(VERIFIED_AT),
                a.created_at_ms,
                &a.image_id,
            ))
        });
        for (rank, (image, tags)) in members.iter().enumerate() {
            let verified_at = tags.get(VERIFIED_AT).cloned();
            let (action, reason) = verdict(rank, image, tags, protected, retention, now);
            verdicts.push(Verdict {
                image_id: image.image_id.clone(),
                group: group.clone(),
                action,
                reason,
                verified_at,
                replication_id: tags.get(REPLICATION_ID).cloned(),
                source: match (tags.get(SOURCE_REGION), tags.get(SOURCE_ID)) {
                    (Some(region), Some(id)) => Some(format!("{region}/{id}")),
                    _ => None,
                },
            });
        }
    }
    verdicts
}

fn verdict(
    rank: usize,
    image: &ImageInfo,
    tags: &BTreeMap<String, String>,
    protected: &BTreeMap<String, String>,
    retention: &RetentionRequest,
    now: u64,
) -> (Action, String) {
    if rank == 0 {
        return (
            Action::Keep,
            "the newest verified replica of its group".into(),
        );
    }
    if let Some(why) = protected.get(&image.image_id) {
        return (Action::Keep, why.clone());
    }
    let keep = retention.keep as usize;
    let too_old = retention.max_age_days.filter(|days| {
        let limit = now.saturating_sub(u64::from(*days) * 86_400);
        tags.get(VERIFIED_AT)
            .is_some_and(|at| at.as_str() < rfc3339(limit).as_str())
    });
    let reason = match too_old {
        Some(days) => format!("verified more than {days} days ago"),
        None if rank >= keep => format!(
            "beyond the newest {keep} of its group (number {})",
            rank + 1
        ),
        None => {
            return (
                Action::Keep,
                format!("one of the newest {keep} of its group"),
            )
        }
    };
    match tags.get(RETIRE_AFTER) {
        None => (Action::Deprecate, reason),
        Some(_) if time_tag_reached(&image.tags, RETIRE_AFTER, now) => (Action::Deregister, reason),
        Some(after) => (
            Action::AwaitGrace,
            format!("{reason}; deprecated, deregistered after {after}"),
        ),
    }
}

/// The tags a replica gets when it is deprecated.
pub fn retiring_tags(retention: &RetentionRequest, reason: &str, now: u64) -> Vec<Tag> {
    let grace = u64::from(retention.grace_days.unwrap_or(DEFAULT_GRACE_DAYS)) * 86_400;
    let reason: String = reason
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || " +-=._:/@".contains(c) {
                c
            } else {
                ' '
            }
        })
        .take(256)
        .collect();
    vec![
        Tag::new(RETIRE_AFTER, rfc3339(now + grace)),
        Tag::new(RETIRE_REASON, reason),
    ]
}

/// When EC2 deprecates it: a minute from now (EnableImageDeprecation refuses a time in the past
/// and rounds seconds to the minute).
pub fn deprecate_at(now: u64) -> u64 {
    now + 60
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const NOW: u64 = 1_764_547_200;

    fn replica(id: &str, group: &str, verified_days_ago: u64, extra: &[(&str, &str)]) -> ImageInfo {
        let mut tags = vec![
            Tag::new(MANAGED_BY, "ferry"),
            Tag::new(GROUP, group),
            Tag::new(VERIFIED_AT, rfc3339(NOW - verified_days_ago * DAY)),
        ];
        tags.extend(extra.iter().map(|(k, v)| Tag::new(*k, *v)));
        ImageInfo {
            image_id: id.into(),
            state: "available".into(),
            tags,
            ..Default::default()
        }
    }

    fn retention(keep: u32, max_age_days: Option<u32>) -> RetentionRequest {
        RetentionRequest {
            keep,
            max_age_days,
            group_by: "app".into(),
            grace_days: None,
        }
    }

    fn actions(verdicts: &[Verdict]) -> Vec<(&str, Action)> {
        verdicts
            .iter()
            .map(|v| (v.image_id.as_str(), v.action))
            .collect()
    }

    #[test]
    fn a_group_keeps_its_newest_n_and_retires_the_rest() {
        let images = [
            replica("ami-3", "app=web", 1, &[]),
            replica("ami-1", "app=web", 30, &[]),
            replica("ami-2", "app=web", 10, &[]),
            replica("ami-9", "app=api", 50, &[]),
        ];
        let verdicts = decide(&images, &BTreeMap::new(), &retention(2, None), NOW);
        assert_eq!(
            actions(&verdicts),
            [
                ("ami-9", Action::Keep),
                ("ami-3", Action::Keep),
                ("ami-2", Action::Keep),
                ("ami-1", Action::Deprecate),
            ]
        );
        assert!(verdicts[3].reason.contains("beyond the newest 2"));
    }

    #[test]
    fn age_retires_all_but_the_newest_and_references_protect() {
        let images = [
            replica("ami-old", "app=web", 100, &[]),
            replica("ami-older", "app=web", 200, &[]),
            replica("ami-oldest", "app=web", 300, &[]),
        ];
        let protected = BTreeMap::from([(
            "ami-older".to_string(),
            "launch template web's default version points at it".to_string(),
        )]);
        let verdicts = decide(&images, &protected, &retention(5, Some(90)), NOW);
        assert_eq!(
            actions(&verdicts),
            [
                ("ami-old", Action::Keep),
                ("ami-older", Action::Keep),
                ("ami-oldest", Action::Deprecate),
            ]
        );
        assert!(verdicts[0].reason.contains("newest"));
        assert!(verdicts[1].reason.contains("launch template"));
        assert!(verdicts[2].reason.contains("90 days"));
    }

    #[test]
    fn a_deprecated_replica_is_deregistered_only_after_its_grace() {
        let later = rfc3339(NOW + DAY);
        let earlier = rfc3339(NOW - 1);
        let images = [
            replica("ami-new", "app=web", 1, &[]),
            replica("ami-waiting", "app=web", 20, &[(RETIRE_AFTER, &later)]),
            replica("ami-due", "app=web", 30, &[(RETIRE_AFTER, &earlier)]),
        ];
        let verdicts = decide(&images, &BTreeMap::new(), &retention(1, None), NOW);
        assert_eq!(
            actions(&verdicts),
            [
                ("ami-new", Action::Keep),
                ("ami-waiting", Action::AwaitGrace),
                ("ami-due", Action::Deregister),
            ]
        );
    }

    #[test]
    fn look_alikes_unverified_and_other_groupings_are_never_touched() {
        let mut lookalike = replica("ami-lookalike", "app=web", 100, &[]);
        lookalike.tags.retain(|t| t.key != MANAGED_BY);
        let mut unverified = replica("ami-unverified", "app=web", 100, &[]);
        unverified.tags.retain(|t| t.key != VERIFIED_AT);
        let images = [
            replica("ami-new", "app=web", 1, &[]),
            lookalike,
            unverified,
            replica("ami-team", "team=red", 100, &[]),
        ];
        let verdicts = decide(&images, &BTreeMap::new(), &retention(1, None), NOW);
        assert_eq!(actions(&verdicts), [("ami-new", Action::Keep)]);
    }

    #[test]
    fn groups_come_from_the_source_tag_and_retention_is_checked() {
        let tags = [Tag::new("app", "web")];
        assert_eq!(group_of(&tags, "app").as_deref(), Some("app=web"));
        assert_eq!(group_of(&tags, "team"), None);
        let odd = [Tag::new("app", "web#1")];
        assert!(group_of(&odd, "app").unwrap().starts_with("app=sha256:"));
        assert!(check_retention(&retention(1, Some(30))).is_ok());
        assert_eq!(check_retention(&retention(0, None)).unwrap_err().0, "keep");
        assert_eq!(
            check_retention(&retention(1, Some(0))).unwrap_err().0,
            "maxAgeDays"
        );
        let tags = retiring_tags(&retention(1, None), "beyond the newest 1 (number 2)", NOW);
        assert_eq!(tags[0], Tag::new(RETIRE_AFTER, rfc3339(NOW + 7 * DAY)));
        assert!(check_tag_value(&tags[1].value).is_ok());
    }
}
