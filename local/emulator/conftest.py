"""Fixtures: emulator subprocesses (patched and --plain) and boto3 clients for them.

The shared emulators run with copies and FSR steps of 600 s, so nothing settles on its
own; tests move the emulator clock with /_ferry/advance instead of sleeping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

PACKAGE_DIR = Path(__file__).resolve().parent
SLOW = 600.0  # seconds: copy/FSR step length in the shared emulators


def http_json(url: str, body: bytes | None = None) -> tuple[int, Any]:
    """GET `url`, or POST `body` to it: (status, JSON answer), error statuses included."""
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Emulator:
    """One ``python -m ferry_emulator`` process; stdin is kept open as its lifeline."""

    def __init__(self, *args: str):
        env = {**os.environ, "PYTHONPATH": str(PACKAGE_DIR)}
        env.pop("MOTO_PORT", None)
        self.started = time.monotonic()
        # stderr to a file: a pipe nobody drains would block the emulator once full
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ferry_emulator", "--port", "0", *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        line = self.proc.stdout.readline()
        self.ready_seconds = time.monotonic() - self.started
        if not line.startswith("FERRY_EMULATOR_READY "):
            self.proc.kill()
            self.stderr.seek(0)
            raise RuntimeError(f"emulator did not start: {line!r} {self.stderr.read()}")
        self.ready_line = line
        self.url = line.split()[1]

    # --- AWS clients ---
    def client(self, service: str, region: str = "us-east-1", access_key: str = "test") -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=access_key,
            aws_secret_access_key="test",
            config=Config(retries={"total_max_attempts": 1}),
        )

    # --- control endpoints ---
    def _control(self, path: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        """POSTs raw `body` to a control endpoint: (status, JSON answer), error statuses included."""
        return http_json(self.url + path, body)

    def config(self, **partial: Any) -> dict:
        return self._control("/_ferry/config", partial)

    def advance(self, seconds: float) -> dict:
        return self._control("/_ferry/advance", {"seconds": seconds})

    def calls(self) -> list[dict]:
        return self._control("/_ferry/calls")

    def events(self) -> list[dict]:
        return self._control("/_ferry/events")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                stream.close()
            except OSError:
                pass


@pytest.fixture(scope="session")
def emu():
    """Patched emulator shared by the suite (copies/FSR steps last 600 s)."""
    e = Emulator("--copy-seconds", str(SLOW), "--fsr-step-seconds", str(SLOW))
    yield e
    e.stop()


@pytest.fixture(scope="session")
def plain():
    """Unpatched moto behind the same control endpoints."""
    e = Emulator("--plain", "--copy-seconds", str(SLOW), "--fsr-step-seconds", str(SLOW))
    yield e
    e.stop()


@pytest.fixture
def fresh():
    """A patched emulator of the test's own (for global settings such as quotas)."""
    started: list[Emulator] = []

    def start(*args: str) -> Emulator:
        e = Emulator(*args)
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()


# --- resource helpers -------------------------------------------------------------------

SRC, DST = "us-east-1", "us-west-2"


def make_snapshot(e: Emulator, region: str = SRC, size: int = 8, kms_key_id: str | None = None, encrypted: bool = False) -> dict:
    ec2 = e.client("ec2", region)
    kwargs: dict[str, Any] = {"Size": size, "AvailabilityZone": f"{region}a"}
    if encrypted or kms_key_id:
        kwargs["Encrypted"] = True
    if kms_key_id:
        kwargs["KmsKeyId"] = kms_key_id
    volume = ec2.create_volume(**kwargs)
    return ec2.create_snapshot(VolumeId=volume["VolumeId"], Description="source")


def make_image(
    e: Emulator,
    region: str = SRC,
    encrypted: bool = False,
    devices: tuple[tuple[str, int, str], ...] = (("/dev/xvda", 8, "gp3"), ("/dev/sdf", 20, "gp2")),
    tags: dict[str, str] | None = None,
) -> str:
    """Register an AMI from one fresh snapshot per device; returns its ImageId."""
    ec2 = e.client("ec2", region)
    mappings = []
    for device, size, volume_type in devices:
        snap = make_snapshot(e, region, size=size, encrypted=encrypted)
        mappings.append(
            {
                "DeviceName": device,
                "Ebs": {"SnapshotId": snap["SnapshotId"], "VolumeSize": size, "VolumeType": volume_type, "DeleteOnTermination": True},
            }
        )
    kwargs: dict[str, Any] = {}
    if tags:
        kwargs["TagSpecifications"] = [{"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    image = ec2.register_image(
        Name=f"src-{time.monotonic_ns()}",
        RootDeviceName=devices[0][0],
        BlockDeviceMappings=mappings,
        Architecture="arm64",
        VirtualizationType="hvm",
        EnaSupport=True,
        **kwargs,
    )
    return image["ImageId"]


def make_key(e: Emulator, region: str = DST, alias: str | None = None, **kwargs: Any) -> dict:
    kms = e.client("kms", region)
    meta = kms.create_key(**kwargs)["KeyMetadata"]
    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return meta


def image(e: Emulator, image_id: str, region: str = DST) -> dict:
    return e.client("ec2", region).describe_images(ImageIds=[image_id])["Images"][0]


def snapshots_of(e: Emulator, img: dict, region: str = DST) -> list[dict]:
    ids = [m["Ebs"]["SnapshotId"] for m in img["BlockDeviceMappings"] if "Ebs" in m]
    found = e.client("ec2", region).describe_snapshots(SnapshotIds=ids)["Snapshots"]
    by_id = {s["SnapshotId"]: s for s in found}
    return [by_id[i] for i in ids]


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"
