//! The boot check as pure rules: what a request may ask for, how ferry's instance is launched
//! and tagged, what each look at it means, and when a leftover instance is terminated.
//!
//! AWS facts relied on (EC2 user guide): a volume created from an encrypted snapshot is
//! encrypted under the snapshot's key unless the mapping names another key ("Amazon EBS
//! encryption"), so an instance launched from the replica without key overrides shows the key
//! its volumes really get; an instance is `pending`, then `running`, and DescribeInstanceStatus
//! reports its system and instance checks `initializing`, then `ok` or `impaired` ("Status
//! checks for your instances"); a volume key EC2 cannot use terminates the instance at boot
//! with a `Client.InvalidKMSKey.InvalidState` reason (troubleshooting: "instance terminates
//! immediately"). RunInstances' `ClientToken` (at most 64 ASCII characters) makes a repeat
//! answer the original instance ("Ensuring idempotency").

use crate::document::{BootCheckRequest, BootVolume};
use crate::error::{FerryError, VolumeFinding};
use crate::ports::{InstanceInfo, StatusChecks, Tag};
use crate::rules::lineage::{hex_digest, ownership_tags, rfc3339, time_tag_reached};
use crate::rules::polling::{next_check_seconds as poll_wait, PollBounds};
use crate::rules::request::is_resource_id;

/// On a boot-check instance: the replica it boots.
pub const BOOT_CHECK_FOR: &str = "ferry:boot-check-for";
/// On a boot-check instance: when the sweep terminates it if it still runs (RFC 3339).
pub const EXPIRES_AT: &str = "ferry:boot-check-expires-at";
/// On the replica, once a boot check passed: when (RFC 3339), the instance and its timings.
pub const BOOT_CHECKED: &str = "ferry:boot-checked";

pub const DEFAULT_TIMEOUT_MINUTES: u32 = 15;
pub const TIMEOUT_MINUTES: std::ops::RangeInclusive<u32> = 5..=120;
/// Time past its own limit before the sweep terminates a boot-check instance that a check
/// did not end (an execution stopped or timed out mid-check).
pub const SWEEP_GRACE_MINUTES: u64 = 15;
/// Instances one check launches at most: another one only when its instance vanished (ended
/// by someone else, or a crash-retry of the step that terminated it) before a verdict.
pub const MAX_LAUNCHES: u32 = 3;
/// Longest wait between two looks at a booting instance.
pub const MAX_WAIT_SECONDS: u64 = 30;
/// Security groups one network interface takes (EC2's default quota).
pub const MAX_SECURITY_GROUPS: usize = 5;

/// An instance type as EC2 names them: a family and a size (`t3.micro`, `m7i-flex.large`).
fn is_instance_type(name: &str) -> bool {
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    matches!(name.split_once('.'), Some((family, size)) if valid(family) && valid(size))
}

/// The request's boot check, checked; `image` is whether the source is an AMI (only an AMI
/// boots).
pub fn check_boot_check(request: Option<&BootCheckRequest>, image: bool) -> Result<(), FerryError> {
    let Some(request) = request else {
        return Ok(());
    };
    let invalid = |field: &str, reason: String| {
        FerryError::invalid(format!("destination.bootCheck.{field}"), reason)
    };
    if !image {
        return Err(FerryError::invalid(
            "destination.bootCheck",
            "a boot check launches an instance from an AMI: replicate an imageId, or drop it",
        ));
    }
    if !is_resource_id(&request.subnet_id, "subnet") {
        return Err(invalid(
            "subnetId",
            format!(
                "{:?} is not a subnet id (subnet- and 8 or 17 hex digits) of the destination Region",
                request.subnet_id
            ),
        ));
    }
    if !is_instance_type(&request.instance_type) {
        return Err(invalid(
            "instanceType",
            format!(
                "{:?} is not an instance type such as t3.micro",
                request.instance_type
            ),
        ));
    }
    let groups = &request.security_group_ids;
    if groups.len() > MAX_SECURITY_GROUPS {
        return Err(invalid(
            "securityGroupIds",
            format!("at most {MAX_SECURITY_GROUPS} security groups"),
        ));
    }
    for (i, group) in groups.iter().enumerate() {
        if !is_resource_id(group, "sg") {
            return Err(invalid(
                "securityGroupIds",
                format!("{group:?} is not a security group id (sg- and 8 or 17 hex digits)"),
            ));
        }
        if groups[..i].contains(group) {
            return Err(invalid(
                "securityGroupIds",
                format!("{group} is named twice"),
            ));
        }
    }
    if let Some(minutes) = request.timeout_minutes {
        if !TIMEOUT_MINUTES.contains(&minutes) {
            return Err(invalid(
                "timeoutMinutes",
                format!(
                    "{minutes} is outside {} to {} minutes",
                    TIMEOUT_MINUTES.start(),
                    TIMEOUT_MINUTES.end()
                ),
            ));
        }
    }
    Ok(())
}

