"""POST /_ferry/config {"throttle": {"actions": [...], "times": N}}: the next N calls of those
actions get AWS's throttling error, in the caller's protocol; then calls go through again."""

from __future__ import annotations


import pytest
from botocore.exceptions import ClientError

from conftest import DST, SRC, make_image, make_key


def test_the_next_n_copy_image_calls_get_request_limit_exceeded_then_succeed(fresh):
    e = fresh()
    source = make_image(e, SRC, encrypted=True)
    key = make_key(e, DST)
    assert e.config(throttle={"actions": ["CopyImage"], "times": 2})["throttle"] == {"actions": ["CopyImage"], "times": 2}
    ec2 = e.client("ec2", DST)
    copy = {"SourceImageId": source, "SourceRegion": SRC, "Name": "copy", "Encrypted": True, "KmsKeyId": key["Arn"]}
    for remaining in (1, 0):
        with pytest.raises(ClientError) as raised:
            ec2.copy_image(**copy)
        error = raised.value.response
        assert error["Error"]["Code"] == "RequestLimitExceeded"
        assert error["Error"]["Message"] == "Request limit exceeded."
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert e.config()["throttle"]["times"] == remaining
    ec2.describe_images(Owners=["self"])  # other actions are never throttled
    assert ec2.copy_image(**copy)["ImageId"].startswith("ami-")
    copies = [c for c in e.calls() if c["action"] == "CopyImage"]
    assert [c.get("throttled", False) for c in copies] == [True, True, False]
    assert len(ec2.describe_images(Owners=["self"])["Images"]) == 1, "throttled calls create nothing"


def test_json_protocol_actions_get_throttling_exception(fresh):
    e = fresh()
    e.config(throttle={"actions": ["DescribeKey"], "times": 1})
    kms = e.client("kms", DST)
    key = make_key(e, DST)
    with pytest.raises(ClientError) as raised:
        kms.describe_key(KeyId=key["KeyId"])
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyId"] == key["KeyId"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"throttle": {"actions": "CopyImage", "times": 1}}',
        b'{"throttle": {"actions": ["CopyImage"], "times": -1}}',
        b'{"throttle": {"actions": ["CopyImage"], "times": true}}',
        b'{"throttle": {"actions": ["CopyImage"], "times": 1, "status": 400}}',
        b'{"throttle": 3}',
    ],
)
def test_bad_throttle_settings_are_rejected(fresh, body):
    e = fresh("--plain")
    assert e.post("/_ferry/config", body)[0] == 400
    assert e.config()["throttle"] == {"actions": [], "times": 0}
