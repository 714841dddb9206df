//! Lineage tags (namespace `ferry:`), deterministic ids and tokens.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::document::{Options, Replication};
use crate::ports::{ImageInfo, Tag};

pub const NAMESPACE: &str = "ferry:";
/// Ownership: ferry only ever cleans up resources carrying this tag with value `ferry`.
pub const MANAGED_BY: &str = "ferry:managed-by";
pub const REPLICATION_ID: &str = "ferry:replication-id";
pub const SOURCE_REGION: &str = "ferry:source-region";
pub const SOURCE_ID: &str = "ferry:source-id";
pub const SOURCE_SNAPSHOT_ID: &str = "ferry:source-snapshot-id";
pub const SOURCE_KEY_ARN: &str = "ferry:source-key-arn";
pub const DESTINATION_REGION: &str = "ferry:destination-region";
pub const KEY_ARN: &str = "ferry:key-arn";
pub const KEY_ALIAS: &str = "ferry:key-alias";
pub const BATCH: &str = "ferry:batch";
pub const VERIFIED_AT: &str = "ferry:verified-at";
pub const EXECUTION_ID: &str = "ferry:execution-id";
/// The options a copy was started with ([`copy_options`]), tagged at creation.
pub const COPY_OPTIONS: &str = "ferry:copy-options";
/// On the replica, once its evidence is published: the `ferry:verified-at` it was published for.
/// A retried tag-lineage finds it and does not publish the same evidence again.
pub const EVIDENCE_PUBLISHED: &str = "ferry:evidence-published";
/// On an AMI replica wire-destination pointed an SSM parameter at: the parameter's name.
pub const SSM_PARAMETER: &str = "ferry:ssm-parameter";

pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// Why a value cannot be a tag value; each message says what AWS accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagValueError {
    #[error("{chars} characters; tag values hold at most {MAX_TAG_VALUE_CHARS}")]
    TooLong { chars: usize },
    #[error("the aws: prefix is reserved by AWS")]
    ReservedPrefix,
    #[error("character {character:?} is not allowed in a tag value (letters, digits, spaces and + - = . _ : / @)")]
    CharacterNotAllowed { character: char },
}

/// AWS's tag value rule: at most 256 characters; letters, digits, spaces and `+ - = . _ : / @`;
/// no `aws:` prefix (reserved).
pub fn check_tag_value(value: &str) -> Result<(), TagValueError> {
    let chars = value.chars().count();
    if chars > MAX_TAG_VALUE_CHARS {
        return Err(TagValueError::TooLong { chars });
    }
    if value.to_ascii_lowercase().starts_with("aws:") {
        return Err(TagValueError::ReservedPrefix);
    }
    match value
        .chars()
        .find(|c| !(c.is_alphanumeric() || *c == ' ' || "+-=._:/@".contains(*c)))
    {
        Some(character) => Err(TagValueError::CharacterNotAllowed { character }),
        None => Ok(()),
    }
}

pub(crate) fn hex_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Same (source, destination Region, resolved key) → same id, however the key was named.
pub fn replication_id(
    source_region: &str,
    source_id: &str,
    destination_region: &str,
    key_arn: &str,
) -> String {
    format!(
        "fr-{}",
        &hex_digest(&[
            "ferry-v1",
            source_region,
            source_id,
            destination_region,
            key_arn
        ])[..20]
    )
}

/// CopyImage ClientToken (≤ 64 ASCII characters), derived from the replication id and attempt.
pub fn client_token(replication_id: &str, attempt: u32) -> String {
    format!(
        "ferry-{}",
        &hex_digest(&["ferry-token-v1", replication_id, &attempt.to_string()])[..48]
    )
}

/// The tags that make a resource this replication's own: `ferry:managed-by=ferry` and its id.
pub fn ownership_tags(replication_id: &str) -> [Tag; 2] {
    [
        Tag::new(MANAGED_BY, "ferry"),
        Tag::new(REPLICATION_ID, replication_id),
    ]
}

/// Ownership: a resource ferry may delete carries every one of [`ownership_tags`], as read from
/// the resource itself (never from a document).
pub fn owned_by_replication(tags: &[Tag], replication_id: &str) -> bool {
    ownership_tags(replication_id)
        .iter()
        .all(|owned| tags.contains(owned))
}

/// Tags derived only from the replication's identity (source, destination Region, key ARN):
/// the same for every duplicate request however it names the key, so copies are tagged at
/// creation without breaking CopyImage's ClientToken idempotency.
pub fn identity_tags(document: &Replication, replication_id: &str, key_arn: &str) -> Vec<Tag> {
    let mut tags = ownership_tags(replication_id).to_vec();
    tags.extend([
        Tag::new(SOURCE_REGION, &document.source.region),
        Tag::new(SOURCE_ID, document.source_id()),
        Tag::new(DESTINATION_REGION, &document.destination.region),
        Tag::new(KEY_ARN, key_arn),
        Tag::new(COPY_OPTIONS, copy_options(&document.options)),
    ]);
    if let Some(group) = &document.group {
        tags.push(Tag::new(crate::rules::retention::GROUP, group));
    }
    tags
}