pub fn timeout_minutes(request: &BootCheckRequest) -> u32 {
    request.timeout_minutes.unwrap_or(DEFAULT_TIMEOUT_MINUTES)
}

/// RunInstances' `ClientToken`: one per replication, replica, run (`nonce`: the execution, so a
/// crash-retried step gets its own instance back) and launch.
pub fn launch_token(replication_id: &str, image_id: &str, nonce: &str, launch: u32) -> String {
    format!(
        "ferry-boot-{}",
        &hex_digest(&[
            "ferry-boot-v1",
            replication_id,
            image_id,
            nonce,
            &launch.to_string()
        ])[..40]
    )
}

/// The tags a boot-check instance (and its volumes and network interface) get at launch:
/// ferry's ownership, the replica it boots, and when the sweep may end it.
pub fn instance_tags(
    replication_id: &str,
    image_id: &str,
    launched_at: u64,
    timeout_minutes: u32,
) -> Vec<Tag> {
    let expires = launched_at + (u64::from(timeout_minutes) + SWEEP_GRACE_MINUTES) * 60;
    let mut tags = ownership_tags(replication_id).to_vec();
    tags.push(Tag::new(BOOT_CHECK_FOR, image_id));
    tags.push(Tag::new(EXPIRES_AT, rfc3339(expires)));
    tags.push(Tag::new("Name", format!("ferry boot check of {image_id}")));
    tags
}

/// The tags that find every boot-check instance of a replication.
pub fn boot_check_tags(replication_id: &str) -> Vec<Tag> {
    let mut tags = ownership_tags(replication_id).to_vec();
    tags.push(Tag::new(BOOT_CHECK_FOR, ""));
    tags
}

/// The tags that find every boot-check instance ferry launched, for the sweep.
pub fn sweep_tags() -> Vec<Tag> {
    vec![
        Tag::new(crate::rules::lineage::MANAGED_BY, "ferry"),
        Tag::new(BOOT_CHECK_FOR, ""),
    ]
}

/// Whether the sweep terminates a boot-check instance at `now`: it is still alive (not
/// `shutting-down` or `terminated`) past its `ferry:boot-check-expires-at`; without that tag,
/// past the longest limit a request may give, from its launch.
pub fn is_expired(instance: &InstanceInfo, now: u64) -> bool {
    if matches!(instance.state.as_str(), "shutting-down" | "terminated") {
        return false;
    }
    if instance.tags.iter().any(|t| t.key == EXPIRES_AT) {
        return time_tag_reached(&instance.tags, EXPIRES_AT, now);
    }
    let limit = (u64::from(*TIMEOUT_MINUTES.end()) + SWEEP_GRACE_MINUTES) * 60;
    instance
        .launched_at_ms
        .is_some_and(|ms| u64::try_from(ms / 1000).unwrap_or(0) + limit <= now)
}

/// The wait before the next look: a quarter of the time since launch, within the poll bounds
/// and at most [`MAX_WAIT_SECONDS`].
pub fn next_check_seconds(elapsed_seconds: u64, bounds: PollBounds) -> u64 {
    let max = bounds
        .max_seconds
        .min(MAX_WAIT_SECONDS)
        .max(bounds.min_seconds);
    poll_wait(
        elapsed_seconds,
        None,
        PollBounds {
            min_seconds: bounds.min_seconds,
            max_seconds: max,
        },
    )
}

/// What one look at the instance shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `pending`, or `running` with a status check still initializing.
    Booting,
    /// `running`, both status checks `ok`.
    Healthy,
    /// EC2 ended it at boot, with its reason (an unusable volume key, capacity).
    Refused(String),
    /// A status check `impaired`.
    Impaired { check: String, detail: String },
    /// Ended by someone else, or not found: no verdict from this instance.
    Vanished,
}

/// EC2's reason for a user-initiated end (a TerminateInstances, ferry's own or anyone's).
fn user_initiated(reason: Option<&str>) -> bool {
    reason.is_some_and(|r| r.starts_with("Client.UserInitiatedShutdown"))
}

