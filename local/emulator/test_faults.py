"""Fault switches of POST /_ferry/config, each on per test: random throttling and 5xx answers on
EC2 and KMS (seeded, so a run is reproducible), slow answers, the concurrent-copy quota per
destination Region, copies that end failed, and the drift tamper; GET /_ferry/stats counts
what they did."""

from __future__ import annotations

import json
import random
import time

import pytest
from botocore.exceptions import ClientError

from conftest import DST, SLOW, SRC, image, make_image, make_key, make_snapshot, snapshots_of


def stats(e) -> dict:
    return e._control("/_ferry/stats")


def copy_snapshot(e, source: str, key: dict | None = None, region: str = DST) -> dict:
    kwargs = {"Encrypted": True, "KmsKeyId": key["Arn"]} if key else {}
    return e.client("ec2", region).copy_snapshot(SourceRegion=SRC, SourceSnapshotId=source, **kwargs)


# --- throttleFraction -------------------------------------------------------------------


def test_throttle_fraction_throttles_the_seeded_share_of_ec2_and_kms_calls(fresh):
    e = fresh("--plain")
    key = make_key(e, DST)
    assert e.config(seed=7, throttleFraction=0.3)["throttleFraction"] == 0.3
    ec2, kms = e.client("ec2", DST), e.client("kms", DST)
    expected_rng = random.Random(7)
    outcomes, expected = [], []
    for i in range(60):
        expected.append(expected_rng.random() < 0.3)
        try:
            if i % 2:
                kms.describe_key(KeyId=key["KeyId"])
            else:
                ec2.describe_snapshots(OwnerIds=["self"])
            outcomes.append(False)
        except ClientError as error:
            answer = error.response
            if i % 2:  # KMS: JSON protocol, HTTP 400
                assert (answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]) == ("ThrottlingException", 400)
            else:  # EC2: RequestLimitExceeded, HTTP 503
                assert (answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]) == ("RequestLimitExceeded", 503)
            outcomes.append(True)
    assert outcomes == expected, "the same seed throttles the same calls"
    assert 10 <= sum(outcomes) <= 30
    counted = stats(e)["throttled"]
    assert counted.get("ec2", 0) + counted.get("kms", 0) == sum(outcomes)
    flagged = [c for c in e.calls() if c.get("throttled")]
    assert len(flagged) == sum(outcomes)


def test_random_faults_spare_other_services_and_the_control_endpoints(fresh):
    e = fresh("--plain")
    e.config(seed=1, throttleFraction=0.5, serverErrorFraction=0.5)  # every EC2/KMS call fails
    events = e.client("events", DST)
    for _ in range(10):
        events.put_events(Entries=[{"Source": "ferry", "DetailType": "x", "Detail": "{}"}])
        e.calls(), e.config(), stats(e)
    with pytest.raises(ClientError):
        e.client("ec2", DST).describe_images(Owners=["self"])
    assert len(e.events()) == 10


def test_reseeding_replays_the_same_faults(fresh):
    e = fresh("--plain")
    ec2 = e.client("ec2", DST)

    def run() -> list[bool]:
        e.config(seed=42, throttleFraction=0.5)
        seen = []
        for _ in range(20):
            try:
                ec2.describe_volumes()
                seen.append(False)
            except ClientError:
                seen.append(True)
        return seen

    assert run() == run()


# --- serverErrorFraction ----------------------------------------------------------------