/// The options that shape a copy (AWS cannot change them once it started): the completion
/// duration of a time-based copy and whether the AMI's own tags are copied, e.g.
/// `completionDurationMinutes=standard copySourceTags=false`. Every duplicate of a request
/// writes the same value, so CopyImage's ClientToken idempotency holds.
pub fn copy_options(options: &Options) -> String {
    format!(
        "completionDurationMinutes={} copySourceTags={}",
        options
            .completion_duration_minutes
            .map_or("standard".to_string(), |m| m.to_string()),
        options.copy_source_tags.unwrap_or(false)
    )
}

/// Why a found copy cannot serve a request: it was started with other copy options (its
/// [`COPY_OPTIONS`] tag). A copy tagged before ferry recorded options serves any request.
/// CopySnapshot has no ClientToken to refuse it (CopyImage's `IdempotentParameterMismatch`),
/// so ferry compares the tag itself.
pub fn options_conflict(copy_tags: &[Tag], options: &Options) -> Option<String> {
    let recorded = copy_tags.iter().find(|t| t.key == COPY_OPTIONS)?;
    let requested = copy_options(options);
    (recorded.value != requested).then(|| {
        format!(
            "the copy was started with {}; this request asks for {requested}",
            recorded.value
        )
    })
}

/// The full lineage every verified replica carries: identity, plus the alias and batch as named.
pub fn lineage_tags(
    document: &Replication,
    replication_id: &str,
    key_arn: &str,
    alias: Option<&str>,
) -> Vec<Tag> {
    let mut tags = identity_tags(document, replication_id, key_arn);
    if let Some(alias) = alias {
        tags.push(Tag::new(KEY_ALIAS, alias));
    }
    if let Some(batch) = &document.options.batch {
        tags.push(Tag::new(BATCH, batch));
    }
    if let Some(execution) = document
        .execution_id
        .as_deref()
        .filter(|e| e.len() <= MAX_TAG_VALUE_CHARS)
    {
        tags.push(Tag::new(EXECUTION_ID, execution));
    }
    tags
}

/// A source as `region/id`, the form errors and audit flags show it in (`?` for a missing part).
pub fn source_label(region: Option<&str>, id: Option<&str>) -> String {
    format!("{}/{}", region.unwrap_or("?"), id.unwrap_or("?"))
}

/// The source AWS itself recorded for an AMI (DescribeImages `SourceImageRegion` and
/// `SourceImageId`, set by CopyImage, CreateImage and CreateRestoreImageTask) as `region/id`,
/// or `none recorded` (RegisterImage, or an AMI older than the record).
pub fn aws_recorded_source(image: &ImageInfo) -> String {
    match (&image.source_image_region, &image.source_image_id) {
        (None, None) => "none recorded".into(),
        (region, id) => source_label(region.as_deref(), id.as_deref()),
    }
}

/// True when AWS's own lineage record of `image` names exactly `region`/`image_id` as its
/// source. Tags can be written by anyone with `ec2:CreateTags`; this record cannot. An AMI
/// whose source AWS did not record does not agree (fail-closed).
pub fn aws_lineage_agrees(image: &ImageInfo, region: &str, image_id: &str) -> bool {
    image.source_image_region.as_deref() == Some(region)
        && image.source_image_id.as_deref() == Some(image_id)
}

/// True when `tags` (the replica's) say the evidence of the verification at `verified_at` (RFC
/// 3339) was already published.
pub fn evidence_published(tags: &[Tag], verified_at: &str) -> bool {
    tags.contains(&Tag::new(EVIDENCE_PUBLISHED, verified_at))
}

pub fn as_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|tag| (tag.key.clone(), tag.value.clone()))
        .collect()
}

/// Whether the time tag `key` among `tags` is no later than `now`. ferry writes times as
/// fixed-width RFC 3339 ([`rfc3339`]), so they compare as text.
pub fn time_tag_reached(tags: &[Tag], key: &str, now: u64) -> bool {
    tags.iter()
        .any(|t| t.key == key && t.value.as_str() <= rfc3339(now).as_str())
}

