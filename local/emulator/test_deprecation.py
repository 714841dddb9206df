"""Row 16: EnableImageDeprecation / DeprecationTime, deprecated images hidden from other
accounts only, and what DeregisterImage leaves behind."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from conftest import make_image

REGION = "eu-south-1"  # kept apart from the other tests' Regions


def test_deprecation_time_is_reported_and_rounded_to_the_minute(emu):
    ec2 = emu.client("ec2", REGION)
    image_id = make_image(emu, REGION)
    assert ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=datetime(2031, 5, 6, 7, 8, 40, tzinfo=timezone.utc))["Return"] is True
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["DeprecationTime"] == "2031-05-06T07:09:00.000Z"
    ec2.disable_image_deprecation(ImageId=image_id)
    assert "DeprecationTime" not in ec2.describe_images(ImageIds=[image_id])["Images"][0]


def test_owner_still_sees_its_deprecated_image(emu):
    ec2 = emu.client("ec2", REGION)
    image_id = make_image(emu, REGION)
    ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=datetime.now(timezone.utc) + timedelta(minutes=2))
    emu.advance(3600)  # past the deprecation time
    for kwargs in ({}, {"IncludeDeprecated": False}, {"Owners": ["self"]}):
        assert image_id in {i["ImageId"] for i in ec2.describe_images(**kwargs)["Images"]}


def test_deregister_image_leaves_its_snapshots_which_can_then_be_deleted(emu):
    ec2 = emu.client("ec2", REGION)
    image_id = make_image(emu, REGION)
    snapshots = [m["Ebs"]["SnapshotId"] for m in ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"]]
    with pytest.raises(ClientError) as err:
        ec2.delete_snapshot(SnapshotId=snapshots[0])
    assert err.value.response["Error"]["Code"] == "InvalidSnapshot.InUse"
    ec2.deregister_image(ImageId=image_id)
    assert sorted(s["SnapshotId"] for s in ec2.describe_snapshots(SnapshotIds=snapshots)["Snapshots"]) == sorted(snapshots)
    for snapshot_id in snapshots:
        ec2.delete_snapshot(SnapshotId=snapshot_id)


def test_plain_moto_has_no_image_deprecation(plain):
    image_id = make_image(plain, REGION)
    with pytest.raises(Exception):  # HTTP 500, not even an EC2 error
        plain.client("ec2", REGION).enable_image_deprecation(ImageId=image_id, DeprecateAt=datetime(2031, 1, 1, tzinfo=timezone.utc))
