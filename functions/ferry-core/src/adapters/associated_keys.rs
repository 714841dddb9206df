//! Reads `Snapshot.AssociatedKmsKeys` from DescribeSnapshots' raw response.
//!
//! EC2's `AssociateKmsKeyId` associates an additional KMS key with an encrypted snapshot ("a
//! second, independent way to access the snapshot's data", EC2 API reference), and
//! DescribeSnapshots lists those keys as `associatedKmsKeySet` (botocore 1.44's model:
//! `<associatedKmsKeySet><item><kmsKeyId>ARN</kmsKeyId></item></associatedKmsKeySet>` inside
//! each `<snapshotSet><item>`). aws-sdk-ec2 1.274 does not model the field, so its parser skips
//! it. The choice: a per-call interceptor ([`AssociatedKeysReader`]) whose
//! `read_after_deserialization` hook parses the same response body the SDK just parsed (the
//! orchestrator has buffered it by then) with the SDK's own XML decoder, and hands the sets to
//! the adapter. Fail-closed: a successful call whose body cannot be read or parsed fails the call
//! instead of reading as "no associated keys". Once the SDK models the field, this goes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_xml::decode::{try_data, Document, ScopedDecoder, XmlDecodeError};

/// Snapshot id → the ARNs of its associated KMS keys (snapshots without any are absent).
pub type AssociatedKeys = BTreeMap<String, Vec<String>>;

/// Parses a DescribeSnapshots response body (EC2's query-protocol XML).
pub fn parse_describe_snapshots(body: &[u8]) -> Result<AssociatedKeys, XmlDecodeError> {
    let mut document = Document::try_from(body)?;
    let mut root = document.root_element()?;
    if !root.start_el().matches("DescribeSnapshotsResponse") {
        return Err(XmlDecodeError::custom(format!(
            "expected DescribeSnapshotsResponse, got {:?}",
            root.start_el()
        )));
    }
    let mut found = AssociatedKeys::new();
    while let Some(mut tag) = root.next_tag() {
        if !tag.start_el().matches("snapshotSet") {
            continue;
        }
        while let Some(mut item) = tag.next_tag() {
            if item.start_el().matches("item") {
                let (snapshot_id, keys) = snapshot_item(&mut item)?;
                if let (Some(snapshot_id), false) = (snapshot_id, keys.is_empty()) {
                    found.insert(snapshot_id, keys);
                }
            }
        }
    }
    Ok(found)
}

/// One `<snapshotSet><item>`: its `snapshotId` and the `kmsKeyId` of each associated key.
fn snapshot_item(
    item: &mut ScopedDecoder,
) -> Result<(Option<String>, Vec<String>), XmlDecodeError> {
    let (mut snapshot_id, mut keys) = (None, vec![]);
    while let Some(mut field) = item.next_tag() {
        if field.start_el().matches("snapshotId") {
            snapshot_id = Some(try_data(&mut field)?.to_string());
        } else if field.start_el().matches("associatedKmsKeySet") {
            while let Some(mut key) = field.next_tag() {
                while let Some(mut member) = key.next_tag() {
                    if member.start_el().matches("kmsKeyId") {
                        keys.push(try_data(&mut member)?.to_string());
                    }
                }
            }
        }
    }
    Ok((snapshot_id, keys))
}

/// The interceptor of one DescribeSnapshots call: keeps what the last attempt's successful
/// response said (a retried attempt replaces it).
#[derive(Debug, Clone, Default)]
pub struct AssociatedKeysReader {
    read: Arc<Mutex<Option<AssociatedKeys>>>,
}

impl AssociatedKeysReader {
    /// What the call's response said; `None` if no successful response was read.
    pub fn take(&self) -> Option<AssociatedKeys> {
        self.read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

impl Intercept for AssociatedKeysReader {
    fn name(&self) -> &'static str {
        "FerryAssociatedKmsKeysReader"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context.output_or_error().is_err() {
            return Ok(());
        }
        let body = context.response().body().bytes().ok_or(
            "DescribeSnapshots: the response body was not buffered, associatedKmsKeySet unread",
        )?;
        let parsed = parse_describe_snapshots(body)?;
        *self
            .read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(parsed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DescribeSnapshots answer as AWS (and the local AWS, row 9) sends it.
    const ANSWER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
  <snapshotSet>
    <item>
      <snapshotId>snap-1</snapshotId>
      <status>completed</status>
      <encrypted>true</encrypted>
      <kmsKeyId>arn:aws:kms:us-west-2:111122223333:key/own</kmsKeyId>
      <associatedKmsKeySet>
        <item><kmsKeyId>arn:aws:kms:us-west-2:111122223333:key/extra-1</kmsKeyId></item>
        <item><kmsKeyId>arn:aws:kms:us-west-2:111122223333:key/extra-2</kmsKeyId></item>
      </associatedKmsKeySet>
      <tagSet><item><key>ferry:managed-by</key><value>ferry</value></item></tagSet>
    </item>
    <item>
      <snapshotId>snap-2</snapshotId>
      <kmsKeyId>arn:aws:kms:us-west-2:111122223333:key/own</kmsKeyId>
      <tagSet><item><key>snapshotId</key><value>snap-forged</value></item></tagSet>
    </item>
  </snapshotSet>
  <nextToken>page-2</nextToken>
</DescribeSnapshotsResponse>"#;

    #[test]
    fn associated_keys_are_read_per_snapshot_from_the_wire_format() {
        let keys = parse_describe_snapshots(ANSWER.as_bytes()).unwrap();
        assert_eq!(
            keys,
            AssociatedKeys::from([(
                "snap-1".to_string(),
                vec![
                    "arn:aws:kms:us-west-2:111122223333:key/extra-1".to_string(),
                    "arn:aws:kms:us-west-2:111122223333:key/extra-2".to_string()
                ]
            )])
        );
    }

    #[test]
    fn a_body_that_is_not_a_describe_snapshots_answer_is_an_error() {
        assert!(parse_describe_snapshots(b"<DescribeImagesResponse/>").is_err());
        assert!(parse_describe_snapshots(b"not xml").is_err());
    }
}
