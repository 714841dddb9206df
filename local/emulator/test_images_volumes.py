"""Rows 5 and 6: RegisterImage keeps its mappings; volume keys carry to snapshots."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import SRC, make_key, make_snapshot, unique


def test_register_image_keeps_block_device_mappings(emu):
    ec2 = emu.client("ec2", SRC)
    key = make_key(emu, region=SRC)
    root = make_snapshot(emu, size=10, kms_key_id=key["Arn"])
    data = make_snapshot(emu, size=50)
    image_id = ec2.register_image(
        Name=unique("reg"),
        RootDeviceName="/dev/xvda",
        Architecture="x86_64",
        VirtualizationType="hvm",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": root["SnapshotId"], "VolumeType": "gp3", "DeleteOnTermination": True}},
            {"DeviceName": "/dev/sdb", "Ebs": {"SnapshotId": data["SnapshotId"], "VolumeSize": 60, "VolumeType": "io1", "Iops": 100, "DeleteOnTermination": False}},
            {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
        ],
    )["ImageId"]
    img = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert img["RootDeviceType"] == "ebs" and img["RootDeviceName"] == "/dev/xvda"
    by_device = {m["DeviceName"]: m for m in img["BlockDeviceMappings"]}
    assert by_device["/dev/xvda"]["Ebs"] == {
        "SnapshotId": root["SnapshotId"], "VolumeSize": 10, "VolumeType": "gp3", "DeleteOnTermination": True, "Encrypted": True,
    }
    assert by_device["/dev/sdb"]["Ebs"]["VolumeSize"] == 60
    assert by_device["/dev/sdb"]["Ebs"]["Encrypted"] is False
    assert by_device["/dev/sdc"] == {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"}
    # no invented snapshot: only the two we made are in use
    assert {m["Ebs"]["SnapshotId"] for m in img["BlockDeviceMappings"] if "Ebs" in m} == {root["SnapshotId"], data["SnapshotId"]}
    # and AWS refuses to delete a snapshot an AMI uses
    with pytest.raises(ClientError) as err:
        ec2.delete_snapshot(SnapshotId=root["SnapshotId"])
    assert err.value.response["Error"]["Code"] == "InvalidSnapshot.InUse"


def test_plain_register_image_invents_a_snapshot(plain):
    ec2 = plain.client("ec2", SRC)
    snap = make_snapshot(plain)
    image_id = ec2.register_image(
        Name=unique("reg"), RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap["SnapshotId"]}}],
    )["ImageId"]
    mapping = ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"]
    assert [m["DeviceName"] for m in mapping] == ["/dev/sda1"]
    assert mapping[0]["Ebs"]["SnapshotId"] != snap["SnapshotId"]


def test_register_instance_store_image(emu):
    ec2 = emu.client("ec2", SRC)
    image_id = ec2.register_image(Name=unique("s3"), ImageLocation="bucket/image.manifest.xml")["ImageId"]
    img = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert img["RootDeviceType"] == "instance-store"
    assert img.get("BlockDeviceMappings", []) == []


def test_register_image_with_unknown_snapshot(emu):
    with pytest.raises(ClientError) as err:
        emu.client("ec2", SRC).register_image(
            Name=unique("bad"), RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}],
        )
    assert err.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"


def test_volume_key_carries_to_its_snapshot(emu, plain):
    alias = unique("alias/vol")
    key = make_key(emu, region=SRC, alias=alias)
    ec2 = emu.client("ec2", SRC)
    volume = ec2.create_volume(Size=4, AvailabilityZone="us-east-1a", Encrypted=True, KmsKeyId=alias)
    assert volume["KmsKeyId"] == key["Arn"]
    snap = ec2.create_snapshot(VolumeId=volume["VolumeId"])
    assert (snap["Encrypted"], snap["KmsKeyId"]) == (True, key["Arn"])
    described = ec2.describe_snapshots(SnapshotIds=[snap["SnapshotId"]])["Snapshots"][0]
    assert described["KmsKeyId"] == key["Arn"]
    restored = ec2.create_volume(SnapshotId=snap["SnapshotId"], AvailabilityZone="us-east-1b")
    assert (restored["Encrypted"], restored["KmsKeyId"]) == (True, key["Arn"])

    make_key(plain, region=SRC, alias=alias)
    pec2 = plain.client("ec2", SRC)
    volume = pec2.create_volume(Size=4, AvailabilityZone="us-east-1a", Encrypted=True, KmsKeyId=alias)
    snap = pec2.create_snapshot(VolumeId=volume["VolumeId"])
    assert "KmsKeyId" not in snap  # plain moto loses the key


def test_create_volume_key_without_encrypted(emu):
    with pytest.raises(ClientError) as err:
        emu.client("ec2", SRC).create_volume(Size=4, AvailabilityZone="us-east-1a", KmsKeyId="alias/x")
    assert err.value.response["Error"]["Code"] == "InvalidParameterDependency"
