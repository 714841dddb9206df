//! Which listed sources a run replicates: those the policy selects by tag, never a copy ferry
//! made, and (when the policy requires it) only encrypted ones; not a snapshot that backs a
//! selected AMI (CopyImage copies it); and which replicas ferry already verified.

use std::collections::BTreeSet;

use crate::document::SourceKind;
use crate::error::FerryError;
use crate::plan::Skipped;
use crate::policy::Policy;
use crate::ports::{ImageInfo, SnapshotInfo, Tag};
use crate::rules::lineage;

/// A selected source, with the number of snapshot copies replicating it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub region: String,
    pub kind: SourceKind,
    pub id: String,
    pub snapshot_copies: usize,
}

/// One source as EC2 listed it: its tags, and each of its snapshots with whether it is encrypted.
pub struct Listed<'a> {
    pub region: &'a str,
    pub kind: SourceKind,
    pub id: &'a str,
    pub tags: &'a [Tag],
    pub snapshots: Vec<(&'a str, bool)>,
}

impl<'a> Listed<'a> {
    /// An image with the snapshots of its block-device mappings.
    pub fn image(region: &'a str, image: &'a ImageInfo) -> Self {
        Listed {
            region,
            kind: SourceKind::Image,
            id: &image.image_id,
            tags: &image.tags,
            snapshots: image
                .snapshots
                .iter()
                .map(|s| (s.snapshot_id.as_str(), s.encrypted))
                .collect(),
        }
    }

    /// A snapshot on its own.
    pub fn snapshot(region: &'a str, snapshot: &'a SnapshotInfo) -> Self {
        Listed {
            region,
            kind: SourceKind::Snapshot,
            id: &snapshot.snapshot_id,
            tags: &snapshot.tags,
            snapshots: vec![(snapshot.snapshot_id.as_str(), snapshot.encrypted)],
        }
    }

    /// `images`, then `snapshots`, of one Region.
    pub fn all(
        region: &'a str,
        images: &'a [ImageInfo],
        snapshots: &'a [SnapshotInfo],
    ) -> impl Iterator<Item = Listed<'a>> {
        images
            .iter()
            .map(move |i| Listed::image(region, i))
            .chain(snapshots.iter().map(move |s| Listed::snapshot(region, s)))
    }
}

/// A selected source with unencrypted snapshots, where the policy requires encrypted sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotEncrypted {
    pub region: String,
    pub id: String,
    pub snapshots: Vec<String>,
}

impl From<NotEncrypted> for FerryError {
    fn from(source: NotEncrypted) -> Self {
        FerryError::SourceNotEncrypted {
            id: source.id,
            snapshots: source.snapshots.join(", "),
        }
    }
}

impl From<NotEncrypted> for Skipped {
    fn from(source: NotEncrypted) -> Self {
        Skipped {
            source: format!("{}/{}", source.region, source.id),
            reason: FerryError::from(source).to_string(),
        }
    }
}

/// What the policy decides for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspection {
    Selected(Candidate),
    Skipped(Skipped),
    /// Selected, but refused: it has unencrypted snapshots and the policy requires encryption.
    NotEncrypted(NotEncrypted),
}

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

/// Applies the policy to one listed source: no copies of copies, selection by tag, and (when
/// the policy requires it) encrypted snapshots only.
pub fn inspect(policy: &Policy, source: &Listed) -> Inspection {
    let skip = |reason: String| {
        Inspection::Skipped(Skipped {
            source: format!("{}/{}", source.region, source.id),
            reason,
        })
    };
    if tag(source.tags, lineage::MANAGED_BY) == Some("ferry") {
        let origin = tag(source.tags, lineage::SOURCE_ID).unwrap_or("?");
        return skip(format!(
            "a copy ferry made (of {origin}): copies are never replicated again"
        ));
    }
    if !policy.selects(source.tags) {
        let values = &policy.selection.tag_values;
        let accepted = if values.is_empty() {
            String::new()
        } else {
            format!(" with a value in [{}]", values.join(", "))
        };
        return skip(format!(
            "not selected: it lacks the tag {}{accepted}",
            policy.selection.tag_key
        ));
    }
    let unencrypted: Vec<String> = source
        .snapshots
        .iter()
        .filter(|(_, encrypted)| !encrypted)
        .map(|(id, _)| id.to_string())
        .collect();
    if policy.require_encrypted_source && !unencrypted.is_empty() {
        return Inspection::NotEncrypted(NotEncrypted {
            region: source.region.into(),
            id: source.id.into(),
            snapshots: unencrypted,
        });
    }
    Inspection::Selected(Candidate {
        region: source.region.into(),
        kind: source.kind,
        id: source.id.into(),
        snapshot_copies: source.snapshots.len().max(1),
    })
}

