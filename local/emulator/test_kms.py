"""Row 7: DescribeKey MultiRegion, key-state calls by ARN."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import DST, make_key


def test_describe_key_multi_region_flag(emu, plain):
    kms = emu.client("kms", DST)
    ordinary = make_key(emu)
    assert kms.describe_key(KeyId=ordinary["Arn"])["KeyMetadata"]["MultiRegion"] is False
    mrk = make_key(emu, MultiRegion=True)
    assert mrk["KeyId"].startswith("mrk-")
    assert kms.describe_key(KeyId=mrk["KeyId"])["KeyMetadata"]["MultiRegion"] is True

    plain_key = make_key(plain)
    assert "MultiRegion" not in plain.client("kms", DST).describe_key(KeyId=plain_key["KeyId"])["KeyMetadata"]


def test_key_state_calls_accept_a_key_arn(emu):
    kms = emu.client("kms", DST)
    key = make_key(emu)
    state = lambda: kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"]  # noqa: E731
    kms.disable_key(KeyId=key["Arn"])
    assert state() == "Disabled"
    kms.enable_key(KeyId=key["Arn"])
    assert state() == "Enabled"
    scheduled = kms.schedule_key_deletion(KeyId=key["Arn"], PendingWindowInDays=7)
    assert scheduled["KeyId"] == key["Arn"]
    assert state() == "PendingDeletion"
    assert kms.cancel_key_deletion(KeyId=key["Arn"])["KeyId"] == key["Arn"]
    assert state() == "Disabled"


def test_plain_disable_key_by_arn_fails(plain):
    key = make_key(plain)
    with pytest.raises(ClientError) as err:
        plain.client("kms", DST).disable_key(KeyId=key["Arn"])
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_cross_region_key_arn_is_not_found(emu):
    key = make_key(emu, region="us-east-1")
    with pytest.raises(ClientError) as err:
        emu.client("kms", DST).describe_key(KeyId=key["Arn"])
    assert err.value.response["Error"]["Code"] == "NotFoundException"