/// The verdict of one look: the instance as DescribeInstances shows it (`None`: not found) and
/// its status checks (`None`: none reported yet).
pub fn verdict(instance: Option<&InstanceInfo>, checks: Option<&StatusChecks>) -> Verdict {
    let Some(instance) = instance else {
        return Verdict::Vanished;
    };
    match instance.state.as_str() {
        "pending" => Verdict::Booting,
        "running" => match checks {
            Some(c) if c.system == "impaired" || c.instance == "impaired" => {
                let check = if c.system == "impaired" {
                    "system"
                } else {
                    "instance"
                };
                Verdict::Impaired {
                    check: check.into(),
                    detail: c.detail.clone().unwrap_or_else(|| "impaired".into()),
                }
            }
            Some(c) if c.system == "ok" && c.instance == "ok" => Verdict::Healthy,
            _ => Verdict::Booting,
        },
        _ if user_initiated(instance.state_reason.as_deref()) => Verdict::Vanished,
        "shutting-down" | "terminated" | "stopping" | "stopped" => Verdict::Refused(
            instance
                .state_reason
                .clone()
                .unwrap_or_else(|| format!("{} with no reason given", instance.state)),
        ),
        other => Verdict::Refused(format!("in state {other}")),
    }
}

/// Every volume that is not encrypted under exactly `key_arn`; an instance with no volume at
/// all is a finding too (nothing was proven).
pub fn volume_findings(volumes: &[BootVolume], key_arn: &str) -> Vec<VolumeFinding> {
    if volumes.is_empty() {
        return vec![VolumeFinding {
            volume_id: "-".into(),
            device_name: "-".into(),
            problem: "no EBS volume attached".into(),
        }];
    }
    volumes
        .iter()
        .filter_map(|v| {
            let problem = match (&v.encrypted, v.kms_key_id.as_deref()) {
                (false, _) => "not encrypted".to_string(),
                (true, Some(key)) if key == key_arn => return None,
                (true, Some(key)) => format!("under {key}"),
                (true, None) => "encrypted under no reported key".to_string(),
            };
            Some(VolumeFinding {
                volume_id: v.volume_id.clone(),
                device_name: v.device_name.clone(),
                problem,
            })
        })
        .collect()
}

/// Whether a check launched at `launched_at` has run out of its `minutes` at `now`.
pub fn timed_out(launched_at: u64, now: u64, minutes: u32) -> bool {
    now >= launched_at + u64::from(minutes) * 60
}