/// RFC 3339 UTC time for a Unix second (days-from-civil inverse, no calendar crate needed).
pub fn rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let seconds_of_day = unix_seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day % 3600 / 60,
        seconds_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_replication_gets_the_same_id_and_token() {
        let a = replication_id("us-east-1", "ami-1", "us-west-2", "arn:k");
        assert_eq!(
            a,
            replication_id("us-east-1", "ami-1", "us-west-2", "arn:k")
        );
        assert_ne!(
            a,
            replication_id("us-east-1", "ami-1", "us-west-2", "arn:other")
        );
        assert_ne!(
            a,
            replication_id("us-east-1", "ami-1", "eu-west-1", "arn:k")
        );
        let token = client_token(&a, 1);
        assert!(token.len() <= 64 && token.is_ascii());
        assert_eq!(token, client_token(&a, 1));
        assert_ne!(
            token,
            client_token(&a, 2),
            "a rerun after a failed copy gets a new token"
        );
    }

    #[test]
    fn lineage_tags_are_namespaced_and_valid_tag_values() {
        let document = Replication::from_json(json!({
            "source": {"region": "us-east-1", "imageId": "ami-0123456789abcdef0"},
            "destination": {"region": "us-west-2", "kmsKeyId": "alias/prod"},
            "options": {"batch": "nightly"}
        }))
        .unwrap();
        let tags = lineage_tags(
            &document,
            "fr-1",
            "arn:aws:kms:us-west-2:111122223333:key/k",
            Some("alias/prod"),
        );
        let map = as_map(&tags);
        assert_eq!(map[MANAGED_BY], "ferry");
        assert_eq!(map[SOURCE_ID], "ami-0123456789abcdef0");
        assert_eq!(map[BATCH], "nightly");
        assert_eq!(map[KEY_ALIAS], "alias/prod");
        assert!(tags.iter().all(|t| t.key.starts_with(NAMESPACE)
            && t.key.len() <= 128
            && check_tag_value(&t.value).is_ok()));
    }

    #[test]
    fn a_tag_value_aws_would_refuse_is_refused_naming_the_rule_it_breaks() {
        assert_eq!(
            check_tag_value(&"x".repeat(257)),
            Err(TagValueError::TooLong { chars: 257 })
        );
        assert_eq!(
            check_tag_value("AWS:reserved"),
            Err(TagValueError::ReservedPrefix)
        );
        assert_eq!(
            check_tag_value("semi;colon"),
            Err(TagValueError::CharacterNotAllowed { character: ';' })
        );
        assert_eq!(
            check_tag_value(&"é".repeat(256)),
            Ok(()),
            "characters, not bytes"
        );
        assert_eq!(check_tag_value("dr-2026-11 nightly/eu@ops"), Ok(()));
    }

    #[test]
    fn only_resources_tagged_as_this_replications_are_owned() {
        let ours = [
            Tag::new(MANAGED_BY, "ferry"),
            Tag::new(REPLICATION_ID, "fr-1"),
        ];
        assert!(owned_by_replication(&ours, "fr-1"));
        assert!(
            !owned_by_replication(&ours, "fr-2"),
            "another replication's copy"
        );
        assert!(
            !owned_by_replication(&ours[1..], "fr-1"),
            "no ownership tag"
        );
        assert!(!owned_by_replication(
            &[
                Tag::new(MANAGED_BY, "someone"),
                Tag::new(REPLICATION_ID, "fr-1")
            ],
            "fr-1"
        ));
        assert!(!owned_by_replication(&[], "fr-1"), "an untagged look-alike");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn only_the_source_aws_recorded_for_the_copy_agrees_with_a_claimed_source() {
        let copied = ImageInfo {
            image_id: "ami-replica".into(),
            source_image_id: Some("ami-source".into()),
            source_image_region: Some("us-east-1".into()),
            ..Default::default()
        };
        assert!(aws_lineage_agrees(&copied, "us-east-1", "ami-source"));
        assert!(!aws_lineage_agrees(&copied, "us-east-1", "ami-other"));
        assert!(
            !aws_lineage_agrees(&copied, "eu-west-1", "ami-source"),
            "the same id in another Region is another AMI"
        );
        let registered = ImageInfo {
            image_id: "ami-look-alike".into(),
            ..Default::default()
        };
        assert!(
            !aws_lineage_agrees(&registered, "us-east-1", "ami-source"),
            "no record is no proof"
        );
        assert_eq!(aws_recorded_source(&copied), "us-east-1/ami-source");
        assert_eq!(aws_recorded_source(&registered), "none recorded");
    }

    #[test]
    fn evidence_counts_as_published_only_for_the_same_verification() {
        let tags = [
            Tag::new(MANAGED_BY, "ferry"),
            Tag::new(EVIDENCE_PUBLISHED, "2026-11-18T11:06:40Z"),
        ];
        assert!(evidence_published(&tags, "2026-11-18T11:06:40Z"));
        assert!(
            !evidence_published(&tags, "2026-11-19T08:00:00Z"),
            "a new verification is new evidence"
        );
        assert!(!evidence_published(&tags[..1], "2026-11-18T11:06:40Z"));
    }
}
