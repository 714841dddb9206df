"""Rows 9 and 10: associated KMS keys on snapshots, and the lineage AWS records for CopyImage."""

from __future__ import annotations

import urllib.request

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import DST, SRC, image, make_image, make_key, make_snapshot, unique


def raw_ec2(e, region: str, body: str) -> str:
    """One signed EC2 query call, answered as the raw XML the SDKs parse."""
    request = AWSRequest(
        method="POST", url=e.url + "/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    )
    SigV4Auth(Credentials("test", "test"), "ec2", region).add_auth(request)
    prepared = request.prepare()
    sent = urllib.request.Request(prepared.url, data=body.encode(), headers=dict(prepared.headers), method="POST")
    return urllib.request.urlopen(sent).read().decode()


def encrypted_snapshot(e, region: str = DST) -> tuple[str, dict]:
    key = make_key(e, region=region)
    return make_snapshot(e, region=region, kms_key_id=key["Arn"])["SnapshotId"], key


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


# --- row 9: associated KMS keys -------------------------------------------------------------


def test_associated_key_is_listed_by_its_arn_and_disassociating_removes_it(emu):
    ec2 = emu.client("ec2", DST)
    snapshot, own_key = encrypted_snapshot(emu)
    alias = unique("alias/extra")
    extra = make_key(emu, region=DST, alias=alias)

    assert ec2.associate_kms_key_id(SnapshotId=snapshot, KmsKeyId=alias)["Return"] is True
    assert ec2.associate_kms_key_id(SnapshotId=snapshot, KmsKeyId=extra["KeyId"])["Return"] is True  # again: no duplicate
    described = ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]
    assert described["AssociatedKmsKeys"] == [{"KmsKeyId": extra["Arn"]}]
    assert described["KmsKeyId"] == own_key["Arn"], "associating does not re-encrypt"
    listed = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert [s.get("AssociatedKmsKeys") for s in listed if s["SnapshotId"] == snapshot] == [[{"KmsKeyId": extra["Arn"]}]]

    assert ec2.disassociate_kms_key_id(SnapshotId=snapshot, KmsKeyId=extra["Arn"])["Return"] is True
    assert "AssociatedKmsKeys" not in ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]


def test_wire_format_is_the_associated_kms_key_set_of_botocores_model(emu):
    snapshot, _ = encrypted_snapshot(emu)
    extra = make_key(emu, region=DST)
    emu.client("ec2", DST).associate_kms_key_id(SnapshotId=snapshot, KmsKeyId=extra["Arn"])
    xml = raw_ec2(emu, DST, f"Action=DescribeSnapshots&Version=2016-11-15&SnapshotId.1={snapshot}")
    expected = f"<associatedKmsKeySet><item><kmsKeyId>{extra['Arn']}</kmsKeyId></item></associatedKmsKeySet>"
    assert expected in "".join(line.strip() for line in xml.splitlines()), xml
    answer = raw_ec2(emu, DST, f"Action=DisassociateKmsKeyId&Version=2016-11-15&SnapshotId={snapshot}&KmsKeyId={extra['Arn']}")
    assert "<return>true</return>" in answer, answer


def test_associate_refuses_unknown_snapshots_and_keys_and_unencrypted_snapshots(emu):
    ec2 = emu.client("ec2", DST)
    key = make_key(emu, region=DST)
    with pytest.raises(ClientError) as err:
        ec2.associate_kms_key_id(SnapshotId="snap-0123456789abcdef0", KmsKeyId=key["Arn"])
    assert error_code(err) == "InvalidSnapshot.NotFound"
    snapshot, _ = encrypted_snapshot(emu)
    with pytest.raises(ClientError) as err:
        ec2.associate_kms_key_id(SnapshotId=snapshot, KmsKeyId="alias/no-such-key")
    assert error_code(err) == "InvalidKMSKey.NotFound"
    plain_snapshot = make_snapshot(emu, region=DST)["SnapshotId"]
    with pytest.raises(ClientError) as err:
        ec2.associate_kms_key_id(SnapshotId=plain_snapshot, KmsKeyId=key["Arn"])
    assert error_code(err) == "IncorrectState"
    with pytest.raises(ClientError) as err:
        ec2.disassociate_kms_key_id(SnapshotId=snapshot, KmsKeyId=key["Arn"])
    assert error_code(err) == "InvalidParameterValue"


def test_plain_moto_has_no_associated_keys(plain):
    key = make_key(plain, region=DST)
    snapshot = make_snapshot(plain, region=DST, kms_key_id=key["Arn"])["SnapshotId"]
    with pytest.raises(Exception):  # moto answers that the action is not implemented
        plain.client("ec2", DST).associate_kms_key_id(SnapshotId=snapshot, KmsKeyId=key["Arn"])


# --- row 10: the lineage AWS records for CopyImage ----------------------------------------------


def test_copy_image_records_the_source_image_and_region(emu):
    source = make_image(emu)
    copied = emu.client("ec2", DST).copy_image(SourceImageId=source, SourceRegion=SRC, Name=unique("copy"))["ImageId"]
    replica = image(emu, copied)
    assert (replica["SourceImageId"], replica["SourceImageRegion"]) == (source, SRC)
    xml = raw_ec2(emu, DST, f"Action=DescribeImages&Version=2016-11-15&ImageId.1={copied}")
    assert f"<sourceImageId>{source}</sourceImageId>" in xml and f"<sourceImageRegion>{SRC}</sourceImageRegion>" in xml, xml
    registered = image(emu, source, region=SRC)
    assert "SourceImageId" not in registered and "SourceImageRegion" not in registered, "RegisterImage records no source"


def test_plain_moto_records_no_source_for_a_copy(plain):
    source = make_image(plain)
    copied = plain.client("ec2", DST).copy_image(SourceImageId=source, SourceRegion=SRC, Name=unique("copy"))["ImageId"]
    assert "SourceImageId" not in image(plain, copied)