/// The policy applied to listed sources.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    pub candidates: Vec<Candidate>,
    /// Every source left out, with its reason, in listing order: refused ones included.
    pub skipped: Vec<Skipped>,
    /// The first source refused as unencrypted, if one was.
    pub not_encrypted: Option<NotEncrypted>,
}

/// Inspects every listed source.
pub fn select<'a>(policy: &Policy, listed: impl IntoIterator<Item = Listed<'a>>) -> Selection {
    let mut selection = Selection::default();
    for source in listed {
        match inspect(policy, &source) {
            Inspection::Selected(candidate) => selection.candidates.push(candidate),
            Inspection::Skipped(skip) => selection.skipped.push(skip),
            Inspection::NotEncrypted(refused) => {
                selection.skipped.push(refused.clone().into());
                selection.not_encrypted.get_or_insert(refused);
            }
        }
    }
    selection
}

/// Only available images and completed snapshots are sources, or verified replicas.
pub fn settled(
    images: Vec<ImageInfo>,
    snapshots: Vec<SnapshotInfo>,
) -> (Vec<ImageInfo>, Vec<SnapshotInfo>) {
    (
        images
            .into_iter()
            .filter(|i| i.state == "available")
            .collect(),
        snapshots
            .into_iter()
            .filter(|s| s.state == "completed")
            .collect(),
    )
}

/// The snapshots behind `images`' block-device mappings: CopyImage copies them, so they are
/// never replicated on their own.
pub fn backing_snapshots(images: &[ImageInfo]) -> BTreeSet<String> {
    images
        .iter()
        .flat_map(|image| image.snapshots.iter().map(|s| s.snapshot_id.clone()))
        .collect()
}

/// What one source Region holds that the policy selects: its images, and its snapshots that
/// do not back one of those images.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceListing {
    pub region: String,
    pub images: Vec<ImageInfo>,
    pub snapshots: Vec<SnapshotInfo>,
    /// How many listed snapshots back one of `images`, left out.
    pub backing_dropped: usize,
}

impl SourceListing {
    /// The listing of `region`, without the snapshots that back one of its images.
    pub fn new(region: &str, images: Vec<ImageInfo>, snapshots: Vec<SnapshotInfo>) -> Self {
        let backing = backing_snapshots(&images);
        let (dropped, snapshots): (Vec<_>, Vec<_>) = snapshots
            .into_iter()
            .partition(|s| backing.contains(&s.snapshot_id));
        SourceListing {
            region: region.to_string(),
            images,
            snapshots,
            backing_dropped: dropped.len(),
        }
    }

    pub fn listed(&self) -> impl Iterator<Item = Listed<'_>> {
        Listed::all(&self.region, &self.images, &self.snapshots)
    }
}

/// `(destination Region, source Region, source id)` of every verified replica ferry made.
pub type VerifiedReplicas = BTreeSet<(String, String, String)>;

