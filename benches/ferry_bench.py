#!/usr/bin/env python3
"""ferry's benchmarks (run by `make bench` through scripts/bench; never part of `make test`).

Measures the six Lambda binaries as they are deployed and writes docs/PERFORMANCE.md:

1. per function: the stripped `bootstrap` binary, its deployment zip, the cold start (process
   spawned -> first invocation answered) and its init phase (until the process connects to the
   Runtime API for its first event), the warm round trip (invocations after the first, in one
   process), CPU time and the peak RSS (VmHWM). The functions run as the tests run them
   (tests/src/state_machine.rs): one `cargo lambda watch --only-lambda-apis` serves the Runtime
   API each process polls and the Invoke API the bench sends the events to;
2. per replication, for copies of 5, 30 and 120 minutes: the deployed state machines on moto's
   Step Functions engine with the release binaries behind it (tests/examples/replication_bench.rs,
   over the test harness tests/src/state_machine.rs), counting state transitions, history events,
   payloads, Lambda invocations and the AWS calls the local AWS received; the cost at list prices;
3. the fleet and the polling rule: target/bench/fleet.json, which scripts/bench writes with
   functions/ferry-core/examples/fleet_bench.rs (planning at scale, sweep makespan, and the
   detection lag as `rules::polling` gives it).

Inputs are realistic: seeded encrypted AMIs (two snapshots under two source keys), EC2 AMI State
Change events for plan-replication, and for each later function the documents the previous
function's binary produced. Everything runs on loopback against the emulator in local/emulator.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
import uuid
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("FERRY_VENV", REPO / ".venv"))  # scripts/setup makes it
FUNCTIONS = ["plan-replication", "start-copy", "check-copy", "verify-encryption", "tag-lineage", "enable-fsr"]
ACCOUNT = "123456789012"  # moto's account
SOURCE, DESTINATION = "us-east-1", "us-west-2"
ALIAS = "alias/ferry-bench-usw2"
ZONES = ["us-west-2a", "us-west-2b"]
# The README's example request, as a deployed policy: AMIs tagged dr-tier=gold go to us-west-2
# under an alias, with FSR in two zones, disabled again after 24 hours (the per-replication runs,
# tests/examples/replication_bench.rs, give their destination the same options).
POLICY = {
    "selection": {"tagKey": "dr-tier", "tagValues": ["gold"]},
    "requireEncryptedSource": True,
    "sourceRegions": [SOURCE],
    "copySourceTags": True,
    "destinations": [{"region": DESTINATION, "kmsKeyId": ALIAS, "fsr": {"availabilityZones": ZONES, "disableAfterHours": 24}}],
}
WORK_BUCKET = "ferry-work-123456789012-us-east-1"  # the stack's bucket (tests/src/state_machine.rs)
MEMORY_MB = 128
EXTRA_ENV: dict[str, str] = {}  # --extra-env: for every function process (experiments)

# List prices (us-east-1), USD: aws.amazon.com/step-functions/pricing (Standard workflows, per
# state transition, retries included), /lambda/pricing, /kms/pricing, /s3/pricing (S3 Standard),
# /eventbridge/pricing (custom events).
SFN_PER_TRANSITION = 0.025 / 1000
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND_X86 = 0.0000166667
KMS_PER_REQUEST = 0.03 / 10_000
S3_PER_PUT_OR_LIST = 0.005 / 1000
S3_PER_GET = 0.0004 / 1000
EVENTBRIDGE_PER_EVENT = 1.00 / 1_000_000


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


# --- the local AWS ----------------------------------------------------------------------------


class Emulator:
    """local/emulator (moto plus ferry's patch layer) on a free loopback port."""

    def __init__(self, copy_seconds: float, work: Path):
        self.log = open(work / "emulator.log", "ab")
        self.proc = subprocess.Popen(
            [str(VENV / "bin/python"), "-m", "ferry_emulator", "--host", "127.0.0.1", "--port", "0", "--copy-seconds", str(copy_seconds)],
            env={**os.environ, "PYTHONPATH": str(REPO / "local/emulator")},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("FERRY_EMULATOR_READY "):
            raise RuntimeError(f"the emulator did not start: {line!r} (see {work / 'emulator.log'})")
        self.endpoint = line.split(" ", 1)[1]
        self.offset = 0.0

    def control(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.endpoint + path, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def configure(self, **settings) -> None:
        self.control("POST", "/_ferry/config", settings)

    def advance(self, seconds: float) -> None:
        self.offset = self.control("POST", "/_ferry/advance", {"seconds": seconds})["offsetSeconds"]

    def now(self) -> float:
        """The emulator's clock: real time plus the offset moved so far."""
        return time.time() + self.offset

    def calls(self) -> list[dict]:
        return self.control("GET", "/_ferry/calls")

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Seeder:
    """Seeds the emulator through boto3: keys, an alias, encrypted two-snapshot AMIs."""

    def __init__(self, endpoint: str):
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=SOURCE)
        config = BotoConfig(retries={"max_attempts": 2})
        self.ec2 = {r: session.client("ec2", region_name=r, endpoint_url=endpoint, config=config) for r in (SOURCE, DESTINATION)}
        self.kms = {r: session.client("kms", region_name=r, endpoint_url=endpoint, config=config) for r in (SOURCE, DESTINATION)}
        self.source_keys = [self.kms[SOURCE].create_key()["KeyMetadata"]["Arn"] for _ in range(2)]
        destination_key = self.kms[DESTINATION].create_key()["KeyMetadata"]["KeyId"]
        self.kms[DESTINATION].create_alias(AliasName=ALIAS, TargetKeyId=destination_key)
        self.s3 = session.client("s3", endpoint_url=endpoint, config=BotoConfig(retries={"max_attempts": 2}, s3={"addressing_style": "path"}))
        self.s3.create_bucket(Bucket=WORK_BUCKET)

    def work_items(self, plan: dict) -> list[dict]:
        """The replication documents a plan wrote to its work lists in S3."""
        items = []
        for region in plan["regions"]:
            body = self.s3.get_object(Bucket=plan["bucket"], Key=region["key"])["Body"].read()
            items += [item["replication"] for item in json.loads(body)]
        return items

    def image(self, name: str) -> str:
        """An AMI with an 8 GiB root and a 20 GiB data snapshot, each under its own key."""
        ec2 = self.ec2[SOURCE]
        mappings = []
        for device, size, key in (("/dev/xvda", 8, self.source_keys[0]), ("/dev/xvdb", 20, self.source_keys[1])):
            volume = ec2.create_volume(AvailabilityZone=f"{SOURCE}a", Size=size, VolumeType="gp3", Encrypted=True, KmsKeyId=key)
            snapshot = ec2.create_snapshot(VolumeId=volume["VolumeId"])
            mappings.append({"DeviceName": device, "Ebs": {"SnapshotId": snapshot["SnapshotId"], "VolumeType": "gp3", "DeleteOnTermination": True}})
        image = ec2.register_image(
            Name=name, Architecture="x86_64", VirtualizationType="hvm", RootDeviceName="/dev/xvda", BlockDeviceMappings=mappings
        )["ImageId"]
        ec2.create_tags(Resources=[image], Tags=[{"Key": "dr-tier", "Value": "gold"}, {"Key": "app", "Value": "web"}])
        return image


def ami_available_event(image_id: str) -> dict:
    """The EventBridge event EC2 sends when an AMI becomes available (tests/fixtures/events/ami-available.json)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "EC2 AMI State Change",
        "source": "aws.ec2",
        "account": ACCOUNT,
        "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": SOURCE,
        "resources": [f"arn:aws:ec2:{SOURCE}::image/{image_id}"],
        "detail": {"RequestId": str(uuid.uuid4()), "ImageId": image_id, "State": "available", "ErrorMessage": ""},
    }


# --- the functions, as the tests run them: cargo lambda watch ----------------------------------------


class Watch:
    """`cargo lambda watch --only-lambda-apis` on a free loopback port, started as the test harness
    starts it (tests/src/state_machine.rs, `LocalStepFunctions::start`): the Lambda Runtime API
    each function process polls at `/.rt/<function>`, and the Invoke API
    (`POST /2015-03-31/functions/<function>/invocations`, a binary of the workspace by name) that
    hands it events. It starts no function and runs no cargo build."""

    def __init__(self, work: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = open(work / "watch.log", "ab")
        command = [str(VENV / "bin/cargo-lambda"), "lambda", "watch", "--only-lambda-apis", "--ignore-changes",
                   "-A", "127.0.0.1", "-P", str(self.port)]
        self.proc = subprocess.Popen(command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while not self.listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"cargo lambda watch did not listen on {self.port}: see {work / 'watch.log'}")
            time.sleep(0.02)

    def listening(self) -> bool:
        # A loopback connect retried to a port of the ephemeral range can connect to itself (TCP
        # simultaneous open): that is not a listener.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                return connection.getsockname() != connection.getpeername()
        except OSError:
            return False

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class FunctionFailed(RuntimeError):
    pass


class LambdaProcess:
    """One execution environment: the function's `bootstrap` polling watch, with the environment
    the test harness gives the functions (the template's settings: 128 MB, JSON logs)."""

    def __init__(self, function: str, bootstrap: Path, watch: Watch, endpoint: str, work: Path, extra_env: dict[str, str] | None = None):
        self.function, self.watch = function, watch
        env = {
            "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{watch.port}/.rt/{function}",
            "AWS_LAMBDA_FUNCTION_NAME": function,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": function,  # each function signs as itself, as its own role would
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": SOURCE,
            "AWS_EC2_METADATA_DISABLED": "true",
            "FERRY_SDK_INITIAL_BACKOFF_MS": "50",
            "FERRY_FUNCTION_TIMEOUT_SECONDS": "30",  # the template's Globals (Timeout: 30)
            "AWS_LAMBDA_LOG_FORMAT": "JSON",  # the template's LoggingConfig
            "AWS_LAMBDA_LOG_LEVEL": "INFO",
        }
        if function == "plan-replication":
            env.update(FERRY_POLICY=json.dumps(POLICY), FERRY_WORK_BUCKET=WORK_BUCKET)
        if function == "tag-lineage":
            env["FERRY_EVENT_BUS"] = "default"
        env.update({**EXTRA_ENV, **(extra_env or {})})
        self.log = open(work / f"{function}.log", "ab")
        self.invocations = 0
        self.sockets: dict[str, float] = {}  # "socket:[inode]" -> when first seen open
        self.answered = threading.Event()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([str(bootstrap)], env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.watcher = threading.Thread(target=self.watch_sockets, daemon=True)
        self.watcher.start()

    def watch_sockets(self) -> None:
        """Until the first answer, every millisecond: when each of the process's sockets was first open."""
        fds = Path(f"/proc/{self.proc.pid}/fd")
        while not self.answered.wait(0.001):
            now = time.perf_counter()
            try:
                for fd in fds.iterdir():
                    target = os.readlink(fd)
                    if target.startswith("socket:"):
                        self.sockets.setdefault(target, now)
            except OSError:
                pass  # an fd closed under us, or the process is gone

    def invoke(self, payload, timeout: float = 60) -> tuple[dict, float, float]:
        """One invocation through watch's Invoke API: the answer, and when the request was sent
        and the answer arrived (perf_counter). watch answers a handler error with HTTP 500 and
        `{"errorType", "errorMessage"}`."""
        connection = http.client.HTTPConnection("127.0.0.1", self.watch.port, timeout=timeout)
        try:
            sent = time.perf_counter()
            connection.request("POST", f"/2015-03-31/functions/{self.function}/invocations", body=json.dumps(payload),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            body = response.read()
            done = time.perf_counter()
        except OSError as error:
            raise FunctionFailed(f"{self.function}: no answer ({error}; exit code {self.proc.poll()})") from error
        finally:
            connection.close()
            self.answered.set()
        self.invocations += 1
        if response.status != 200:
            raise FunctionFailed(f"{self.function} answered an error (HTTP {response.status}): {body.decode(errors='replace')}")
        return json.loads(body), sent, done

    def init_ms(self) -> float:
        """From the spawn to the process opening its connection to watch, which it does to ask
        for its first event: the socket whose peer is watch's port (/proc/PID/net/tcp; the
        runtime keeps that connection), as first seen open. After the first answer, while the
        process lives."""
        self.watcher.join()
        to_watch = set()
        with open(f"/proc/{self.proc.pid}/net/tcp") as table:
            for row in list(table)[1:]:
                fields = row.split()  # local and remote address (hex ip:port), ..., inode (10th)
                if int(fields[2].rsplit(":", 1)[1], 16) == self.watch.port:
                    to_watch.add(f"socket:[{fields[9]}]")
        opened = [self.sockets[s] for s in to_watch & self.sockets.keys()]
        if not opened:
            raise RuntimeError(f"{self.function}: none of its sockets is connected to watch's port {self.watch.port}")
        return (min(opened) - self.started) * 1000

    def cpu_ms(self) -> float:
        """CPU time of all the process's threads so far (schedstat, nanoseconds), in ms."""
        total = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass  # a thread that just ended
        return total / 1e6

    def peak_rss_kib(self) -> int:
        """VmHWM: the peak resident set size so far."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> int:
        """Peak RSS (KiB) read just before the process is stopped."""
        peak = self.peak_rss_kib() if self.proc.poll() is None else 0
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.answered.set()
        self.log.close()
        return peak


# --- clock: the binaries read the system clock, the emulator runs ahead of it ---------------------


def to_emulator_time(document: dict, emulator: Emulator) -> dict:
    """After start-copy: `copy.startedAt` as the emulator's clock read it (the tests' EmulatorClock)."""
    if isinstance(document.get("copy"), dict):
        document["copy"]["startedAt"] += int(emulator.offset)
    return document


def for_binary(document: dict, emulator: Emulator) -> dict:
    """check-copy computes elapsed = now - copy.startedAt from the system clock; the emulator's
    clock is the system clock plus the offset the Wait states moved it. Handing the binary
    startedAt minus that offset gives it exactly the emulator's elapsed time."""
    shifted = json.loads(json.dumps(document))
    shifted["copy"]["startedAt"] -= int(emulator.offset)
    return shifted


# --- 1. per function --------------------------------------------------------------------------------


def package(function: str, release: Path, out: Path) -> dict:
    """`bootstrap` (stripped) and its deployment zip, as provided.al2023 expects."""
    directory = out / "package" / function
    directory.mkdir(parents=True, exist_ok=True)
    bootstrap = directory / "bootstrap"
    shutil.copy2(release / function, bootstrap)
    if shutil.which("strip"):
        subprocess.run(["strip", "--strip-all", str(bootstrap)], check=True)
    bootstrap.chmod(0o755)
    archive = out / "package" / f"{function}.zip"
    info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = (0o100755 & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, bootstrap.read_bytes(), compresslevel=9)
    return {"bootstrap": bootstrap, "binaryBytes": bootstrap.stat().st_size, "zipBytes": archive.stat().st_size, "releaseBytes": (release / function).stat().st_size}


def bench_function(function: str, bootstrap: Path, emulator: Emulator, watch: Watch, inputs: list, cold_runs: int, warm_runs: int,
                   work: Path, prepare=lambda doc: doc, finish=lambda doc: doc, extra_env=None) -> tuple[dict, list]:
    """`cold_runs` fresh processes with one invocation each, then one process with 1 + `warm_runs`
    invocations. Each invocation gets its own input; returns the figures and the outputs."""
    assert len(inputs) >= cold_runs + 1 + warm_runs, (function, len(inputs))
    outputs, cold, init, cold_rss, cold_cpu = [], [], [], [], []
    for payload in inputs[:cold_runs]:
        process = LambdaProcess(function, bootstrap, watch, emulator.endpoint, work, extra_env)
        try:
            output, _, answered = process.invoke(prepare(payload))
            cold_cpu.append(process.cpu_ms())
            cold.append((answered - process.started) * 1000)
            init.append(process.init_ms())
        finally:
            cold_rss.append(process.stop())
        outputs.append(finish(output))
    process = LambdaProcess(function, bootstrap, watch, emulator.endpoint, work, extra_env)
    warm, cpu_after_first = [], 0.0
    try:
        for index, payload in enumerate(inputs[cold_runs:cold_runs + 1 + warm_runs]):
            output, sent, answered = process.invoke(prepare(payload))
            if index == 0:
                cpu_after_first = process.cpu_ms()
            else:
                warm.append((answered - sent) * 1000)
            outputs.append(finish(output))
        warm_cpu = (process.cpu_ms() - cpu_after_first) / warm_runs
    finally:
        warm_rss = process.stop()
    figures = {
        "coldStartMs": {"median": median(cold), "min": min(cold), "max": max(cold), "runs": cold},
        "initMs": {"median": median(init), "runs": init},
        "coldCpuMs": {"median": median(cold_cpu), "runs": cold_cpu},
        "warmCpuMsPerInvocation": warm_cpu,
        "warmMs": {"median": median(warm), "p95": p95(warm), "min": min(warm), "max": max(warm), "runs": warm},
        "peakRssKiB": {"cold": max(cold_rss), "warm": warm_rss, "max": max(cold_rss + [warm_rss])},
    }
    return figures, outputs


def part_one(bootstraps: dict[str, Path], work: Path, cold_runs: int, warm_runs: int) -> dict:
    count = cold_runs + 1 + warm_runs
    emulator, watch = Emulator(copy_seconds=3600, work=work), None
    results = {}
    try:
        watch = Watch(work)
        # Enough FSR quota for every replica here (the deployed default is 5 per Region).
        emulator.configure(fsrQuotaPerRegion=100_000)
        seed = Seeder(emulator.endpoint)
        log(f"seeding {count} encrypted two-snapshot AMIs")
        images = [seed.image(f"bench-{i}") for i in range(count)]
        # As the state machine's Plan state sends it: the trigger and the execution id.
        documents = [{"trigger": ami_available_event(image), "executionId": f"arn:aws:states:{SOURCE}:{ACCOUNT}:execution:ferry:bench-{i}"}
                     for i, image in enumerate(images)]
        fsr_env = {"FERRY_FSR_QUOTA": "100000"}
        for function in FUNCTIONS:
            log(f"{function}: {cold_runs} cold starts, then 1 + {warm_runs} invocations in one process")
            prepare, finish = (lambda d: d), (lambda d: d)
            if function == "start-copy":
                finish = lambda d: to_emulator_time(d, emulator)  # noqa: E731
            if function == "check-copy":
                emulator.advance(30)  # the first Wait state
                prepare = lambda d: for_binary(d, emulator)  # noqa: E731
                finish = lambda d: to_emulator_time(d, emulator)  # noqa: E731
            figures, outputs = bench_function(function, bootstraps[function], emulator, watch, documents, cold_runs, warm_runs, work,
                                              prepare=prepare, finish=finish, extra_env=fsr_env if function == "enable-fsr" else None)
            results[function] = figures
            if function == "plan-replication":
                outputs = [item for plan in outputs for item in seed.work_items(plan)]
            if function == "check-copy":
                assert all(d["copy"]["status"] == "pending" for d in outputs), "the measured checks are pending ones"
                # Let every copy finish, and check each once more (not measured) to get completed documents.
                emulator.advance(3600)
                process = LambdaProcess("check-copy", bootstraps["check-copy"], watch, emulator.endpoint, work)
                try:
                    outputs = [to_emulator_time(process.invoke(for_binary(d, emulator))[0], emulator) for d in outputs]
                finally:
                    process.stop()
                assert all(d["copy"]["status"] == "completed" for d in outputs), [d["copy"] for d in outputs]
            documents = outputs
        assert all(d["evidence"]["fsr"]["outcome"] == "requested" for d in documents)
    finally:
        if watch:
            watch.close()
        emulator.close()
    return results


# --- 2. per replication: moto's Step Functions engine --------------------------------------------


def cargo_target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")


def replication_runs(release: Path, minutes: list[int], work: Path) -> list[dict]:
    """One run of the deployed state machines per copy duration on moto's engine, with the
    binaries in `release` behind it: tests/examples/replication_bench.rs, which prints JSON."""
    command = ["cargo", "run", "--locked", "-q", "-p", "ferry-tests", "--example", "replication_bench", "--", *map(str, minutes)]
    log(" ".join(command) + f"  (FERRY_FUNCTIONS_DIR={release})")
    with open(work / "replication_bench.log", "ab") as stderr:
        done = subprocess.run(command, cwd=REPO, env={**os.environ, "FERRY_FUNCTIONS_DIR": str(release.resolve())},
                              stdout=subprocess.PIPE, stderr=stderr, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"replication_bench failed ({done.returncode}): see {work / 'replication_bench.log'}")
    return json.loads(done.stdout)["replications"]


def with_costs(run: dict, functions: dict) -> dict:
    """The run's Lambda usage and its cost at list prices."""
    invocations = run["invocations"]
    invoked = sorted({i["function"] for i in invocations})
    # Lambda bills each invocation per 1 ms, and provided.al2023 bills the init phase of a cold
    # start too: one per function (its median from the Lambda table).
    billed_ms = sum(math.ceil(i["roundTripMs"]) for i in invocations) + sum(math.ceil(functions[f]["initMs"]["median"]) for f in invoked)
    gb_seconds = billed_ms / 1000 * MEMORY_MB / 1024
    calls = dict(run["calls"])
    for action, count in run["engineCalls"].items():
        if action.startswith("s3:"):
            calls[action] = calls.get(action, 0) + count
    s3_get = sum(n for a, n in calls.items() if a in ("s3:GetObject", "s3:HeadObject"))
    s3_other = sum(n for a, n in calls.items() if a.startswith("s3:")) - s3_get
    kms = sum(n for a, n in calls.items() if a.startswith("kms:"))
    transitions = run["transitions"]["total"]
    cost = {
        "stepFunctions": transitions * SFN_PER_TRANSITION,
        "lambdaRequests": len(invocations) * LAMBDA_PER_REQUEST,
        "lambdaCompute": gb_seconds * LAMBDA_PER_GB_SECOND_X86,
        "kms": kms * KMS_PER_REQUEST,
        "s3": s3_get * S3_PER_GET + s3_other * S3_PER_PUT_OR_LIST,
        "eventBridge": calls.get("events:PutEvents", 0) * EVENTBRIDGE_PER_EVENT,
    }
    cost["total"] = sum(cost.values())
    # A DR sweep of 1,000 replications to one Region: the run's own states and its Region's Map
    # child once, each replication's Map child and execution 1,000 times (Step Functions only).
    share = run["transitions"]["replication"] + 1
    sweep_transitions = transitions - share + 1000 * share
    return {**run, "lambdaInvocations": len(invocations), "lambdaGbSeconds": gb_seconds, "s3Requests": {"get": s3_get, "putOrList": s3_other},
            "kmsRequests": kms, "costUsd": cost, "sweepOf1000Transitions": sweep_transitions}



# --- the machine -------------------------------------------------------------------------------------


def machine() -> dict:
    def first(path: str, prefix: str) -> str:
        try:
            for line in open(path):
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    def run(*command: str) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    os_name = "unknown"
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    mem_kib = int(first("/proc/meminfo", "MemTotal").split()[0]) if first("/proc/meminfo", "MemTotal") != "unknown" else 0
    import moto

    return {
        "cpu": first("/proc/cpuinfo", "model name"),
        "cores": len(os.sched_getaffinity(0)),
        "memoryGiB": round(mem_kib / 1024 / 1024, 1),
        "os": f"{os_name}, Linux {platform.release()} ({platform.machine()})",
        "rustc": run("rustc", "-V"),
        "cargo": run("cargo", "-V"),
        "python": platform.python_version(),
        "moto": moto.__version__,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "target": run("rustc", "-vV").split("host: ")[-1].split()[0] if "host: " in run("rustc", "-vV") else "unknown",
        "installedTargets": run("rustup", "target", "list", "--installed").split(),
    }


def release_profile() -> dict:
    return tomllib.loads((REPO / "Cargo.toml").read_text()).get("profile", {}).get("release", {})


# --- the report ----------------------------------------------------------------------------------------


def mb(n: int) -> str:
    """Bytes in MB (10^6 bytes, the unit of the 5 MB and 32 MB targets)."""
    return f"{n / 1e6:.2f} MB"


def usd(x: float) -> str:
    return f"${x:.6f}" if x < 0.01 else f"${x:.4f}"


def per_replication_lines(runs: list[dict], fleet: dict) -> list[str]:
    rule = {c["copySeconds"]: c for c in fleet["detectionLag"]["copies"]}
    first = runs[0]
    fixed = {r["transitions"]["replication"] - 3 * r["checkCopyInvocations"] for r in runs}
    assert len(fixed) == 1, f"a replication's transitions are not a constant plus 3 per check: {[r['transitions'] for r in runs]}"
    fixed_share = fixed.pop()
    run_share, map_children = first["transitions"]["run"], first["transitions"]["mapChildren"]
    for r in runs:
        assert r["transitions"]["run"] == run_share and r["transitions"]["mapChildren"] == map_children, r["transitions"]
    minutes = [r["copyMinutes"] for r in runs]

    def rule_figures(r: dict, progress: str) -> str:
        c = rule.get(r["copyMinutes"] * 60)
        return f"{c[progress]['checks']} / {c[progress]['lagSeconds']} s" if c else "—"

    lines = [
        "## Per replication",
        "",
        "One run of the deployed state machines on **moto's Step Functions engine** for one encrypted AMI (8 GiB root + 20 GiB data",
        "snapshot, two source keys) and one destination Region, triggered by its `EC2 AMI State Change` event, with the README's",
        "options (alias key, `copySourceTags`, FSR in two zones with `disableAfterHours: 24`): `statemachine/ferry.asl.json` plans,",
        "its two Distributed Maps start the replication as an execution of `statemachine/replication.asl.json`",
        "(`startExecution.sync:2`), and Summarize writes the run manifest. Every Task invokes the release binaries above through",
        "the test harness (`tests/src/state_machine.rs`: `cargo lambda watch` and its Lambda router, tests/stepfunctions/README.md);",
        "`tests/examples/replication_bench.rs` runs it and reads both executions back with `GetExecutionHistory`. The AWS calls",
        "come from the local AWS's record of every call, told apart by caller (each function signs as itself, the engine as",
        "`state-machine`).",
        "",
        "The local AWS keeps the copy pending for the copy duration on its own clock, with linear `Progress`; the engine's Wait",
        "states last 250 ms. So that each check comes when it would on AWS, a clock proxy in front of the Lambda router moves the",
        "local AWS's clock, before each check-copy, to the end of the Wait the previous answer asked for (`nextCheckSeconds` after",
        "it), and hands check-copy `copy.startedAt` moved back by the clock's lead (its answer moved forward again): the binaries",
        "read the wall clock, and this way the elapsed time check-copy computes is the local AWS's. Nothing else changes.",
        "",
        "| copy takes | check-copy invocations | Lambda invocations | state transitions: run + Map children + replication | history events: run / replication | largest payload: run / replication | EC2 calls | KMS calls | S3 requests | EventBridge events | cost per replication | per 1,000 (a run each) | per 1,000 (one sweep) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        t, e = r["transitions"], r["executions"]
        ec2 = sum(n for a, n in r["calls"].items() if a.startswith("ec2:"))
        s3 = r["s3Requests"]["get"] + r["s3Requests"]["putOrList"]
        sweep = r["sweepOf1000Transitions"] * SFN_PER_TRANSITION
        lines.append(
            f"| {r['copyMinutes']} min | {r['checkCopyInvocations']} | {r['lambdaInvocations']} | {t['run']} + {t['mapChildren']} + {t['replication']} = **{t['total']}** | "
            f"{e['run']['historyEvents']} / {e['replication']['historyEvents']} | {e['run']['largestPayloadBytes']:,} / {e['replication']['largestPayloadBytes']:,} B | "
            f"{ec2} | {r['kmsRequests']} | {s3} | {r['calls'].get('events:PutEvents', 0)} | {usd(r['costUsd']['total'])} | ${1000 * r['costUsd']['total']:.2f} | ${sweep:.2f} |"
        )
    lines += [
        "",
        "Cost per replication at list prices (us-east-1, x86_64, before free tiers):",
        "",
        "| copy takes | Step Functions (transitions × $0.025/1,000) | Lambda requests ($0.20/1M) | Lambda compute (128 MB, $0.0000166667/GB-s) | KMS ($0.03/10,000) | S3 ($0.005/1,000 PUT and LIST, $0.0004/1,000 GET) | EventBridge ($1.00/1M events) | total |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        c = r["costUsd"]
        lines.append(
            f"| {r['copyMinutes']} min | {usd(c['stepFunctions'])} | {usd(c['lambdaRequests'])} | {usd(c['lambdaCompute'])} "
            f"({r['lambdaGbSeconds']:.4f} GB-s) | {usd(c['kms'])} | {usd(c['s3'])} | {usd(c['eventBridge'])} | **{usd(c['total'])}** |"
        )
    path = first["path"]["replication"]
    loop = ", ".join(path[1:4])
    tail = ", ".join(path[-(fixed_share - 1):])
    lines += [
        "",
        "**State transitions** are counted as AWS bills Standard workflows (aws.amazon.com/step-functions/pricing: $0.025 per",
        "1,000, retries included), from the histories: one per state entered and one per retry, in the run and in the",
        "replication execution, plus one per Distributed Map child (each runs one state of its own, whose events Step Functions",
        "keeps apart from the parent's history). With `N` check-copy invocations:",
        "",
        "```text",
        f"run:          {', '.join(first['path']['run'])}   {run_share}",
        f"Map children: Replications (one per destination Region), Replicate (one per replication)   {map_children}",
        f"replication:  {path[0]}, N × ({loop}), {tail}   {fixed_share} + 3N",
        f"T = {run_share + map_children + fixed_share} + 3N for one replication in its own run",
        "```",
        "",
        f"For R destination Regions and replications i in one run: `T = {run_share} + R + Σ_i ({fixed_share + 1} + 3·N_i)`. Every run here",
        "has " + ", ".join(f"{run_share + map_children + fixed_share} + 3·{r['checkCopyInvocations']} = {r['transitions']['total']}" for r in runs)
        + " transitions. An event starts a run per AMI (the \"a run each\" column); a DR sweep of 1,000 sources",
        f"to one Region pays the run's {run_share} and the Region's 1 once, and {fixed_share + 1} + 3·N per replication (the \"one sweep\"",
        "column counts Step Functions only, which is nearly all of it). Retries (throttling, the copy quota, Lambda service",
        "errors) add one transition each and are not in these counts; no Retry fired here.",
        f"The replication's path for {first['copyMinutes']} min: `{' → '.join(path)}`.",
        "",
        "**History and payload.** A replication's history grows only with its checks: "
        + ", ".join(f"{r['executions']['replication']['historyEvents']} events for {r['checkCopyInvocations']} checks" for r in runs)
        + " (Step Functions' limit is 25,000); the run's: "
        + ", ".join(str(r["executions"]["run"]["historyEvents"]) for r in runs)
        + " events, a fixed number of states and the Map Run events. The largest state input or output is",
        "the replication document (the run's are the plan's counts and keys); the limit is 256 KiB.",
        "",
        "**Lambda invocations** = Plan + start-copy + N × check-copy + verify-encryption + tag-lineage + enable-fsr + Summarize",
        "= N + 6 (plan-replication serves Plan and Summarize). Lambda bills per 1 ms at 128 MB; each invocation is billed here",
        "with its round trip through the router and watch (an upper bound of its duration), and each function once with the",
        "init phase of its cold start (the Lambda table's median: custom runtimes such as provided.al2023 always pay for init,",
        "every runtime since August 2025). On AWS, where every call takes tens of milliseconds, even 250 ms per invocation",
        "would bill " + ", ".join(usd(r["lambdaInvocations"] * 0.25 * MEMORY_MB / 1024 * LAMBDA_PER_GB_SECOND_X86) for r in runs)
        + ": compute stays a rounding error next to the transitions.",
        "",
        "**Detection lag** is how long after a copy completes check-copy sees it (VerifyEncryption follows that check with no",
        "Wait). `rules::polling` spaces the checks: a quarter of the elapsed time, shortened to the estimated time left when AWS",
        "reports progress, within 30 s and 15 min (`functions/ferry-core/src/rules/polling.rs`). From the rule itself",
        "(`functions/ferry-core/examples/fleet_bench.rs`, check times from the copy's start, the first wait as start-copy sets it):",
        "",
        "| copy takes | checks, with AWS's progress (linear) | detection lag | checks, no progress reported | detection lag |",
        "|---:|---:|---:|---:|---:|",
    ]
    for c in fleet["detectionLag"]["copies"]:
        lines.append(f"| {duration(c['copySeconds'])} | {c['withProgress']['checks']} | {c['withProgress']['lagSeconds']} s | "
                     f"{c['withoutProgress']['checks']} | {c['withoutProgress']['lagSeconds']} s |")
    lines += [
        "",
        "On the engine (the local AWS reports linear progress), check by check on the local AWS's clock:",
        "",
        "| copy takes | checks: engine / rule | detection lag: engine / rule |",
        "|---:|---:|---:|",
    ]
    for r in runs:
        c = rule.get(r["copyMinutes"] * 60)
        lines.append(f"| {r['copyMinutes']} min | {r['checkCopyInvocations']} / {c['withProgress']['checks'] if c else '—'} | "
                     f"{r['detectionLagSeconds']:.0f} s / {str(c['withProgress']['lagSeconds']) + ' s' if c else '—'} |")
    lines += [
        "",
        "The rule's figures put each check exactly the previous wait after the one before. On the engine each Wait starts after",
        "the previous answer, so every invocation's duration (tens of milliseconds here, more on AWS) moves the later checks a",
        "little; near the end the wait is the time left estimated from a whole percentage (1 % of a 2-hour copy is 72 s), so a",
        "shift of a second can move the last check by tens of seconds either way. AWS's progress is often coarser than linear;",
        "with none at all the lag is the rule's quarter of the elapsed time, at most 15 minutes.",
        "",
        "Calls per replication, by action (what the functions sent; seeding excluded), and the engine's own:",
        "",
        "| action | " + " | ".join(f"{m} min" for m in minutes) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for action in sorted({a for r in runs for a in r["calls"]}):
        lines.append(f"| {action} | " + " | ".join(str(r["calls"].get(action, 0)) for r in runs) + " |")
    for action in sorted({a for r in runs for a in r["engineCalls"]}):
        lines.append(f"| {action} (engine) | " + " | ".join(str(r["engineCalls"].get(action, 0)) for r in runs) + " |")
    per_state: dict[str, list[str]] = {}
    for invocation in first["invocations"]:
        per_state.setdefault(invocation["state"], []).append(", ".join(c.split(":", 1)[1] for c in invocation["calls"]) or "none")
    lines += [
        "",
        "The engine's S3 requests are the Distributed Map's `ItemReader` (GetObject) and `ResultWriter` (PutObject: the results",
        "and the manifest). Its `states:*` calls are moto's way of running `startExecution.sync:2` (AWS follows the child by its",
        "events); they are not billed beyond the state's transition.",
        "",
        f"Which state sends what ({first['copyMinutes']} min run; one line per kind of invocation):",
        "",
        "| state | calls per invocation |",
        "|---|---|",
    ]
    for state, call_lists in per_state.items():
        distinct = sorted(set(call_lists), key=call_lists.index)
        lines.append(f"| {state} (×{len(call_lists)}) | " + "<br>".join(distinct) + " |")
    lines += [
        "",
        "**Excluded from the cost:** the copy itself (snapshot storage in the destination, cross-Region data transfer),",
        "Fast Snapshot Restore hours (billed per snapshot per zone per hour, one-hour minimum), the KMS requests EBS makes on",
        "your behalf during the copy (grants, data keys), CloudWatch Logs ingestion, S3 storage of the work lists and results,",
        "and free tiers. EC2 API calls are free. These dominate: the orchestration above costs well under a cent per",
        "replication, where one GiB moved between Regions costs about $0.02.",
        "",
    ]
    return lines


def duration(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds < 3600 else f"{seconds / 3600:g} h"


def fleet_lines(fleet: dict) -> list[str]:
    plan, span = fleet["planning"], fleet["makespan"]
    by_action = ", ".join(f"{action} {count}" for action, count in sorted(plan["ec2CallsByAction"].items()))
    hours = lambda seconds: f"{seconds / 3600:.1f} h"  # noqa: E731
    waves = span["copies"] // span["slots"]
    return [
        "## Fleet",
        "",
        "From `functions/ferry-core/examples/fleet_bench.rs` (scripts/bench runs it in release; raw figures in",
        "`target/bench/fleet.json`): the real planner and `rules::polling` on the in-memory port fakes.",
        "",
        f"**Planning {plan['sources']:,} sources × {plan['regions']} Regions** (a DR sweep: {plan['sources'] // 2:,} AMIs of two snapshots and",
        f"{plan['sources'] - plan['sources'] // 2:,} snapshots in us-east-1, no replicas yet): **{plan['ec2Calls']} EC2 calls** ({by_action}: one",
        "paginated pass, 1,000 items a page, per source Region and per destination, Regions at once; no per-source describe),",
        f"**{plan['cpuSeconds']:.2f} s CPU**, a **{plan['outputBytes']:,}-byte** answer through the state machine, and",
        f"{plan['workListBytes'] / 1e6:.1f} MB of work lists written to S3 ({plan['regions']} lists and `plan.json`). The answer is the same",
        "size for 10 sources (`functions/ferry-core/tests/plan_at_scale.rs` checks it). EC2 allows 100 Describe calls at once,",
        f"refilled at 20 a second: the sweep uses {plan['ec2Calls']}.",
        "",
        f"**Sweep makespan**, {span['copies']:,} copies to one Region under {span['slots']} slots, durations log-uniform from 5 minutes",
        f"to 4 hours (seed {span['seed']}), each slot held from the copy's start until check-copy sees it complete (adaptive",
        "polling with AWS's progress) plus 20 s for verification, tagging and FSR:",
        "",
        "| schedule | makespan | vs lower bound |",
        "|---|---:|---:|",
        f"| lower bound max(longest copy {hours(span['longestCopySeconds'])}, Σ copy time / {span['slots']} = "
        f"{hours(span['totalCopySeconds'] / span['slots'])}) | {hours(span['lowerBoundSeconds'])} | 1.00 |",
        f"| **ferry: sliding window of {span['slots']} (each Region's Distributed Map)** | **{hours(span['slidingWindowSeconds'])}** | "
        f"**{span['slidingWindowOverBound']:.2f}** |",
        f"| previous design: waves of {span['slots']}, each waiting for its slowest copy | {hours(span['wavesSeconds'])} | {span['wavesOverBound']:.2f} |",
        "",
        "The waves baseline leaves out the previous design's other cost: with FSR `disableAfterHours`, each wave also held its",
        f"replications' 24-hour wait, adding a day per wave ({waves} waves: {waves} days). Now FSR is disabled by the sweep's",
        "scheduled step.",
        "",
    ]


def write_report(out: Path, info: dict, sizes: dict, functions: dict, runs: list[dict], fleet: dict, settings: dict, elapsed: float) -> None:
    zip_limit, rss_limit = 5_000_000, 32_000_000  # bytes: 5 MB, 32 MB
    profile = release_profile()
    lines = [
        "# Performance",
        "",
        f"Generated by `make bench` (scripts/bench, benches/ferry_bench.py) on {info['date']}; regenerate rather than edit.",
        "Benchmarks are reported figures, never timed assertions in tests.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {info['cpu']} |",
        f"| cores | {info['cores']} |",
        f"| memory | {info['memoryGiB']} GiB |",
        f"| OS | {info['os']} |",
        f"| Rust | {info['rustc']}; {info['cargo']} |",
        f"| target | {info['target']} (installed: {', '.join(info['installedTargets']) or 'unknown'}) |",
        f"| local AWS | moto {info['moto']} plus ferry's patch layer (local/emulator), Python {info['python']} |",
        f"| release profile | `{json.dumps(profile)}` (top-level Cargo.toml) |",
        f"| load average (1, 5, 15 min) | {' / '.join(f'{x:.2f}' for x in info['loadStart'])} at the start, "
        f"{' / '.join(f'{x:.2f}' for x in info['loadEnd'])} at the end: anything above 0 is other work sharing the cores |",
        "",
        "Only x86_64 is measured: the `aarch64-unknown-linux-gnu` target is not installable on this machine, so the arm64 "
        "(Graviton) build, which Lambda bills 20 % lower per GB-second, is not measured here.",
        "",
        "## The Lambdas",
        "",
        f"`cargo build --release --locked -p {' -p '.join(FUNCTIONS)}` (one build for all six: they have the same dependencies,",
        "so it resolves the same features as `cargo build --release --workspace --bins` and as a `-p` build of any one of them,",
        "and shares every artifact with them; `--workspace` would also build the CLI and the test harness).",
        "",
        f"| function | binary (stripped) | zip | cold start, median of {settings['cold']} (min–max) | of which init | CPU, cold | "
        f"warm invocation, median / p95 of {settings['warm']} | CPU per warm invocation | peak RSS (VmHWM) | zip ≤ 5 MB, RSS ≤ 32 MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for function in FUNCTIONS:
        size, figures = sizes[function], functions[function]
        cold, warm, rss = figures["coldStartMs"], figures["warmMs"], figures["peakRssKiB"]["max"]
        ok = "yes" if size["zipBytes"] <= zip_limit and rss * 1024 <= rss_limit else "**no**"
        lines.append(
            f"| {function} | {mb(size['binaryBytes'])} | {mb(size['zipBytes'])} | {cold['median']:.1f} ms ({cold['min']:.1f}–{cold['max']:.1f}) | "
            f"{figures['initMs']['median']:.1f} ms | {figures['coldCpuMs']['median']:.1f} ms | {warm['median']:.1f} / {warm['p95']:.1f} ms | "
            f"{figures['warmCpuMsPerInvocation']:.1f} ms | {mb(rss * 1024)} | {ok} |"
        )
    lines += [
        "",
        "- **binary / zip**: `target/release/<function>` copied as `bootstrap`, `strip --strip-all`, zipped alone (deflate -9, mode 755)",
        "  as `provided.al2023` expects: `target/bench/package/<function>.zip`. MB = 10⁶ bytes throughout. scripts/package",
        "  (`sam build`, cargo-lambda with zig as the linker) builds the deployed bootstraps with the same `[profile.release]`;",
        "  its linker may make them differ slightly from these.",
        "- The functions run as the tests run them (`tests/src/state_machine.rs`): one `cargo lambda watch --only-lambda-apis`",
        "  serves the Lambda Runtime API, each process polls it at `/.rt/<function>`, and the bench sends every event to watch's",
        "  Invoke API (`POST /2015-03-31/functions/<function>/invocations`). The environment is the harness's, as the template",
        "  configures the functions: `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`,",
        "  `AWS_LAMBDA_FUNCTION_VERSION=$LATEST`, `AWS_LAMBDA_LOG_FORMAT=JSON`, `AWS_LAMBDA_LOG_LEVEL=INFO`, `AWS_REGION=us-east-1`,",
        "  `FERRY_FUNCTION_TIMEOUT_SECONDS=30`, `FERRY_SDK_INITIAL_BACKOFF_MS=50`, dummy credentials (each function signs as",
        "  itself), `AWS_ENDPOINT_URL` at the emulator.",
        "- **cold start**: from spawning `bootstrap` to its first answer coming back from watch (a fresh process per run, binary",
        "  in the page cache; the event is sent as the process is spawned, and watch holds it until the process asks for it).",
        "  It includes the process start, tracing, `Config::from_env`, `aws-config` loading, watch handing over the event and",
        "  the answer, and the first invocation with its first connections. **init** is the part until the process opens its",
        "  connection to watch to ask for its first event: that socket's first appearance in `/proc/PID/fd` (polled every",
        "  millisecond, so up to about 1 ms late), told apart from the others by its peer in `/proc/PID/net/tcp`.",
        "- **warm invocation**: the round trip of an Invoke request to watch (the handler, plus watch handing the event over and",
        "  the answer back, on loopback), for the invocations after the first in one process.",
        "- **inputs**: each invocation has its own: AMI State Change events for 2-snapshot encrypted AMIs (plan-replication,",
        "  which writes each plan's work list to S3), then the replication documents of those work lists (start-copy, which",
        "  makes a real CopyImage each time), then the documents the previous function's binary returned (check-copy reads",
        "  copies that are still pending; verify, tag and enable-fsr work on completed copies; enable-fsr enables FSR in two",
        "  zones, with the FSR quota raised so that it never skips).",
        "- **CPU**: the process's own CPU time (all threads, `/proc/PID/task/*/schedstat`): for a cold run, everything up to the",
        "  first answer; warm, the mean per invocation. The wall-clock figures are mostly waiting for the emulator: moto is Python,",
        "  its Describe* calls scan every resource (start-copy and enable-fsr get slower as the runs add copies and FSR entries),",
        "  and its pauses make the occasional outlier (the p95). The CPU columns are the functions' own work.",
        "- **peak RSS**: `VmHWM` from `/proc/PID/status` just before the process is stopped, the largest of the cold runs and the",
        "  warm process. Lambda's *Max Memory Used* is measured over the whole execution environment and reads somewhat higher.",
        "- These are loopback calls to moto over plain HTTP: on AWS each first connection adds a TLS handshake and every call tens",
        "  of milliseconds of service latency, so real handler durations are longer; compare these figures with each other, not",
        "  with CloudWatch.",
        "",
    ]
    lines += per_replication_lines(runs, fleet)
    lines += fleet_lines(fleet)
    lines += [
        "## Tuning",
        "",
    ]
    tuning = REPO / "benches/tuning.md"
    if tuning.exists():
        lines += tuning.read_text().rstrip().splitlines()
    lines += [
        "",
        "## Reproducing",
        "",
        "```sh",
        "make bench   # scripts/setup, then scripts/bench: the release build, fleet_bench, then benches/ferry_bench.py",
        "```",
        "",
        "The parts alone: `cargo run --release -p ferry-core --features fakes --example fleet_bench` (the fleet and the polling",
        "rule), `FERRY_FUNCTIONS_DIR=<target>/release cargo run -p ferry-tests --example replication_bench -- 5 30 120` (per",
        "replication on the engine; without `FERRY_FUNCTIONS_DIR` it builds and runs the debug binaries, as the tests do).",
        "",
        f"This run took {elapsed / 60:.1f} minutes end to end, of which {settings['buildSeconds']:.0f} s for the release build (nothing to",
        "do when it is up to date; a cold release build of the six functions takes 10 minutes on this machine when it is idle,",
        "20 with other builds running). Raw figures: `target/bench/results.json` and `target/bench/fleet.json`; logs of every",
        "process: `target/bench/work/`.",
        "",
    ]
    out.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release-dir", default=str(cargo_target_dir() / "release"))
    parser.add_argument("--fleet", default=str(REPO / "target/bench/fleet.json"), help="fleet_bench's figures (scripts/bench writes them)")
    parser.add_argument("--out", default=str(REPO / "docs/PERFORMANCE.md"))
    parser.add_argument("--results", default=str(REPO / "target/bench/results.json"))
    parser.add_argument("--cold-runs", type=int, default=11)
    parser.add_argument("--warm-runs", type=int, default=30)
    parser.add_argument("--copy-minutes", default="5,30,120")
    parser.add_argument("--started", type=float, default=time.time(), help="epoch seconds `make bench` started")
    parser.add_argument("--build-seconds", type=float, default=0.0, help="how long scripts/bench's cargo build took")
    parser.add_argument("--extra-env", action="append", default=[], help="NAME=VALUE for every function process (experiments)")
    parser.add_argument("--part-one-only", action="store_true", help="measure the Lambdas only: write --results, no report")
    args = parser.parse_args()

    release, out_dir = Path(args.release_dir), Path(args.results).parent
    work = out_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if not args.part_one_only and not Path(args.fleet).exists():
        log(f"missing {args.fleet}: run scripts/bench (it runs fleet_bench first)")
        return 1
    missing = [f for f in FUNCTIONS if not (release / f).exists()]
    if missing:
        log(f"missing release binaries {missing} in {release}: run scripts/bench (it builds them)")
        return 1

    extra = dict(item.split("=", 1) for item in args.extra_env)
    EXTRA_ENV.update(extra)

    info = machine()
    info["loadStart"] = os.getloadavg()
    sizes = {f: package(f, release, out_dir) for f in FUNCTIONS}
    for f in FUNCTIONS:
        log(f"{f}: bootstrap {mb(sizes[f]['binaryBytes'])}, zip {mb(sizes[f]['zipBytes'])}")
    bootstraps = {f: sizes[f]["bootstrap"] for f in FUNCTIONS}
    functions = part_one(bootstraps, work, args.cold_runs, args.warm_runs)
    for f in FUNCTIONS:
        figures = functions[f]
        log(f"{f}: cold {figures['coldStartMs']['median']:.1f} ms (init {figures['initMs']['median']:.1f} ms, CPU {figures['coldCpuMs']['median']:.1f} ms), warm {figures['warmMs']['median']:.2f} / p95 {figures['warmMs']['p95']:.2f} ms (CPU {figures['warmCpuMsPerInvocation']:.2f} ms), "
            f"peak RSS {mb(figures['peakRssKiB']['max'] * 1024)}")
    results = {"machine": info, "profile": release_profile(), "extraEnv": extra, "sizes": {f: {k: v for k, v in s.items() if k != "bootstrap"} for f, s in sizes.items()},
               "functions": functions}
    if args.part_one_only:
        Path(args.results).write_text(json.dumps(results, indent=1, default=str))
        log(f"wrote {args.results}")
        return 0
    fleet = json.loads(Path(args.fleet).read_text())
    minutes = [int(m) for m in args.copy_minutes.split(",")]
    log(f"one replication on moto's Step Functions engine per copy duration: {minutes} min")
    runs = [with_costs(run, functions) for run in replication_runs(release, minutes, work)]
    for run in runs:
        log(f"  {run['copyMinutes']} min: {run['checkCopyInvocations']} checks, {run['transitions']['total']} transitions, {run['lambdaInvocations']} invocations, "
            f"lag {run['detectionLagSeconds']:.0f} s, {usd(run['costUsd']['total'])}")

    info["loadEnd"] = os.getloadavg()
    settings = {"cold": args.cold_runs, "warm": args.warm_runs, "buildSeconds": args.build_seconds}
    results.update(replications=runs, fleet=fleet)
    Path(args.results).write_text(json.dumps(results, indent=1, default=str))
    write_report(Path(args.out), info, sizes, functions, runs, fleet, settings, time.time() - args.started)
    log(f"wrote {args.out} and {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