/// The `ferry:boot-checked` tag value for the replica: when it passed, how fast, on what.
pub fn boot_checked_tag(
    passed_at: u64,
    instance_type: &str,
    seconds_to_running: u64,
    seconds_to_ok: u64,
) -> Tag {
    Tag::new(
        BOOT_CHECKED,
        format!(
            "passed {} on {instance_type}: running in {seconds_to_running} s, status ok in {seconds_to_ok} s",
            rfc3339(passed_at)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn request() -> BootCheckRequest {
        BootCheckRequest {
            subnet_id: "subnet-0123456789abcdef0".into(),
            instance_type: "t3.micro".into(),
            security_group_ids: vec!["sg-12345678".into()],
            timeout_minutes: None,
        }
    }

    fn instance(state: &str, reason: Option<&str>) -> InstanceInfo {
        InstanceInfo {
            instance_id: "i-1".into(),
            state: state.into(),
            state_reason: reason.map(str::to_string),
            ..Default::default()
        }
    }

    fn checks(system: &str, instance: &str) -> StatusChecks {
        StatusChecks {
            system: system.into(),
            instance: instance.into(),
            detail: None,
        }
    }

    fn rejected(change: impl Fn(&mut BootCheckRequest)) -> String {
        let mut request = request();
        change(&mut request);
        match check_boot_check(Some(&request), true).unwrap_err() {
            FerryError::InvalidRequest { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_names_a_subnet_an_instance_type_and_groups_as_aws_spells_them() {
        assert!(check_boot_check(Some(&request()), true).is_ok());
        assert!(check_boot_check(None, false).is_ok());
        assert_eq!(
            check_boot_check(Some(&request()), false)
                .unwrap_err()
                .name(),
            "InvalidRequest"
        );
        assert_eq!(
            rejected(|r| r.subnet_id = "subnet-xyz".into()),
            "destination.bootCheck.subnetId"
        );
        assert_eq!(
            rejected(|r| r.instance_type = "large".into()),
            "destination.bootCheck.instanceType"
        );
        assert_eq!(
            rejected(|r| r.security_group_ids = vec!["sg-12345678".into(); 2]),
            "destination.bootCheck.securityGroupIds"
        );
        assert_eq!(
            rejected(|r| r.security_group_ids = vec!["default".into()]),
            "destination.bootCheck.securityGroupIds"
        );
        assert_eq!(
            rejected(|r| r.timeout_minutes = Some(1)),
            "destination.bootCheck.timeoutMinutes"
        );
        assert!(is_instance_type("m7i-flex.large"));
    }

    #[test]
    fn a_look_at_the_instance_tells_booting_healthy_impaired_refused_and_vanished_apart() {
        assert_eq!(
            verdict(Some(&instance("pending", None)), None),
            Verdict::Booting
        );
        let running = instance("running", None);
        assert_eq!(verdict(Some(&running), None), Verdict::Booting);
        assert_eq!(
            verdict(Some(&running), Some(&checks("ok", "initializing"))),
            Verdict::Booting
        );
        assert_eq!(
            verdict(Some(&running), Some(&checks("ok", "ok"))),
            Verdict::Healthy
        );
        assert!(matches!(
            verdict(Some(&running), Some(&checks("ok", "impaired"))),
            Verdict::Impaired { check, .. } if check == "instance"
        ));
        let kms =
            "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state";
        assert_eq!(
            verdict(Some(&instance("terminated", Some(kms))), None),
            Verdict::Refused(kms.into())
        );
        let user = "Client.UserInitiatedShutdown: User initiated shutdown";
        assert_eq!(
            verdict(Some(&instance("shutting-down", Some(user))), None),
            Verdict::Vanished
        );
        assert_eq!(verdict(None, None), Verdict::Vanished);
    }

    #[test]
    fn every_volume_must_be_under_exactly_the_destination_key() {
        let volume = |id: &str, encrypted: bool, key: Option<&str>| BootVolume {
            volume_id: id.into(),
            device_name: "/dev/xvda".into(),
            encrypted,
            kms_key_id: key.map(str::to_string),
        };
        assert!(volume_findings(&[volume("vol-1", true, Some(KEY))], KEY).is_empty());
        let findings = volume_findings(
            &[
                volume("vol-1", true, Some(KEY)),
                volume(
                    "vol-2",
                    true,
                    Some("arn:aws:kms:us-west-2:111122223333:key/other"),
                ),
                volume("vol-3", false, None),
            ],
            KEY,
        );
        assert_eq!(
            findings
                .iter()
                .map(|f| f.volume_id.as_str())
                .collect::<Vec<_>>(),
            ["vol-2", "vol-3"]
        );
        assert_eq!(
            volume_findings(&[], KEY).len(),
            1,
            "no volume proves nothing"
        );
    }

    #[test]
    fn the_token_is_stable_per_run_and_launch_and_fits_run_instances() {
        let token = launch_token("fr-1", "ami-1", "exec-1", 1);
        assert_eq!(token, launch_token("fr-1", "ami-1", "exec-1", 1));
        assert_ne!(token, launch_token("fr-1", "ami-1", "exec-1", 2));
        assert_ne!(token, launch_token("fr-1", "ami-1", "exec-2", 1));
        assert!(token.len() <= 64 && token.is_ascii());
    }

    #[test]
    fn the_sweep_ends_only_live_instances_past_their_limit() {
        let now = 1_764_547_200;
        let tags = instance_tags("fr-1", "ami-1", now, 15);
        let mut live = instance("running", None);
        live.tags = tags;
        assert!(!is_expired(&live, now + 29 * 60));
        assert!(is_expired(&live, now + 30 * 60));
        let mut ended = live.clone();
        ended.state = "terminated".into();
        assert!(!is_expired(&ended, now + 86_400));
        let mut untagged = instance("running", None);
        untagged.launched_at_ms = Some(now as i64 * 1000);
        assert!(!is_expired(&untagged, now + 120 * 60));
        assert!(is_expired(&untagged, now + 135 * 60));
    }

    #[test]
    fn waits_stay_short_while_an_instance_boots() {
        let bounds = PollBounds::default();
        assert_eq!(next_check_seconds(0, bounds), 30);
        assert_eq!(next_check_seconds(600, bounds), 30);
        let quick = PollBounds {
            min_seconds: 1,
            max_seconds: 2,
        };
        assert_eq!(next_check_seconds(0, quick), 1);
        assert_eq!(next_check_seconds(100, quick), 2);
        assert!(timed_out(0, 15 * 60, 15) && !timed_out(0, 15 * 60 - 1, 15));
    }
}
