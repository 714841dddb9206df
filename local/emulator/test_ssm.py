"""Row 15: SSM PutParameter with DataType aws:ec2:image (validated asynchronously on AWS: a bad
value answers success but creates or updates nothing), Version, ParameterAlreadyExists."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import make_snapshot, unique

REGION = "sa-east-1"  # kept apart from the other tests' Regions


def registered_image(e) -> str:
    snap = make_snapshot(e, REGION, size=2)
    return e.client("ec2", REGION).register_image(
        Name=unique("img"), RootDeviceName="/dev/xvda", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap["SnapshotId"]}}]
    )["ImageId"]


def put(e, name: str, value: str, **kwargs) -> dict:
    answer = e.client("ssm", REGION).put_parameter(Name=name, Value=value, Type="String", DataType="aws:ec2:image", **kwargs)
    answer.pop("ResponseMetadata")
    return answer


def get(e, name: str) -> dict:
    return e.client("ssm", REGION).get_parameter(Name=name)["Parameter"]


def test_image_parameter_versions_increment_on_overwrite(emu):
    first, second = registered_image(emu), registered_image(emu)
    name = unique("/ferry/dr/image")
    assert put(emu, name, first) == {"Version": 1, "Tier": "Standard"}
    found = get(emu, name)
    assert (found["Value"], found["DataType"], found["Version"], found["Type"]) == (first, "aws:ec2:image", 1, "String")
    with pytest.raises(ClientError) as err:
        put(emu, name, second)
    assert err.value.response["Error"]["Code"] == "ParameterAlreadyExists"
    assert put(emu, name, second, Overwrite=True)["Version"] == 2
    assert (get(emu, name)["Value"], get(emu, name)["Version"]) == (second, 2)


@pytest.mark.parametrize("value", ["not-an-ami", "ami-123", "ami-0123456789ABCDEF0", "ami-0123456789abcdef0"])
def test_invalid_image_value_answers_success_but_creates_nothing(emu, value):
    ssm = emu.client("ssm", REGION)
    before = emu._control("/_ferry/stats")["rejectedImageParameters"]
    name = unique("/ferry/dr/bad")
    assert put(emu, name, value)["Version"] == 1  # the call succeeds...
    with pytest.raises(ClientError) as err:  # ...but validation failed: no parameter
        ssm.get_parameter(Name=name)
    assert err.value.response["Error"]["Code"] == "ParameterNotFound"
    assert emu._control("/_ferry/stats")["rejectedImageParameters"] == before + 1


def test_invalid_image_value_leaves_the_parameter_as_it_was(emu):
    good = registered_image(emu)
    name = unique("/ferry/dr/keep")
    put(emu, name, good)
    assert put(emu, name, "ami-0123456789abcdef0", Overwrite=True)["Version"] == 2
    assert (get(emu, name)["Value"], get(emu, name)["Version"]) == (good, 1)
    # a deregistered image is no longer available
    gone = registered_image(emu)
    emu.client("ec2", REGION).deregister_image(ImageId=gone)
    put(emu, name, gone, Overwrite=True)
    assert get(emu, name)["Value"] == good
    # and the next valid update is version 2
    newer = registered_image(emu)
    assert put(emu, name, newer, Overwrite=True)["Version"] == 2


def test_plain_moto_stores_any_image_value(plain):
    name = unique("/ferry/dr/plain")
    put(plain, name, "not-an-ami")
    assert get(plain, name)["Value"] == "not-an-ami"