def test_server_error_fraction_answers_500_or_503_in_each_services_error_format(fresh):
    e = fresh("--plain")
    key = make_key(e, DST)
    e.config(seed=3, serverErrorFraction=1.0)
    seen = set()
    for _ in range(12):
        with pytest.raises(ClientError) as raised:
            e.client("ec2", DST).describe_snapshots(OwnerIds=["self"])
        answer = raised.value.response
        seen.add(("ec2", answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"]))
        with pytest.raises(ClientError) as raised:
            e.client("kms", DST).describe_key(KeyId=key["KeyId"])
        answer = raised.value.response
        seen.add(("kms", answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"]))
    assert seen == {
        ("ec2", 500, "InternalError"),
        ("ec2", 503, "Unavailable"),
        ("kms", 500, "KMSInternalException"),
        ("kms", 503, "ServiceUnavailable"),
    }
    assert stats(e)["serverErrors"] == {"ec2": 12, "kms": 12}
    assert all(c.get("serverError") in (500, 503) for c in e.calls()[-24:])
    e.config(serverErrorFraction=0)
    assert e.client("kms", DST).describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyId"] == key["KeyId"]


# --- delaySeconds -----------------------------------------------------------------------


def test_delay_seconds_slows_every_ec2_and_kms_answer_but_not_the_control_endpoints(fresh):
    e = fresh("--plain")
    ec2 = e.client("ec2", DST)
    ec2.describe_volumes()  # moto builds its EC2 app on the first call
    e.config(delaySeconds=0.4)
    started = time.monotonic()
    ec2.describe_volumes()
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    e.calls(), stats(e)
    assert time.monotonic() - started < 0.4
    assert stats(e)["delayed"] == 1
    e.config(delaySeconds=0)
    started = time.monotonic()
    ec2.describe_volumes()
    assert time.monotonic() - started < 0.4


# --- copyQuotaPerRegion -----------------------------------------------------------------


def test_copy_quota_refuses_one_copy_more_with_resource_limit_exceeded_until_copies_settle(fresh):
    e = fresh("--copy-seconds", str(SLOW))
    key = make_key(e, DST)
    ami = make_image(e, SRC, encrypted=True)  # two snapshots: counts 2
    sources = [make_snapshot(e, SRC, encrypted=True)["SnapshotId"] for _ in range(3)]
    assert e.config(copyQuotaPerRegion=3)["copyQuotaPerRegion"] == 3
    ec2 = e.client("ec2", DST)
    copy = {"SourceImageId": ami, "SourceRegion": SRC, "Name": "copy", "Encrypted": True, "KmsKeyId": key["Arn"], "ClientToken": "t-1"}
    ec2.copy_image(**copy)
    assert stats(e)["copiesInFlight"] == {DST: 2}
    copy_snapshot(e, sources[0], key)
    with pytest.raises(ClientError) as raised:
        copy_snapshot(e, sources[1], key)
    error = raised.value.response
    assert error["Error"]["Code"] == "ResourceLimitExceeded"
    assert error["Error"]["Message"] == "Too many snapshot copies in progress. The limit is 3 for this destination region."
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as raised:
        ec2.copy_image(**{**copy, "ClientToken": "t-2"})
    assert raised.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert ec2.copy_image(**copy)["ImageId"], "a repeated ClientToken creates nothing, so it is not refused"
    assert len(ec2.describe_images(Owners=["self"])["Images"]) == 1, "a refused copy creates nothing"
    copy_snapshot(e, sources[1], key, region="eu-west-1")  # the quota is per destination Region

    e.advance(SLOW)  # every copy settles and stops counting
    copy_snapshot(e, sources[2], key)
    now = stats(e)
    assert now["peakCopiesInFlight"] == {DST: 3, "eu-west-1": 1}
    assert now["copiesInFlight"] == {DST: 1, "eu-west-1": 0}
    assert now["resourceLimitExceeded"] == {DST: 2}


def test_a_failed_copy_stops_counting_against_the_quota(fresh):
    e = fresh("--copy-seconds", str(SLOW))
    key = make_key(e, DST)
    source = make_snapshot(e, SRC, encrypted=True)["SnapshotId"]
    e.config(copyQuotaPerRegion=1)
    copy_snapshot(e, source, key)
    e.client("kms", DST).disable_key(KeyId=key["KeyId"])
    e.advance(SLOW)  # the copy fails (the key is disabled)
    assert stats(e)["copiesInFlight"] == {DST: 0}
    e.client("kms", DST).enable_key(KeyId=key["KeyId"])
    assert copy_snapshot(e, source, key)["SnapshotId"]


# --- failNextCopies ---------------------------------------------------------------------


def test_fail_next_copies_ends_the_next_copies_failed_with_the_given_message(fresh):
    e = fresh("--copy-seconds", str(SLOW))
    key = make_key(e, DST)
    ami = make_image(e, SRC, encrypted=True)
    source = make_snapshot(e, SRC, encrypted=True)["SnapshotId"]
    message = "The snapshot copy failed: the source snapshot could not be read"
    assert e.config(failNextCopies={"count": 2, "message": message, "code": "Server.InternalError"})["failNextCopies"]["count"] == 2
    ec2 = e.client("ec2", DST)
    failed_image = ec2.copy_image(SourceImageId=ami, SourceRegion=SRC, Name="copy", Encrypted=True, KmsKeyId=key["Arn"])["ImageId"]
    failed_snapshot = copy_snapshot(e, source, key)["SnapshotId"]
    good = copy_snapshot(e, source, key)["SnapshotId"]
    assert e.config()["failNextCopies"]["count"] == 0
    assert image(e, failed_image)["State"] == "pending", "the failure shows only when the copy settles"
    e.advance(SLOW)

    img = image(e, failed_image)
    assert img["State"] == "failed"
    assert img["StateReason"] == {"Code": "Server.InternalError", "Message": message}
    assert {s["State"] for s in snapshots_of(e, img)} == {"error"}
    assert {s["StateMessage"] for s in snapshots_of(e, img)} == {message}
    snaps = {s["SnapshotId"]: s for s in ec2.describe_snapshots(SnapshotIds=[failed_snapshot, good])["Snapshots"]}
    assert (snaps[failed_snapshot]["State"], snaps[failed_snapshot]["StateMessage"]) == ("error", message)
    assert snaps[good]["State"] == "completed"
    assert stats(e)["failedCopies"] == 2


def test_fail_next_copies_can_be_limited_to_one_destination_region(fresh):
    e = fresh("--copy-seconds", str(SLOW))
    source = make_snapshot(e, SRC, encrypted=True)["SnapshotId"]
    e.config(failNextCopies={"count": 1, "message": "broken in Europe", "region": "eu-west-1"})
    west = copy_snapshot(e, source)["SnapshotId"]
    europe = copy_snapshot(e, source, region="eu-west-1")["SnapshotId"]
    e.advance(SLOW)
    assert e.client("ec2", DST).describe_snapshots(SnapshotIds=[west])["Snapshots"][0]["State"] == "completed"
    failed = e.client("ec2", "eu-west-1").describe_snapshots(SnapshotIds=[europe])["Snapshots"][0]
    assert (failed["State"], failed["StateMessage"]) == ("error", "broken in Europe")


# --- hideNewCopies (row 11: eventual consistency) --------------------------------------


def test_hide_new_copies_answers_not_found_for_a_new_copys_first_describes(fresh):
    e = fresh("--copy-seconds", str(SLOW))
    key = make_key(e, DST)
    ami = make_image(e, SRC, encrypted=True)
    source = make_snapshot(e, SRC, encrypted=True)["SnapshotId"]
    ec2 = e.client("ec2", DST)
    assert e.config(hideNewCopies=2)["hideNewCopies"] == 2
    new_image = ec2.copy_image(SourceImageId=ami, SourceRegion=SRC, Name="copy", Encrypted=True, KmsKeyId=key["Arn"])["ImageId"]
    new_snapshot = copy_snapshot(e, source, key)["SnapshotId"]
    for _ in range(2):  # asked for by id: NotFound, as an id that does not exist
        with pytest.raises(ClientError) as missing_image:
            ec2.describe_images(ImageIds=[new_image])
        assert missing_image.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"
        assert new_image in missing_image.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as missing_snapshot:
            ec2.describe_snapshots(SnapshotIds=[new_snapshot])
        assert missing_snapshot.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
        assert new_snapshot in missing_snapshot.value.response["Error"]["Message"]
    assert image(e, new_image)["State"] == "pending", "visible from the third describe on"
    assert ec2.describe_snapshots(SnapshotIds=[new_snapshot])["Snapshots"][0]["State"] == "pending"
    assert stats(e)["hiddenDescribes"] == 4

    e.config(hideNewCopies=1)
    listed_later = copy_snapshot(e, source, key)["SnapshotId"]

    def listing() -> set[str]:
        return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}

    image_snapshots = {s["SnapshotId"] for s in snapshots_of(e, image(e, new_image))}
    assert listing() == {new_snapshot} | image_snapshots, "a listing leaves the hidden copy out"
    assert listed_later in listing()
    e.config(hideNewCopies=0)
    assert copy_snapshot(e, source, key)["SnapshotId"] in listing(), "off again: seen at once"


def test_plain_moto_describes_a_new_copy_at_once(plain):
    source = make_snapshot(plain, SRC)["SnapshotId"]
    copied = copy_snapshot(plain, source)["SnapshotId"]
    assert plain.client("ec2", DST).describe_snapshots(SnapshotIds=[copied])["Snapshots"][0]["SnapshotId"] == copied


# --- tamper -----------------------------------------------------------------------------


def test_tamper_repoints_a_snapshots_key_as_drift_would(fresh):
    e = fresh("--copy-seconds", "0")
    key = make_key(e, DST)
    other = make_key(e, DST, alias="alias/elsewhere")
    source = make_snapshot(e, SRC, encrypted=True)["SnapshotId"]
    replica = copy_snapshot(e, source, key)["SnapshotId"]
    answer = e._control("/_ferry/tamper", {"snapshotId": replica, "kmsKeyId": "alias/elsewhere"})
    assert answer == {"snapshotId": replica, "region": DST, "kmsKeyId": other["Arn"], "previousKmsKeyId": key["Arn"]}
    described = e.client("ec2", DST).describe_snapshots(SnapshotIds=[replica])["Snapshots"][0]
    assert (described["Encrypted"], described["KmsKeyId"]) == (True, other["Arn"])
    assert e.post("/_ferry/tamper", json.dumps({"snapshotId": "snap-0000000000000000f", "kmsKeyId": other["Arn"]}).encode())[0] == 404
    assert e.post("/_ferry/tamper", b'{"snapshotId": 3}')[0] == 400


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"throttleFraction": 1.5}',
        b'{"throttleFraction": -0.1}',
        b'{"throttleFraction": true}',
        b'{"throttleFraction": 0.6, "serverErrorFraction": 0.6}',
        b'{"serverErrorFraction": "half"}',
        b'{"seed": 1.5}',
        b'{"seed": false}',
        b'{"delaySeconds": -1}',
        b'{"copyQuotaPerRegion": 0}',
        b'{"copyQuotaPerRegion": 2.5}',
        b'{"failNextCopies": 3}',
        b'{"failNextCopies": {"count": -1}}',
        b'{"failNextCopies": {"count": 1, "message": ""}}',
        b'{"failNextCopies": {"count": 1, "reason": "x"}}',
        b'{"failNextCopies": {"count": 1, "region": 5}}',
        b'{"hideNewCopies": -1}',
        b'{"hideNewCopies": 1.5}',
        b'{"hideNewCopies": true}',
    ],
)
def test_bad_fault_settings_are_rejected(fresh, body):
    e = fresh("--plain")
    before = e.config()
    assert e.post("/_ferry/config", body)[0] == 400
    assert e.config() == before


def test_defaults_have_no_faults(emu):
    config = emu.config()
    assert (config["throttleFraction"], config["serverErrorFraction"], config["delaySeconds"]) == (0.0, 0.0, 0.0)
    assert config["copyQuotaPerRegion"] is None
    assert config["failNextCopies"]["count"] == 0
    assert config["hideNewCopies"] == 0
