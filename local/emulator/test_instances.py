"""Row 13: RunInstances from an encrypted AMI, ClientToken idempotency, instance states and status
checks on the emulator clock, and the impairStatusChecks / launchVolumeKey switches."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import SLOW, Emulator, make_key, make_snapshot, unique

REGION = "ap-southeast-2"  # kept apart from the other tests' Regions


@pytest.fixture(scope="module")
def slow():
    """A patched emulator whose instances boot, pass checks and shut down in SLOW seconds, so
    nothing moves unless the test advances the clock."""
    e = Emulator()
    e.config(instanceBootSeconds=SLOW, statusCheckSeconds=SLOW, instanceShutdownSeconds=SLOW)
    yield e
    e.stop()


def encrypted_image(e, key: dict | None = None, region: str = REGION) -> tuple[str, dict]:
    """An AMI with a root and a data snapshot, both under ``key`` (made here when not given)."""
    key = key or make_key(e, region)
    ec2 = e.client("ec2", region)
    mappings = []
    for device, size in (("/dev/xvda", 8), ("/dev/sdf", 20)):
        snap = make_snapshot(e, region, size=size, kms_key_id=key["Arn"])
        mappings.append({"DeviceName": device, "Ebs": {"SnapshotId": snap["SnapshotId"], "VolumeType": "gp3", "DeleteOnTermination": device == "/dev/xvda"}})
    image_id = ec2.register_image(
        Name=unique("dr"), RootDeviceName="/dev/xvda", BlockDeviceMappings=mappings, Architecture="x86_64", VirtualizationType="hvm"
    )["ImageId"]
    return image_id, key


def launch(e, image_id: str | None = None, region: str = REGION, **kwargs) -> dict:
    args = {"MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro", **kwargs}
    if image_id:
        args["ImageId"] = image_id
    return e.client("ec2", region).run_instances(**args)["Instances"][0]


def volumes_by_device(e, instance_id: str, region: str = REGION) -> dict[str, dict]:
    found = e.client("ec2", region).describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]
    return {v["Attachments"][0]["Device"]: v for v in found}


def instance(e, instance_id: str, region: str = REGION) -> dict:
    return e.client("ec2", region).describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def statuses(e, instance_id: str, region: str = REGION, **kwargs) -> list[dict]:
    return e.client("ec2", region).describe_instance_status(InstanceIds=[instance_id], **kwargs)["InstanceStatuses"]


# --- volumes ------------------------------------------------------------------------------


def test_volumes_from_an_encrypted_ami_are_under_the_snapshot_key(slow):
    image_id, key = encrypted_image(slow)
    launched = launch(slow, image_id)
    volumes = volumes_by_device(slow, launched["InstanceId"])
    assert set(volumes) == {"/dev/xvda", "/dev/sdf"}
    for device, size in (("/dev/xvda", 8), ("/dev/sdf", 20)):
        assert (volumes[device]["Encrypted"], volumes[device]["KmsKeyId"], volumes[device]["Size"]) == (True, key["Arn"], size)
        assert volumes[device]["VolumeType"] == "gp3"
    # DescribeInstances' BlockDeviceMappings name the same volumes
    mapped = {m["DeviceName"]: m["Ebs"] for m in instance(slow, launched["InstanceId"])["BlockDeviceMappings"]}
    assert {d: m["VolumeId"] for d, m in mapped.items()} == {d: v["VolumeId"] for d, v in volumes.items()}
    assert (mapped["/dev/xvda"]["DeleteOnTermination"], mapped["/dev/sdf"]["DeleteOnTermination"]) == (True, False)


def test_plain_moto_ignores_the_ami_mappings(plain):
    key = make_key(plain, REGION)
    image_id, _ = encrypted_image(plain, key)
    launched = launch(plain, image_id)
    volumes = volumes_by_device(plain, launched["InstanceId"])
    assert list(volumes) == ["/dev/sda1"]  # one invented 8 GiB root volume
    assert (volumes["/dev/sda1"]["Size"], volumes["/dev/sda1"]["Encrypted"]) == (8, False)
    assert launch(plain, image_id)["State"]["Name"] == "pending"
    assert instance(plain, launched["InstanceId"])["State"]["Name"] == "running"  # at once


def test_run_instances_mapping_override_puts_the_volume_under_the_named_key(slow):
    image_id, source_key = encrypted_image(slow)
    alias = unique("alias/dr")
    other = make_key(slow, REGION, alias=alias)
    launched = launch(slow, image_id, BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"Encrypted": True, "KmsKeyId": alias}}])
    volumes = volumes_by_device(slow, launched["InstanceId"])
    assert volumes["/dev/sdf"]["KmsKeyId"] == other["Arn"]  # an alias is reported as the key ARN
    assert volumes["/dev/sdf"]["Size"] == 20  # the rest of the AMI's mapping is kept
    assert volumes["/dev/xvda"]["KmsKeyId"] == source_key["Arn"]


def test_launch_template_mapping_override_puts_volumes_under_its_key(slow):
    image_id, _ = encrypted_image(slow)
    other = make_key(slow, REGION)
    ec2 = slow.client("ec2", REGION)
    name = unique("dr-template")
    ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={
            "ImageId": image_id,
            "InstanceType": "t3.micro",
            "BlockDeviceMappings": [{"DeviceName": d, "Ebs": {"Encrypted": True, "KmsKeyId": other["Arn"]}} for d in ("/dev/xvda", "/dev/sdf")],
        },
    )
    launched = launch(slow, LaunchTemplate={"LaunchTemplateName": name, "Version": "$Latest"})
    assert launched["ImageId"] == image_id
    volumes = volumes_by_device(slow, launched["InstanceId"])
    assert {d: v["KmsKeyId"] for d, v in volumes.items()} == {"/dev/xvda": other["Arn"], "/dev/sdf": other["Arn"]}
    # the request's mapping wins over the template's
    third = make_key(slow, REGION)
    launched = launch(
        slow,
        LaunchTemplate={"LaunchTemplateName": name},
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"Encrypted": True, "KmsKeyId": third["Arn"]}}],
    )
    volumes = volumes_by_device(slow, launched["InstanceId"])
    assert {d: v["KmsKeyId"] for d, v in volumes.items()} == {"/dev/xvda": other["Arn"], "/dev/sdf": third["Arn"]}


def test_encrypted_without_a_key_on_an_unencrypted_image_uses_the_default_ebs_key(slow):
    ec2 = slow.client("ec2", REGION)
    snap = make_snapshot(slow, REGION, size=4)
    image_id = ec2.register_image(
        Name=unique("plain"), RootDeviceName="/dev/xvda", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap["SnapshotId"]}}]
    )["ImageId"]
    assert volumes_by_device(slow, launch(slow, image_id)["InstanceId"])["/dev/xvda"]["Encrypted"] is False
    launched = launch(slow, image_id, BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": True}}])
    volume = volumes_by_device(slow, launched["InstanceId"])["/dev/xvda"]
    ebs_key = slow.client("kms", REGION).describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]
    assert (volume["Encrypted"], volume["KmsKeyId"]) == (True, ebs_key["Arn"])


def test_encryption_cannot_be_removed_and_a_key_needs_encrypted(slow):
    image_id, key = encrypted_image(slow)
    launched = launch(slow, image_id, BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": False}}])
    assert volumes_by_device(slow, launched["InstanceId"])["/dev/xvda"]["KmsKeyId"] == key["Arn"]
    with pytest.raises(ClientError) as err:
        launch(slow, image_id, BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"KmsKeyId": key["Arn"]}}])
    assert err.value.response["Error"]["Code"] == "InvalidParameterDependency"


def test_tag_specifications_tag_the_instance_and_its_volumes_at_creation(slow, plain):
    for e in (slow, plain):
        image_id, _ = encrypted_image(e)
        launched = launch(
            e,
            image_id,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "ferry:check", "Value": "boot"}]},
                {"ResourceType": "volume", "Tags": [{"Key": "ferry:volume", "Value": "yes"}]},
            ],
        )
        assert {"Key": "ferry:check", "Value": "boot"} in launched["Tags"]
        for volume in volumes_by_device(e, launched["InstanceId"]).values():
            assert volume["Tags"] == [{"Key": "ferry:volume", "Value": "yes"}]


def test_unknown_or_deregistered_image_is_rejected(slow):
    with pytest.raises(ClientError) as err:
        launch(slow, "ami-0123456789abcdef0")
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"
    image_id, _ = encrypted_image(slow)
    slow.client("ec2", REGION).deregister_image(ImageId=image_id)
    with pytest.raises(ClientError) as err:
        launch(slow, image_id)
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


# --- ClientToken idempotency ----------------------------------------------------------------


def instances_of_image(e, image_id: str, region: str = REGION) -> list[dict]:
    reservations = e.client("ec2", region).describe_instances(
        Filters=[{"Name": "image-id", "Values": [image_id]}]
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def run(e, image_id: str, region: str = REGION, **kwargs) -> dict:
    """The whole RunInstances answer (the reservation)."""
    args = {"ImageId": image_id, "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro", **kwargs}
    return e.client("ec2", region).run_instances(**args)


def test_run_instances_with_the_same_client_token_returns_the_same_instance_and_launches_nothing(
    slow,
):
    image_id, _ = encrypted_image(slow)
    token = unique("run")
    first = run(slow, image_id, ClientToken=token)
    [launched] = first["Instances"]
    iid = launched["InstanceId"]
    assert launched["ClientToken"] == token
    again = run(slow, image_id, ClientToken=token)
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in again["Instances"]] == [iid]
    assert [i["InstanceId"] for i in instances_of_image(slow, image_id)] == [iid]
    assert len(volumes_by_device(slow, iid)) == 2  # no second set of volumes either

    # whatever state the instance is in now, terminated included
    slow.client("ec2", REGION).terminate_instances(InstanceIds=[iid])
    slow.advance(SLOW)
    assert instance(slow, iid)["State"]["Name"] == "terminated"
    later = run(slow, image_id, ClientToken=token)
    assert later["ReservationId"] == first["ReservationId"]
    assert [(i["InstanceId"], i["State"]["Name"]) for i in later["Instances"]] == [
        (iid, "terminated")
    ]
    assert [i["InstanceId"] for i in instances_of_image(slow, image_id)] == [iid]

    # the token is per Region: the same call elsewhere launches there
    other_image, _ = encrypted_image(slow, region="ap-southeast-1")
    elsewhere = run(slow, other_image, region="ap-southeast-1", ClientToken=token)
    assert elsewhere["Instances"][0]["InstanceId"] != iid


def test_run_instances_client_token_with_other_parameters_is_a_mismatch(slow):
    image_id, _ = encrypted_image(slow)
    token = unique("run")
    iid = run(slow, image_id, ClientToken=token)["Instances"][0]["InstanceId"]
    for other in (
        {"InstanceType": "t3.small"},
        {"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}]},
    ):
        with pytest.raises(ClientError) as err:
            run(slow, image_id, ClientToken=token, **other)
        assert err.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert [i["InstanceId"] for i in instances_of_image(slow, image_id)] == [iid]


def test_run_instances_client_token_over_64_characters_is_invalid(slow):
    image_id, _ = encrypted_image(slow)
    longest = unique("run").ljust(64, "t")
    assert run(slow, image_id, ClientToken=longest)["Instances"]  # 64 is the limit
    with pytest.raises(ClientError) as err:
        run(slow, image_id, ClientToken=longest + "t")
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(instances_of_image(slow, image_id)) == 1


def test_plain_moto_launches_again_for_the_same_client_token(plain):
    image_id, _ = encrypted_image(plain)
    token = unique("run")
    first, second = (run(plain, image_id, ClientToken=token) for _ in range(2))
    assert first["ReservationId"] != second["ReservationId"]
    assert first["Instances"][0]["InstanceId"] != second["Instances"][0]["InstanceId"]
    assert len(instances_of_image(plain, image_id)) == 2
    run(plain, image_id, ClientToken=token, InstanceType="t3.small")  # no mismatch either
    run(plain, image_id, ClientToken="t" * 65)  # nor a length limit


# --- states -------------------------------------------------------------------------------


def test_instance_is_pending_then_running_then_status_checks_pass(slow):
    image_id, _ = encrypted_image(slow)
    launched = launch(slow, image_id)
    iid = launched["InstanceId"]
    assert launched["State"] == {"Code": 0, "Name": "pending"}
    assert instance(slow, iid)["State"]["Name"] == "pending"
    assert statuses(slow, iid) == []  # only running instances, unless IncludeAllInstances
    [pending] = statuses(slow, iid, IncludeAllInstances=True)
    assert (pending["InstanceState"]["Name"], pending["InstanceStatus"]["Status"]) == ("pending", "not-applicable")

    slow.advance(SLOW)
    assert instance(slow, iid)["State"] == {"Code": 16, "Name": "running"}
    for kwargs in ({}, {"IncludeAllInstances": True}):
        [booting] = statuses(slow, iid, **kwargs)
        assert booting["InstanceStatus"] == {"Status": "initializing", "Details": [{"Name": "reachability", "Status": "initializing"}]}
        assert booting["SystemStatus"]["Status"] == "initializing"

    slow.advance(SLOW)
    [ok] = statuses(slow, iid)
    assert ok["InstanceStatus"] == {"Status": "ok", "Details": [{"Name": "reachability", "Status": "passed"}]}
    assert ok["SystemStatus"]["Status"] == "ok"


def test_boot_and_check_seconds_are_configurable(fresh):
    e = fresh()
    e.config(instanceBootSeconds=30, statusCheckSeconds=60)
    image_id, _ = encrypted_image(e)
    iid = launch(e, image_id)["InstanceId"]
    e.advance(29)
    assert instance(e, iid)["State"]["Name"] == "pending"
    e.advance(2)
    assert statuses(e, iid)[0]["InstanceStatus"]["Status"] == "initializing"
    e.advance(60)
    assert statuses(e, iid)[0]["InstanceStatus"]["Status"] == "ok"


def test_terminate_shuts_down_then_terminates_and_deletes_delete_on_termination_volumes(slow):
    image_id, _ = encrypted_image(slow)
    iid = launch(slow, image_id)["InstanceId"]
    slow.advance(SLOW)
    volumes = volumes_by_device(slow, iid)
    ec2 = slow.client("ec2", REGION)
    answer = ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    assert (answer["PreviousState"]["Name"], answer["CurrentState"]["Name"]) == ("running", "shutting-down")
    assert instance(slow, iid)["State"] == {"Code": 32, "Name": "shutting-down"}
    assert set(volumes_by_device(slow, iid)) == {"/dev/xvda", "/dev/sdf"}

    slow.advance(SLOW)
    assert instance(slow, iid)["State"] == {"Code": 48, "Name": "terminated"}
    left = {v["VolumeId"]: v for v in ec2.describe_volumes()["Volumes"]}
    assert volumes["/dev/xvda"]["VolumeId"] not in left  # DeleteOnTermination
    assert left[volumes["/dev/sdf"]["VolumeId"]]["State"] == "available"  # kept, detached


def test_unusable_key_terminates_the_instance_when_it_boots(slow):
    image_id, key = encrypted_image(slow)
    iid = launch(slow, image_id)["InstanceId"]
    slow.client("kms", REGION).disable_key(KeyId=key["KeyId"])
    slow.advance(SLOW)
    found = instance(slow, iid)
    assert found["State"]["Name"] == "terminated"
    assert found["StateReason"] == {
        "Code": "Client.InvalidKMSKey.InvalidState",
        "Message": "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state",
    }


# --- fault switches -----------------------------------------------------------------------


def stats(e) -> dict:
    return e._control("/_ferry/stats")


def test_impair_status_checks_fails_the_next_instances_checks(fresh):
    e = fresh()
    e.config(instanceBootSeconds=100, statusCheckSeconds=100)
    image_id, _ = encrypted_image(e)
    assert e.config(impairStatusChecks={"times": 1})["impairStatusChecks"] == {"times": 1, "instanceIds": [], "check": "instance"}
    impaired, healthy = (launch(e, image_id)["InstanceId"] for _ in range(2))
    assert e.config()["impairStatusChecks"]["times"] == 0
    e.advance(100)
    assert statuses(e, impaired)[0]["InstanceStatus"]["Status"] == "initializing"
    e.advance(100)
    [bad] = statuses(e, impaired)
    assert bad["InstanceStatus"]["Status"] == "impaired"
    assert bad["InstanceStatus"]["Details"][0]["Status"] == "failed" and "ImpairedSince" in bad["InstanceStatus"]["Details"][0]
    assert bad["SystemStatus"]["Status"] == "ok"
    assert statuses(e, healthy)[0]["InstanceStatus"]["Status"] == "ok"
    # by id, and the system check
    e.config(impairStatusChecks={"instanceIds": [healthy], "check": "system"})
    [now_bad] = statuses(e, healthy)
    assert (now_bad["SystemStatus"]["Status"], now_bad["InstanceStatus"]["Status"]) == ("impaired", "ok")
    assert stats(e)["impairedInstances"] == 1


def test_launch_volume_key_puts_the_next_instances_volumes_under_another_key(fresh):
    e = fresh()
    image_id, key = encrypted_image(e)
    other = make_key(e, REGION, alias="alias/not-the-dr-key")
    e.config(launchVolumeKey={"kmsKeyId": "alias/not-the-dr-key", "times": 1, "deviceName": "/dev/sdf"})
    first, second = (launch(e, image_id)["InstanceId"] for _ in range(2))
    assert {d: v["KmsKeyId"] for d, v in volumes_by_device(e, first).items()} == {"/dev/xvda": key["Arn"], "/dev/sdf": other["Arn"]}
    assert {v["KmsKeyId"] for v in volumes_by_device(e, second).values()} == {key["Arn"]}
    e.config(launchVolumeKey={"kmsKeyId": other["KeyId"], "times": 1, "region": "eu-north-1"})
    third = launch(e, image_id)["InstanceId"]  # another Region's switch leaves this one alone
    assert {v["KmsKeyId"] for v in volumes_by_device(e, third).values()} == {key["Arn"]}
    assert e.config()["launchVolumeKey"]["times"] == 1
    assert stats(e)["rekeyedLaunches"] == 1
    e.advance(SLOW)
    assert instance(e, first)["State"]["Name"] == "running"  # a usable key: it boots


@pytest.mark.parametrize(
    "body",
    [
        b'{"instanceBootSeconds": -1}',
        b'{"impairStatusChecks": {"times": -1}}',
        b'{"impairStatusChecks": {"check": "disk"}}',
        b'{"impairStatusChecks": {"instanceIds": ["vol-1"]}}',
        b'{"impairStatusChecks": {"nope": 1}}',
        b'{"launchVolumeKey": {"times": 1}}',
        b'{"launchVolumeKey": {"kmsKeyId": "k", "times": "x"}}',
        b'{"launchVolumeKey": {"kmsKeyId": "k", "deviceName": ""}}',
    ],
)
def test_instance_switches_are_validated(slow, body):
    before = slow.config()
    assert slow.post("/_ferry/config", body)[0] == 400
    assert slow.config() == before