/// The verified replicas in `destination`, read from the lineage tags of what it lists.
pub fn verified_replicas<'a>(
    destination: &str,
    replica_tags: impl IntoIterator<Item = &'a [Tag]>,
) -> VerifiedReplicas {
    replica_tags
        .into_iter()
        .filter_map(|tags| {
            Some((
                destination.to_string(),
                tag(tags, lineage::SOURCE_REGION)?.to_string(),
                tag(tags, lineage::SOURCE_ID)?.to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ports::DeviceSnapshot;

    pub(crate) fn policy(max: usize) -> Policy {
        Policy::parse(&format!(
            r#"{{"selection": {{"tagKey": "dr"}}, "requireEncryptedSource": true, "maxCopiesInFlightPerRegion": {max},
               "destinations": [{{"region": "us-west-2", "kmsKeyId": "alias/a"}}, {{"region": "us-east-1", "kmsKeyId": "alias/b"}}]}}"#
        ))
        .unwrap()
    }

    pub(crate) fn candidate(id: &str, copies: usize) -> Candidate {
        Candidate {
            region: "us-east-1".into(),
            kind: SourceKind::Image,
            id: id.into(),
            snapshot_copies: copies,
        }
    }

    pub(crate) fn image(id: &str, tags: &[(&str, &str)], snapshots: &[(&str, bool)]) -> ImageInfo {
        ImageInfo {
            image_id: id.into(),
            state: "available".into(),
            tags: tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
            snapshots: snapshots
                .iter()
                .map(|(s, encrypted)| DeviceSnapshot {
                    device_name: "/dev/xvda".into(),
                    snapshot_id: (*s).into(),
                    encrypted: *encrypted,
                })
                .collect(),
            ..Default::default()
        }
    }

    pub(crate) fn snapshot(id: &str, state: &str, tags: &[(&str, &str)]) -> SnapshotInfo {
        SnapshotInfo {
            snapshot_id: id.into(),
            state: state.into(),
            encrypted: true,
            tags: tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn copies_ferry_made_and_unselected_sources_are_skipped_and_unencrypted_ones_are_named() {
        let policy = policy(20);
        let copy = image(
            "ami-1",
            &[("dr", "x"), (lineage::MANAGED_BY, "ferry")],
            &[("snap-1", true)],
        );
        let plain = image("ami-2", &[], &[("snap-2", true)]);
        let unencrypted = image(
            "ami-3",
            &[("dr", "x")],
            &[("snap-3", false), ("snap-4", true)],
        );
        let good = image(
            "ami-4",
            &[("dr", "x")],
            &[("snap-5", true), ("snap-6", true)],
        );
        let decide = |i: &ImageInfo| inspect(&policy, &Listed::image("us-east-1", i));
        assert!(
            matches!(decide(&copy), Inspection::Skipped(s) if s.reason.contains("copies are never replicated"))
        );
        assert!(
            matches!(decide(&plain), Inspection::Skipped(s) if s.reason.contains("lacks the tag dr"))
        );
        assert_eq!(
            decide(&unencrypted),
            Inspection::NotEncrypted(NotEncrypted {
                region: "us-east-1".into(),
                id: "ami-3".into(),
                snapshots: vec!["snap-3".into()],
            })
        );
        assert_eq!(decide(&good), Inspection::Selected(candidate("ami-4", 2)));
    }

    #[test]
    fn a_selection_skips_sources_in_listing_order_and_names_the_first_refused_as_unencrypted() {
        let images = [
            image("ami-1", &[], &[("snap-1", true)]),
            image("ami-2", &[("dr", "x")], &[("snap-2", false)]),
            image("ami-3", &[("dr", "x")], &[("snap-3", true)]),
            image("ami-4", &[("dr", "x")], &[("snap-4", false)]),
        ];
        let selection = select(&policy(20), Listed::all("us-east-1", &images, &[]));
        assert_eq!(selection.candidates, [candidate("ami-3", 1)]);
        let skipped: Vec<&str> = selection
            .skipped
            .iter()
            .map(|s| s.source.as_str())
            .collect();
        assert_eq!(
            skipped,
            ["us-east-1/ami-1", "us-east-1/ami-2", "us-east-1/ami-4"]
        );
        assert!(selection.skipped[1].reason.contains("snap-2"));
        let error = FerryError::from(selection.not_encrypted.unwrap());
        assert!(
            matches!(&error, FerryError::SourceNotEncrypted { id, snapshots } if id == "ami-2" && snapshots == "snap-2"),
            "{error}"
        );
    }

    #[test]
    fn snapshots_backing_a_listed_image_are_dropped_from_the_listing() {
        let images = vec![
            image("ami-1", &[], &[("snap-1", true), ("snap-2", true)]),
            image("ami-2", &[], &[("snap-3", true)]),
        ];
        assert_eq!(
            backing_snapshots(&images),
            BTreeSet::from(["snap-1".into(), "snap-2".into(), "snap-3".into()])
        );
        let listing = SourceListing::new(
            "us-east-1",
            images,
            vec![
                snapshot("snap-1", "completed", &[]),
                snapshot("snap-9", "completed", &[]),
            ],
        );
        assert_eq!(listing.backing_dropped, 1);
        let ids: Vec<&str> = listing.listed().map(|l| l.id).collect();
        assert_eq!(ids, ["ami-1", "ami-2", "snap-9"]);
    }

    #[test]
    fn only_available_images_and_completed_snapshots_are_settled() {
        let mut pending = image("ami-2", &[], &[]);
        pending.state = "pending".into();
        let (images, snapshots) = settled(
            vec![image("ami-1", &[], &[]), pending],
            vec![
                snapshot("snap-1", "pending", &[]),
                snapshot("snap-2", "completed", &[]),
            ],
        );
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].image_id, "ami-1");
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0].snapshot_id, "snap-2");
    }

    #[test]
    fn a_replica_is_verified_for_the_source_its_lineage_tags_name() {
        let tagged = [
            Tag::new(lineage::SOURCE_REGION, "us-east-1"),
            Tag::new(lineage::SOURCE_ID, "ami-1"),
        ];
        let untraced = [Tag::new(lineage::SOURCE_ID, "ami-2")];
        assert_eq!(
            verified_replicas("us-west-2", [&tagged[..], &untraced[..]]),
            BTreeSet::from([("us-west-2".into(), "us-east-1".into(), "ami-1".into())])
        );
    }
}
