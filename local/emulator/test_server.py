"""The process contract the Rust harness relies on, and the control endpoints."""

from __future__ import annotations

import json
import re
import signal

import pytest

READY = re.compile(r"FERRY_EMULATOR_READY http://127\.0\.0\.1:(\d+)\n")


def test_ready_line_is_the_only_stdout_and_stdin_eof_exits(fresh):
    e = fresh()
    assert READY.fullmatch(e.ready_line)
    assert e.ready_seconds < 10
    e.client("ec2").describe_images(Owners=["self"])
    e.client("sts").get_caller_identity()
    e.proc.stdin.close()  # the parent went away
    assert e.proc.wait(10) == 0
    assert e.proc.stdout.read() == ""  # nothing after the READY line


def test_sigterm_exits(fresh):
    e = fresh("--plain")
    e.proc.send_signal(signal.SIGTERM)
    assert e.proc.wait(10) == 0


def test_parallel_emulators_get_distinct_ports(fresh):
    a, b = fresh(), fresh("--plain")
    assert a.url != b.url


def test_config_is_partial_and_validated(fresh):
    e = fresh("--copy-seconds", "3", "--fsr-step-seconds", "4")
    idle = {"actions": [], "times": 0}
    # No faults by default (test_faults.py covers each switch).
    faults = {
        "seed": 0,
        "throttleFraction": 0.0,
        "serverErrorFraction": 0.0,
        "delaySeconds": 0.0,
        "copyQuotaPerRegion": None,
        "failNextCopies": {"count": 0, "code": "Server.InternalError", "message": "An internal error has occurred", "region": None},
        "hideNewCopies": 0,
        # Step Functions engine (test_stepfunctions.py covers them).
        "lambdaEndpoint": None,
        "stepFunctions": {"waitSeconds": None, "retrySeconds": None},
        "failPutEvents": 0,
        # Instances (test_instances.py covers them).
        "instanceBootSeconds": 2.0,
        "statusCheckSeconds": 2.0,
        "instanceShutdownSeconds": 2.0,
        "impairStatusChecks": {"times": 0, "instanceIds": [], "check": "instance"},
        "launchVolumeKey": {"kmsKeyId": None, "times": 0, "region": None, "deviceName": None},
    }
    assert e.config() == {"copySeconds": 3.0, "fsrStepSeconds": 4.0, "fsrQuotaPerRegion": 5, "throttle": idle, **faults}
    assert e.config(fsrQuotaPerRegion=7) == {"copySeconds": 3.0, "fsrStepSeconds": 4.0, "fsrQuotaPerRegion": 7, "throttle": idle, **faults}
    assert e.post("/_ferry/config", b'{"nope": 1}')[0] == 400
    assert e.post("/_ferry/config", b'{"copySeconds": "x"}')[0] == 400
    assert e.post("/_ferry/config", b"not json")[0] == 400
    assert e.post("/_ferry/advance", b'{"seconds": 1.5}') == (200, {"offsetSeconds": 1.5})
    assert e.post("/_ferry/advance", b'{"seconds": 2}') == (200, {"offsetSeconds": 3.5})
    assert e.post("/_ferry/nothing", b"{}")[0] == 404


@pytest.mark.parametrize("mode", ["patched", "plain"])
def test_calls_and_events_are_recorded(fresh, mode):
    e = fresh() if mode == "patched" else fresh("--plain")
    e.client("ec2", "us-west-2").describe_snapshots(OwnerIds=["self"])
    e.client("kms", "eu-central-1").list_keys()
    e.client("sts", "us-east-1").get_caller_identity()
    e.client("lambda", "us-east-1").list_functions()
    e.client("events", "us-west-2", access_key="ferry-tag-lineage").create_event_bus(Name="custom")
    detail = json.dumps({"ImageId": "ami-1", "State": "available"})
    e.client("events", "us-west-2").put_events(
        Entries=[
            {"Source": "ferry.test", "DetailType": "EC2 AMI State Change", "Detail": detail, "Resources": ["arn:x"]},
            {"Source": "ferry.test", "DetailType": "Other", "Detail": "{}", "EventBusName": "custom"},
        ]
    )
    # Each call names its caller by access key id: the IAM test groups the calls by function.
    assert e.calls() == [
        {"service": "ec2", "action": "DescribeSnapshots", "region": "us-west-2", "accessKeyId": "test"},
        {"service": "kms", "action": "ListKeys", "region": "eu-central-1", "accessKeyId": "test"},
        {"service": "sts", "action": "GetCallerIdentity", "region": "us-east-1", "accessKeyId": "test"},
        {"service": "lambda", "action": "ListFunctions", "region": "us-east-1", "accessKeyId": "test"},
        {"service": "events", "action": "CreateEventBus", "region": "us-west-2", "accessKeyId": "ferry-tag-lineage"},
        {"service": "events", "action": "PutEvents", "region": "us-west-2", "accessKeyId": "test"},
    ]
    assert e.events() == [
        {"region": "us-west-2", "source": "ferry.test", "detailType": "EC2 AMI State Change", "detail": detail, "eventBusName": None, "resources": ["arn:x"]},
        {"region": "us-west-2", "source": "ferry.test", "detailType": "Other", "detail": "{}", "eventBusName": "custom", "resources": []},
    ]


def test_plain_mode_accepts_config_and_advance(plain):
    assert plain.config(copySeconds=1)["copySeconds"] == 1
    assert plain.advance(5)["offsetSeconds"] >= 5
