"""Row 8: Enable/Describe/DisableFastSnapshotRestores with states on the emulator clock."""

from __future__ import annotations

import urllib.request

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from conftest import SLOW, make_snapshot

REGION = "eu-west-1"  # kept apart from the copy tests' Regions


def states(e, snapshot_id):
    items = e.client("ec2", REGION).describe_fast_snapshot_restores(
        Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}]
    )["FastSnapshotRestores"]
    return {i["AvailabilityZone"]: i["State"] for i in items}


def test_enable_steps_through_states_then_disable(emu):
    ec2 = emu.client("ec2", REGION)
    snap = make_snapshot(emu, region=REGION)["SnapshotId"]
    out = ec2.enable_fast_snapshot_restores(SourceSnapshotIds=[snap], AvailabilityZones=["eu-west-1a", "eu-west-1b"])
    assert out["Unsuccessful"] == []
    assert [(i["AvailabilityZone"], i["State"]) for i in out["Successful"]] == [("eu-west-1a", "enabling"), ("eu-west-1b", "enabling")]
    first = out["Successful"][0]
    assert first["OwnerId"] == "123456789012"
    assert first["StateTransitionReason"] == "Client.UserInitiated"
    assert "EnablingTime" in first and "OptimizingTime" not in first

    emu.advance(SLOW)
    assert states(emu, snap) == {"eu-west-1a": "optimizing", "eu-west-1b": "optimizing"}
    emu.advance(SLOW)
    items = ec2.describe_fast_snapshot_restores(Filters=[{"Name": "snapshot-id", "Values": [snap]}])["FastSnapshotRestores"]
    assert {i["State"] for i in items} == {"enabled"}
    assert all({"EnablingTime", "OptimizingTime", "EnabledTime"} <= set(i) for i in items)

    # enabling again is idempotent
    again = ec2.enable_fast_snapshot_restores(SourceSnapshotIds=[snap], AvailabilityZones=["eu-west-1a"])
    assert [(i["State"], i["EnablingTime"]) for i in again["Successful"]] == [("enabled", items[0]["EnablingTime"])]

    out = ec2.disable_fast_snapshot_restores(SourceSnapshotIds=[snap], AvailabilityZones=["eu-west-1a"])
    assert [i["State"] for i in out["Successful"]] == ["disabling"]
    emu.advance(SLOW)
    assert states(emu, snap) == {"eu-west-1a": "disabled", "eu-west-1b": "enabled"}


def test_describe_filters(emu):
    ec2 = emu.client("ec2", REGION)
    a = make_snapshot(emu, region=REGION)["SnapshotId"]
    b = make_snapshot(emu, region=REGION)["SnapshotId"]
    ec2.enable_fast_snapshot_restores(SourceSnapshotIds=[a, b], AvailabilityZones=["eu-west-1c"])

    def ids(filters):
        return {i["SnapshotId"] for i in ec2.describe_fast_snapshot_restores(Filters=filters)["FastSnapshotRestores"]}

    assert {a, b} <= ids([{"Name": "availability-zone", "Values": ["eu-west-1c"]}])
    assert ids([{"Name": "snapshot-id", "Values": [a]}]) == {a}
    assert {a, b} <= ids([{"Name": "state", "Values": ["enabling"]}])
    assert not ({a, b} & ids([{"Name": "state", "Values": ["enabled"]}]))
    ec2.disable_fast_snapshot_restores(SourceSnapshotIds=[a, b], AvailabilityZones=["eu-west-1c"])


def test_unknown_snapshot_and_zone_are_unsuccessful_items(emu):
    ec2 = emu.client("ec2", REGION)
    snap = make_snapshot(emu, region=REGION)["SnapshotId"]
    out = ec2.enable_fast_snapshot_restores(
        SourceSnapshotIds=[snap, "snap-0123456789abcdef0"], AvailabilityZones=["eu-west-1a", "us-east-1a"]
    )
    assert [(i["SnapshotId"], i["AvailabilityZone"]) for i in out["Successful"]] == [(snap, "eu-west-1a")]
    errors = {
        (item["SnapshotId"], e["AvailabilityZone"]): e["Error"]["Code"]
        for item in out["Unsuccessful"]
        for e in item["FastSnapshotRestoreStateErrors"]
    }
    assert errors == {
        (snap, "us-east-1a"): "InvalidParameterValue",
        ("snap-0123456789abcdef0", "eu-west-1a"): "InvalidSnapshot.NotFound",
        ("snap-0123456789abcdef0", "us-east-1a"): "InvalidSnapshot.NotFound",
    }
    ec2.disable_fast_snapshot_restores(SourceSnapshotIds=[snap], AvailabilityZones=["eu-west-1a"])
    never = ec2.disable_fast_snapshot_restores(SourceSnapshotIds=[snap], AvailabilityZones=["eu-west-1c"])
    assert [(i["AvailabilityZone"], i["State"]) for i in never["Successful"]] == [("eu-west-1c", "disabled")]


