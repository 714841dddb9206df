"""Rows 1, 3 and 4: CopyImage creates, encrypts, tags and settles like AWS."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError

from conftest import DST, SLOW, SRC, image, make_image, make_key, make_snapshot, snapshots_of, unique


def copy(e, source_id, **kwargs):
    return e.client("ec2", DST).copy_image(SourceImageId=source_id, SourceRegion=SRC, Name=unique("copy"), **kwargs)["ImageId"]


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


# --- encryption -------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["key-id", "key-arn", "alias-name", "alias-arn", "mrk-id", "mrk-arn"])
def test_copy_encrypts_every_snapshot_with_the_key_arn(emu, form):
    src = make_image(emu)
    if form.startswith("mrk"):
        primary = make_key(emu, region=SRC, MultiRegion=True)
        replica = emu.client("kms", SRC).replicate_key(KeyId=primary["KeyId"], ReplicaRegion=DST)["ReplicaKeyMetadata"]
        assert replica["Arn"].startswith(f"arn:aws:kms:{DST}:")
        expected_arn = replica["Arn"]
        key_ref = primary["KeyId"] if form == "mrk-id" else replica["Arn"]
    else:
        alias = unique("alias/dest")
        key = make_key(emu, alias=alias)
        expected_arn = key["Arn"]
        key_ref = {
            "key-id": key["KeyId"],
            "key-arn": key["Arn"],
            "alias-name": alias,
            "alias-arn": f"arn:aws:kms:{DST}:123456789012:{alias}",
        }[form]

    new_id = copy(emu, src, Encrypted=True, KmsKeyId=key_ref)

    img = image(emu, new_id)
    source = image(emu, src, region=SRC)
    assert img["State"] == "pending"
    assert [m["DeviceName"] for m in img["BlockDeviceMappings"]] == ["/dev/xvda", "/dev/sdf"]
    assert [m["Ebs"]["VolumeSize"] for m in img["BlockDeviceMappings"]] == [8, 20]
    assert [m["Ebs"]["VolumeType"] for m in img["BlockDeviceMappings"]] == ["gp3", "gp2"]
    assert (img["RootDeviceName"], img["Architecture"], img["RootDeviceType"]) == ("/dev/xvda", "arm64", "ebs")
    snaps = snapshots_of(emu, img)
    source_snaps = {m["Ebs"]["SnapshotId"] for m in source["BlockDeviceMappings"]}
    for snap, source_mapping in zip(snaps, source["BlockDeviceMappings"]):
        assert snap["SnapshotId"] not in source_snaps  # new snapshots in the destination
        assert snap["Encrypted"] is True
        assert snap["KmsKeyId"] == expected_arn
        assert snap["State"] == "pending"
        assert re.fullmatch(
            rf"Copied for DestinationAmi {new_id} from SourceAmi {src} for SourceSnapshot "
            rf"{source_mapping['Ebs']['SnapshotId']}\. Task created on [\d,]+\.",
            snap["Description"],
        )

    emu.advance(SLOW)
    img = image(emu, new_id)
    assert img["State"] == "available"
    assert {(s["State"], s["Progress"]) for s in snapshots_of(emu, img)} == {("completed", "100%")}


def test_plain_moto_ignores_the_key(plain):
    src = make_image(plain)
    key = make_key(plain)
    new_id = copy(plain, src, Encrypted=True, KmsKeyId=key["Arn"])
    img = image(plain, new_id)
    assert img["State"] == "available"  # never pending
    assert all(not s["Encrypted"] and "KmsKeyId" not in s for s in snapshots_of(plain, img))


def test_encrypted_source_without_key_uses_destination_aws_ebs_key(emu):
    src = make_image(emu, encrypted=True)
    img = image(emu, copy(emu, src))
    kms = emu.client("kms", DST)
    ebs_key = kms.describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]
    assert ebs_key["KeyManager"] == "AWS"
    assert ebs_key["Arn"].startswith(f"arn:aws:kms:{DST}:")
    for snap in snapshots_of(emu, img):
        assert (snap["Encrypted"], snap["KmsKeyId"]) == (True, ebs_key["Arn"])


def test_encrypted_true_without_key_uses_aws_ebs_key(emu):
    img = image(emu, copy(emu, make_image(emu), Encrypted=True))
    ebs_arn = emu.client("kms", DST).describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]
    assert {s["KmsKeyId"] for s in snapshots_of(emu, img)} == {ebs_arn}


def test_unencrypted_source_copies_unencrypted(emu):
    img = image(emu, copy(emu, make_image(emu)))
    for snap in snapshots_of(emu, img):
        assert snap["Encrypted"] is False and "KmsKeyId" not in snap


@pytest.mark.parametrize("call", ["copy_image", "copy_snapshot"])
def test_key_without_encrypted_is_rejected(emu, plain, call):
    def attempt(e):
        key = make_key(e)
        ec2 = e.client("ec2", DST)
        if call == "copy_image":
            return ec2.copy_image(SourceImageId=make_image(e), SourceRegion=SRC, Name="xyz", KmsKeyId=key["Arn"])
        return ec2.copy_snapshot(SourceSnapshotId=make_snapshot(e)["SnapshotId"], SourceRegion=SRC, KmsKeyId=key["Arn"])

    with pytest.raises(ClientError) as err:
        attempt(emu)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error_code(err) == "InvalidParameterDependency"
    assert err.value.response["Error"]["Message"] == "The parameter KmsKeyId requires the parameter Encrypted to be set."
    attempt(plain)  # plain moto accepts it


# --- asynchronous key failure ----------------------------------------------------------


def _bad_key(e, kind):
    kms = e.client("kms", DST)
    if kind == "missing":
        return "alias/does-not-exist", "Client.InvalidKMSKey.NotFound"
    if kind == "other-region":
        return make_key(e, region=SRC)["Arn"], "Client.InvalidKMSKey.NotFound"
    if kind == "disabled":
        key = make_key(e)
        kms.disable_key(KeyId=key["KeyId"])
        return key["Arn"], "Client.InvalidKMSKey.InvalidState"
    if kind == "pending-deletion":
        key = make_key(e)
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
        return key["Arn"], "Client.InvalidKMSKey.InvalidState"
    if kind == "asymmetric":
        key = make_key(e, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
        return key["Arn"], "Client.InvalidKMSKey.InvalidState"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "other-region", "disabled", "pending-deletion", "asymmetric"])
def test_bad_key_is_accepted_then_the_copy_fails(emu, kind):
    key_ref, code = _bad_key(emu, kind)
    new_id = copy(emu, make_image(emu), Encrypted=True, KmsKeyId=key_ref)  # accepted
    img = image(emu, new_id)
    assert img["State"] == "pending"
    assert {s["KmsKeyId"] for s in snapshots_of(emu, img)} == {key_ref}  # kept as given

    emu.advance(SLOW)
    img = image(emu, new_id)
    assert img["State"] == "failed"
    assert img["StateReason"]["Code"] == code
    assert "Given key ID is not accessible" in img["StateReason"]["Message"]
    for snap in snapshots_of(emu, img):
        assert snap["State"] == "error"
        assert snap["StateMessage"] == "Given key ID is not accessible"


def test_key_disabled_after_the_copy_started_fails_it(emu):
    key = make_key(emu)
    new_id = copy(emu, make_image(emu), Encrypted=True, KmsKeyId=key["KeyId"])
    emu.client("kms", DST).disable_key(KeyId=key["Arn"])
    emu.advance(SLOW)
    img = image(emu, new_id)
    assert (img["State"], img["StateReason"]["Code"]) == ("failed", "Client.InvalidKMSKey.InvalidState")


def test_plain_moto_accepts_a_bad_key(plain):
    new_id = copy(plain, make_image(plain), Encrypted=True, KmsKeyId="alias/does-not-exist")
    assert image(plain, new_id)["State"] == "available"


# --- pending, then settled ------------------------------------------------------------


def test_copy_is_pending_with_growing_progress_until_copy_seconds_pass(emu):
    new_id = copy(emu, make_image(emu))
    img = image(emu, new_id)
    assert img["State"] == "pending"
    assert {s["Progress"] for s in snapshots_of(emu, img)} == {"0%"}
    emu.advance(SLOW / 2)
    img = image(emu, new_id)
    assert img["State"] == "pending"
    progress = {int(s["Progress"].rstrip("%")) for s in snapshots_of(emu, img)}
    assert all(40 <= p <= 60 for p in progress), progress
    emu.advance(SLOW / 2)
    assert image(emu, new_id)["State"] == "available"


def test_copy_seconds_is_configurable(fresh):
    e = fresh("--copy-seconds", "1000")
    assert e.config(copySeconds=0)["copySeconds"] == 0
    new_id = copy(e, make_image(e))
    assert image(e, new_id)["State"] == "available"


# --- tags -------------------------------------------------------------------------------


def tag_map(resource: dict) -> dict:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def test_tag_specifications_tag_image_and_every_snapshot_at_creation(emu, plain):
    specs = [
        {"ResourceType": "image", "Tags": [{"Key": "ferry:role", "Value": "image"}]},
        {"ResourceType": "snapshot", "Tags": [{"Key": "ferry:source", "Value": "snap"}]},
    ]
    img = image(emu, copy(emu, make_image(emu), TagSpecifications=specs))
    assert tag_map(img) == {"ferry:role": "image"}
    snaps = snapshots_of(emu, img)
    assert len(snaps) == 2 and all(tag_map(s) == {"ferry:source": "snap"} for s in snaps)

    plain_img = image(plain, copy(plain, make_image(plain), TagSpecifications=specs))
    assert tag_map(plain_img) == {}  # plain moto drops them


def test_copy_image_tags_copies_user_tags_only(emu):
    src = make_image(emu, tags={"team": "storage", "env": "prod"})
    emu.client("ec2", SRC).create_tags(Resources=[src], Tags=[{"Key": "aws:internal", "Value": "x"}])
    img = image(
        emu,
        copy(emu, src, CopyImageTags=True, TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "env", "Value": "dr"}]}]),
    )
    assert tag_map(img) == {"team": "storage", "env": "dr"}
    assert tag_map(image(emu, copy(emu, src))) == {}  # not without CopyImageTags


@pytest.mark.parametrize(
    "tags",
    [
        [{"Key": "aws:reserved", "Value": "x"}],
        [{"Key": "k" * 129, "Value": "x"}],
        [{"Key": "k", "Value": "v" * 257}],
        [{"Key": f"k{i}", "Value": "v"} for i in range(51)],
    ],
    ids=["aws-prefix", "key-too-long", "value-too-long", "too-many"],
)
def test_invalid_tags_are_rejected(emu, tags):
    with pytest.raises(ClientError) as err:
        copy(emu, make_image(emu), TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])
    assert error_code(err) == "InvalidParameterValue"


def test_tag_limits_at_the_edge_are_accepted(emu):
    tags = [{"Key": "k" * 128, "Value": "v" * 256}] + [{"Key": f"k{i}", "Value": "v"} for i in range(49)]
    img = image(emu, copy(emu, make_image(emu), TagSpecifications=[{"ResourceType": "image", "Tags": tags}]))
    assert len(img["Tags"]) == 50


# --- idempotency ----------------------------------------------------------------------


def test_client_token_returns_the_same_image_and_creates_nothing(emu):
    src = make_image(emu)
    token = unique("tok")
    ec2 = emu.client("ec2", DST)
    args = dict(SourceImageId=src, SourceRegion=SRC, Name="same", ClientToken=token)
    first = ec2.copy_image(**args)["ImageId"]
    n_images = len(ec2.describe_images(Owners=["self"])["Images"])
    n_snaps = len(ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"])
    assert ec2.copy_image(**args)["ImageId"] == first
    assert len(ec2.describe_images(Owners=["self"])["Images"]) == n_images
    assert len(ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]) == n_snaps

    with pytest.raises(ClientError) as err:
        ec2.copy_image(**{**args, "Name": "different"})
    assert error_code(err) == "IdempotentParameterMismatch"


def test_plain_moto_ignores_client_token(plain):
    src = make_image(plain)
    ec2 = plain.client("ec2", DST)
    args = dict(SourceImageId=src, SourceRegion=SRC, Name="same", ClientToken=unique("tok"))
    assert ec2.copy_image(**args)["ImageId"] != ec2.copy_image(**args)["ImageId"]


# --- time-based copies ----------------------------------------------------------------


@pytest.mark.parametrize("minutes", [0, 10, 20, 2895, 3000])
def test_invalid_completion_duration_is_rejected(emu, minutes):
    with pytest.raises(ClientError) as err:
        copy(emu, make_image(emu), SnapshotCopyCompletionDurationMinutes=minutes)
    assert error_code(err) == "InvalidParameterValue"


def test_completion_duration_makes_time_based_copies(emu):
    img = image(emu, copy(emu, make_image(emu), SnapshotCopyCompletionDurationMinutes=2880))
    for snap in snapshots_of(emu, img):
        assert (snap["TransferType"], snap["CompletionDurationMinutes"]) == ("time-based", 2880)
    img = image(emu, copy(emu, make_image(emu)))
    for snap in snapshots_of(emu, img):
        assert snap["TransferType"] == "standard" and "CompletionDurationMinutes" not in snap


def test_missing_source_image(emu):
    with pytest.raises(ClientError) as err:
        copy(emu, "ami-0123456789abcdef0")
    assert error_code(err) == "InvalidAMIID.NotFound"


def test_untaggable_resource_type_is_rejected(emu):
    with pytest.raises(ClientError) as err:
        copy(emu, make_image(emu), TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}])
    assert error_code(err) == "InvalidParameterValue"


def test_snapshots_report_their_full_size_and_a_copy_its_completion_time(fresh):
    e = fresh("--copy-seconds", "900")
    img = image(e, copy(e, make_image(e, devices=(("/dev/xvda", 8, "gp3"), ("/dev/sdf", 500, "gp3"))), SnapshotCopyCompletionDurationMinutes=15))
    sources = e.client("ec2", SRC).describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert sorted(s["FullSnapshotSizeInBytes"] for s in sources) == [8 * 1024**3, 500 * 1024**3]
    assert all(s["CompletionTime"] == s["StartTime"] for s in sources), "a CreateSnapshot completes at once here"
    pending = snapshots_of(e, img)
    assert sorted(s["FullSnapshotSizeInBytes"] for s in pending) == [8 * 1024**3, 500 * 1024**3], "a copy keeps its source's size"
    assert all("CompletionTime" not in s for s in pending), "no CompletionTime while pending"
    e.advance(3600)  # long after the copy was due: it completed when it was due, 900 s after it started
    for snap in snapshots_of(e, image(e, img["ImageId"])):
        assert snap["State"] == "completed"
        assert abs((snap["CompletionTime"] - snap["StartTime"]).total_seconds() - 900) < 2, snap


def test_plain_moto_reports_neither_full_size_nor_completion_time(plain):
    snapshot = plain.client("ec2", SRC).describe_snapshots(SnapshotIds=[make_snapshot(plain, SRC)["SnapshotId"]])["Snapshots"][0]
    assert "FullSnapshotSizeInBytes" not in snapshot and "CompletionTime" not in snapshot
