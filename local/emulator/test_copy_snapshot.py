"""Rows 2-4 for CopySnapshot: key ARNs, default key, tags, time-based, async failure."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import DST, SLOW, SRC, make_key, make_snapshot, unique


def copy(e, source_id, **kwargs):
    return e.client("ec2", DST).copy_snapshot(SourceSnapshotId=source_id, SourceRegion=SRC, **kwargs)


def describe(e, snapshot_id):
    return e.client("ec2", DST).describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]


def test_alias_is_stored_as_key_arn(emu, plain):
    alias = unique("alias/snap")
    key = make_key(emu, alias=alias)
    new = copy(emu, make_snapshot(emu)["SnapshotId"], Encrypted=True, KmsKeyId=alias)
    snap = describe(emu, new["SnapshotId"])
    assert (snap["Encrypted"], snap["KmsKeyId"]) == (True, key["Arn"])
    assert snap["VolumeSize"] == 8 and snap["VolumeId"] == "vol-ffffffff"

    make_key(plain, alias=alias)
    new = copy(plain, make_snapshot(plain)["SnapshotId"], Encrypted=True, KmsKeyId=alias)
    assert describe(plain, new["SnapshotId"])["KmsKeyId"] == alias  # plain moto keeps the alias


def test_encrypted_source_without_key_uses_aws_ebs(emu, plain):
    new = copy(emu, make_snapshot(emu, encrypted=True)["SnapshotId"])
    ebs_arn = emu.client("kms", DST).describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]
    assert describe(emu, new["SnapshotId"])["KmsKeyId"] == ebs_arn

    new = copy(plain, make_snapshot(plain, encrypted=True)["SnapshotId"])
    snap = describe(plain, new["SnapshotId"])
    assert snap["Encrypted"] is True and "KmsKeyId" not in snap


def test_description_default_and_given(emu):
    source = make_snapshot(emu)["SnapshotId"]
    assert describe(emu, copy(emu, source)["SnapshotId"])["Description"] == f"[Copied {source} from {SRC}]"
    assert describe(emu, copy(emu, source, Description="mine")["SnapshotId"])["Description"] == "mine"


def test_tags_applied_at_creation(emu):
    new = copy(
        emu,
        make_snapshot(emu)["SnapshotId"],
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "ferry:lineage", "Value": "abc"}]}],
    )
    assert new["Tags"] == [{"Key": "ferry:lineage", "Value": "abc"}]
    assert describe(emu, new["SnapshotId"])["Tags"] == [{"Key": "ferry:lineage", "Value": "abc"}]


def test_aws_prefixed_tag_rejected(emu):
    with pytest.raises(ClientError) as err:
        copy(emu, make_snapshot(emu)["SnapshotId"], TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "aws:x", "Value": "y"}]}])
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_completion_duration(emu):
    source = make_snapshot(emu)["SnapshotId"]
    snap = describe(emu, copy(emu, source, CompletionDurationMinutes=45)["SnapshotId"])
    assert (snap["TransferType"], snap["CompletionDurationMinutes"]) == ("time-based", 45)
    assert describe(emu, copy(emu, source)["SnapshotId"])["TransferType"] == "standard"
    with pytest.raises(ClientError) as err:
        copy(emu, source, CompletionDurationMinutes=50)
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_pending_then_completed(emu):
    new = copy(emu, make_snapshot(emu)["SnapshotId"], Encrypted=True, KmsKeyId=make_key(emu)["Arn"])
    assert (describe(emu, new["SnapshotId"])["State"], describe(emu, new["SnapshotId"])["Progress"]) == ("pending", "0%")
    emu.advance(SLOW)
    snap = describe(emu, new["SnapshotId"])
    assert (snap["State"], snap["Progress"]) == ("completed", "100%")


@pytest.mark.parametrize("bad", ["missing", "pending-deletion"])
def test_bad_key_ends_in_error(emu, plain, bad):
    if bad == "missing":
        key_ref = "arn:aws:kms:us-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"
    else:
        key_ref = make_key(emu)["Arn"]
        emu.client("kms", DST).schedule_key_deletion(KeyId=key_ref, PendingWindowInDays=7)
    new = copy(emu, make_snapshot(emu)["SnapshotId"], Encrypted=True, KmsKeyId=key_ref)
    emu.advance(SLOW)
    snap = describe(emu, new["SnapshotId"])
    assert (snap["State"], snap["StateMessage"]) == ("error", "Given key ID is not accessible")

    new = copy(plain, make_snapshot(plain)["SnapshotId"], Encrypted=True, KmsKeyId="alias/nope")
    assert describe(plain, new["SnapshotId"])["State"] == "completed"


def test_missing_source_snapshot(emu):
    with pytest.raises(ClientError) as err:
        copy(emu, "snap-0123456789abcdef0")
    assert err.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