def test_quota_per_region(fresh):
    e = fresh("--fsr-step-seconds", "600")
    assert e.config(fsrQuotaPerRegion=2)["fsrQuotaPerRegion"] == 2
    ec2 = e.client("ec2", REGION)
    snaps = [make_snapshot(e, region=REGION)["SnapshotId"] for _ in range(3)]
    out = ec2.enable_fast_snapshot_restores(SourceSnapshotIds=snaps, AvailabilityZones=["eu-west-1a", "eu-west-1b"])
    assert {i["SnapshotId"] for i in out["Successful"]} == set(snaps[:2])
    [rejected] = out["Unsuccessful"]
    assert rejected["SnapshotId"] == snaps[2]
    assert {x["Error"]["Code"] for x in rejected["FastSnapshotRestoreStateErrors"]} == {"FastSnapshotRestoreLimitExceeded"}
    # more AZs for an already-counted snapshot are fine; another Region has its own quota
    assert ec2.enable_fast_snapshot_restores(SourceSnapshotIds=[snaps[0]], AvailabilityZones=["eu-west-1c"])["Unsuccessful"] == []
    other = make_snapshot(e, region="us-east-1")["SnapshotId"]
    assert e.client("ec2", "us-east-1").enable_fast_snapshot_restores(SourceSnapshotIds=[other], AvailabilityZones=["us-east-1a"])["Unsuccessful"] == []
    # disabling frees a slot
    ec2.disable_fast_snapshot_restores(SourceSnapshotIds=[snaps[1]], AvailabilityZones=["eu-west-1a", "eu-west-1b"])
    assert ec2.enable_fast_snapshot_restores(SourceSnapshotIds=[snaps[2]], AvailabilityZones=["eu-west-1a"])["Unsuccessful"] == []


def test_cannot_delete_snapshot_with_fsr(emu):
    ec2 = emu.client("ec2", REGION)
    snap = make_snapshot(emu, region=REGION)["SnapshotId"]
    ec2.enable_fast_snapshot_restores(SourceSnapshotIds=[snap], AvailabilityZones=["eu-west-1b"])
    with pytest.raises(ClientError) as err:
        ec2.delete_snapshot(SnapshotId=snap)
    assert err.value.response["Error"]["Code"] == "InvalidSnapshot.InUse"
    ec2.disable_fast_snapshot_restores(SourceSnapshotIds=[snap], AvailabilityZones=["eu-west-1b"])
    emu.advance(SLOW)
    ec2.delete_snapshot(SnapshotId=snap)


def test_wire_format_uses_botocore_location_names(emu):
    """The raw XML uses the query-protocol names the Rust SDK parses."""
    snap = make_snapshot(emu, region=REGION)["SnapshotId"]
    body = f"Action=EnableFastSnapshotRestores&Version=2016-11-15&SourceSnapshotId.1={snap}&AvailabilityZone.1=eu-west-1a"
    request = AWSRequest(method="POST", url=emu.url + "/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials("test", "test"), "ec2", REGION).add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, data=body.encode(), headers=dict(prepared.headers), method="POST")
    xml = urllib.request.urlopen(req).read().decode()
    for fragment in ("<successful>", "<item>", f"<snapshotId>{snap}</snapshotId>", "<state>enabling</state>", "<enablingTime>", "<unsuccessful"):
        assert fragment in xml, xml


def test_plain_moto_has_no_fsr(plain):
    snap = make_snapshot(plain, region=REGION)["SnapshotId"]
    # moto answers HTTP 500 with an HTML page, which botocore cannot even parse
    with pytest.raises((ClientError, ResponseParserError)):
        plain.client("ec2", REGION).enable_fast_snapshot_restores(SourceSnapshotIds=[snap], AvailabilityZones=["eu-west-1a"])
