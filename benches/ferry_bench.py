#!/usr/bin/env python3
"""ferry's benchmarks (run by `make bench` through scripts/bench; never part of `make test`).

Measures the six Lambda binaries as they are deployed and writes docs/PERFORMANCE.md:

1. per function: the stripped `bootstrap` binary, its deployment zip, the cold start (process
   start -> first invocation answered) through a local Lambda Runtime API (a small server in
   this file, speaking `/2018-06-01/runtime/invocation/next` and `.../response|error`), the warm
   handler latency (invocations after the first, in one process), and the peak RSS (VmHWM);
2. per replication, for simulated copies of 5, 30 and 120 minutes: the state machine
   (statemachine/ferry.asl.json) walked state by state with the real binaries as its Task
   resources and the local AWS emulator's clock moved by each Wait state, counting state
   transitions, Lambda invocations and the EC2/KMS/EventBridge calls the emulator received, the
   cost at list prices and the detection lag (copy done -> checked as completed).

Inputs are realistic: seeded encrypted AMIs (two snapshots under two source keys), EC2 AMI State
Change events for plan-replication, and for each later function the documents the previous
function's binary produced. Everything runs on loopback against the emulator in tests/emulator.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = ["plan-replication", "start-copy", "check-copy", "verify-encryption", "tag-lineage", "enable-fsr"]
# DefinitionSubstitutions key -> binary, as in infra/template.yaml.
FUNCTION_ARNS = {
    "${PlanReplicationFunctionArn}": "plan-replication",
    "${StartCopyFunctionArn}": "start-copy",
    "${CheckCopyFunctionArn}": "check-copy",
    "${VerifyEncryptionFunctionArn}": "verify-encryption",
    "${TagLineageFunctionArn}": "tag-lineage",
    "${EnableFsrFunctionArn}": "enable-fsr",
}
ACCOUNT = "123456789012"  # moto's account
SOURCE, DESTINATION = "us-east-1", "us-west-2"
ALIAS = "alias/ferry-bench-usw2"
ZONES = ["us-west-2a", "us-west-2b"]
# The README's example request, as a deployed policy: AMIs tagged dr-tier=gold go to us-west-2
# under an alias, with FSR in two zones, disabled again after 24 hours.
POLICY = {
    "selection": {"tagKey": "dr-tier", "tagValues": ["gold"]},
    "requireEncryptedSource": True,
    "sourceRegions": [SOURCE],
    "copySourceTags": True,
    "destinations": [{"region": DESTINATION, "kmsKeyId": ALIAS, "fsr": {"availabilityZones": ZONES, "disableAfterHours": 24}}],
}
MEMORY_MB = 128

# List prices (us-east-1), USD.
SFN_PER_TRANSITION = 0.025 / 1000
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND_X86 = 0.0000166667
KMS_PER_REQUEST = 0.03 / 10_000
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
    """tests/emulator (moto plus ferry's patch layer) on a free loopback port."""

    def __init__(self, copy_seconds: float, work: Path):
        venv = Path(os.environ.get("FERRY_VENV", REPO / ".venv"))
        self.log = open(work / "emulator.log", "ab")
        self.proc = subprocess.Popen(
            [str(venv / "bin/python"), "-m", "ferry_emulator", "--host", "127.0.0.1", "--port", "0", "--copy-seconds", str(copy_seconds)],
            env={**os.environ, "PYTHONPATH": str(REPO / "tests/emulator")},
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


# --- a local Lambda Runtime API -----------------------------------------------------------------


class Invocation:
    def __init__(self, payload):
        self.request_id = str(uuid.uuid4())
        self.payload = payload
        self.sent = 0.0  # perf_counter when the event was handed out
        self.done = 0.0  # perf_counter when the answer arrived
        self.kind = ""  # "response" | "error"
        self.body = b""
        self.finished = threading.Event()

    @property
    def duration_ms(self) -> float:
        return (self.done - self.sent) * 1000


class RuntimeApi:
    """The Lambda Runtime API (2018-06-01) for one function process: `GET .../invocation/next`
    hands out one queued event with the Lambda-Runtime-* headers; `POST .../{id}/response` and
    `.../{id}/error` record the answer; `POST .../init/error` records a failed init."""

    def __init__(self, function: str):
        self.function = function
        self.events: queue.Queue[Invocation | None] = queue.Queue()
        self.invocations: dict[str, Invocation] = {}
        self.first_next: float | None = None
        self.init_error: bytes | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def reply(self, status: int, body: bytes = b'{"status":"OK"}') -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.reply(404, b'{"errorMessage":"not found"}')
                if api.first_next is None:
                    api.first_next = time.perf_counter()
                invocation = api.events.get()
                if invocation is None:  # shutting down
                    self.close_connection = True
                    return self.reply(503, b'{"errorMessage":"stopping"}')
                body = json.dumps(invocation.payload).encode()
                deadline_ms = int((time.time() + 30) * 1000)  # the template's Timeout: 30
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", f"arn:aws:lambda:{SOURCE}:{ACCOUNT}:function:ferry-{api.function}")
                self.send_header("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0")
                self.end_headers()
                invocation.sent = time.perf_counter()
                self.wfile.write(body)
                self.wfile.flush()

            def do_POST(self):
                body = self.read_body()
                now = time.perf_counter()
                parts = self.path.strip("/").split("/")
                if parts[:3] == ["2018-06-01", "runtime", "init"] and parts[3:] == ["error"]:
                    api.init_error = body
                    return self.reply(202)
                if len(parts) == 5 and parts[:3] == ["2018-06-01", "runtime", "invocation"] and parts[4] in ("response", "error"):
                    invocation = api.invocations.get(parts[3])
                    if invocation is None:
                        return self.reply(400, b'{"errorMessage":"unknown request id"}')
                    invocation.done, invocation.kind, invocation.body = now, parts[4], body
                    self.reply(202)
                    invocation.finished.set()
                    return None
                return self.reply(404, b'{"errorMessage":"not found"}')

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)  # a stopped process drops its connections

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def submit(self, payload) -> Invocation:
        invocation = Invocation(payload)
        self.invocations[invocation.request_id] = invocation
        self.events.put(invocation)
        return invocation

    def close(self) -> None:
        for _ in range(4):
            self.events.put(None)
        self.server.shutdown()
        self.server.server_close()


class FunctionFailed(RuntimeError):
    pass


class LambdaProcess:
    """One execution environment: the function's `bootstrap` started against its own Runtime API,
    with the environment Lambda gives a provided.al2023 function (128 MB, JSON logs)."""

    def __init__(self, function: str, bootstrap: Path, endpoint: str, work: Path, extra_env: dict[str, str] | None = None):
        self.function = function
        self.api = RuntimeApi(function)
        home = work / "home"
        home.mkdir(exist_ok=True)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),  # no ~/.aws: as in Lambda, credentials come from the environment
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "_HANDLER": "bootstrap",
            "LAMBDA_TASK_ROOT": str(bootstrap.parent),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.api.port}",
            "AWS_LAMBDA_FUNCTION_NAME": f"ferry-{function}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",  # the template's LoggingConfig
            "AWS_LAMBDA_LOG_LEVEL": "INFO",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_SESSION_TOKEN": "test",
            "AWS_REGION": SOURCE,
            "AWS_DEFAULT_REGION": SOURCE,
            "AWS_EC2_METADATA_DISABLED": "true",
            "FERRY_EVENT_BUS": "default",
        }
        if function == "plan-replication":
            env["FERRY_POLICY"] = json.dumps(POLICY)
        env.update(extra_env or {})
        self.log = open(work / f"{function}.log", "ab")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([str(bootstrap)], env=env, cwd=str(bootstrap.parent), stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.invocations = 0

    def invoke(self, payload, timeout: float = 60) -> tuple[dict, Invocation]:
        invocation = self.api.submit(payload)
        deadline = time.perf_counter() + timeout
        while not invocation.finished.wait(0.02):
            if self.proc.poll() is not None:
                raise FunctionFailed(f"{self.function} exited with {self.proc.returncode} (init error: {self.api.init_error!r})")
            if time.perf_counter() > deadline:
                raise FunctionFailed(f"{self.function}: no answer within {timeout} s")
        self.invocations += 1
        body = json.loads(invocation.body or b"null")
        if invocation.kind != "response":
            raise FunctionFailed(f"{self.function} answered an error: {body}")
        return body, invocation

    @property
    def init_ms(self) -> float:
        return ((self.api.first_next or self.started) - self.started) * 1000

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
        self.api.close()
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


def bench_function(function: str, bootstrap: Path, emulator: Emulator, inputs: list, cold_runs: int, warm_runs: int, work: Path,
                   prepare=lambda doc: doc, finish=lambda doc: doc, extra_env=None) -> tuple[dict, list]:
    """`cold_runs` fresh processes with one invocation each, then one process with 1 + `warm_runs`
    invocations. Each invocation gets its own input; returns the figures and the outputs."""
    assert len(inputs) >= cold_runs + 1 + warm_runs, (function, len(inputs))
    outputs, cold, init, cold_rss, first_ms, cold_cpu = [], [], [], [], [], []
    for payload in inputs[:cold_runs]:
        process = LambdaProcess(function, bootstrap, emulator.endpoint, work, extra_env)
        output, invocation = process.invoke(prepare(payload))
        cold_cpu.append(process.cpu_ms())
        cold.append((invocation.done - process.started) * 1000)
        init.append(process.init_ms)
        first_ms.append(invocation.duration_ms)
        cold_rss.append(process.stop())
        outputs.append(finish(output))
    process = LambdaProcess(function, bootstrap, emulator.endpoint, work, extra_env)
    warm, cpu_after_first = [], 0.0
    try:
        for index, payload in enumerate(inputs[cold_runs:cold_runs + 1 + warm_runs]):
            output, invocation = process.invoke(prepare(payload))
            if index == 0:
                cpu_after_first = process.cpu_ms()
            else:
                warm.append(invocation.duration_ms)
            outputs.append(finish(output))
        warm_cpu = (process.cpu_ms() - cpu_after_first) / warm_runs
    finally:
        warm_rss = process.stop()
    figures = {
        "coldStartMs": {"median": median(cold), "min": min(cold), "max": max(cold), "runs": cold},
        "initMs": {"median": median(init), "runs": init},
        "firstInvocationMs": {"median": median(first_ms)},
        "coldCpuMs": {"median": median(cold_cpu), "runs": cold_cpu},
        "warmCpuMsPerInvocation": warm_cpu,
        "warmMs": {"median": median(warm), "p95": p95(warm), "min": min(warm), "max": max(warm), "runs": warm},
        "peakRssKiB": {"cold": max(cold_rss), "warm": warm_rss, "max": max(cold_rss + [warm_rss])},
    }
    return figures, outputs


def part_one(bootstraps: dict[str, Path], work: Path, cold_runs: int, warm_runs: int) -> dict:
    count = cold_runs + 1 + warm_runs
    emulator = Emulator(copy_seconds=3600, work=work)
    results = {}
    try:
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
            figures, outputs = bench_function(function, bootstraps[function], emulator, documents, cold_runs, warm_runs, work,
                                              prepare=prepare, finish=finish, extra_env=fsr_env if function == "enable-fsr" else None)
            results[function] = figures
            if function == "plan-replication":
                outputs = [plan["regions"][0]["waves"][0]["replications"][0] for plan in outputs]
            if function == "check-copy":
                assert all(d["copy"]["status"] == "pending" for d in outputs), "the measured checks are pending ones"
                # Let every copy finish, and check each once more (not measured) to get completed documents.
                emulator.advance(3600)
                process = LambdaProcess("check-copy", bootstraps["check-copy"], emulator.endpoint, work)
                try:
                    outputs = [to_emulator_time(process.invoke(for_binary(d, emulator))[0], emulator) for d in outputs]
                finally:
                    process.stop()
                assert all(d["copy"]["status"] == "completed" for d in outputs), [d["copy"] for d in outputs]
            documents = outputs
        assert all(d["evidence"]["fsr"]["outcome"] == "requested" for d in documents)
    finally:
        emulator.close()
    return results


# --- 2. per replication: the state machine, walked -------------------------------------------------


def get_path(data, path: str, missing=KeyError):
    """A JSONPath of the forms `$`, `$.a.b`, `$.a[0].b`."""
    if path == "$":
        return data
    if not path.startswith("$."):
        raise ValueError(f"unsupported path {path}")
    value = data
    for part in path[2:].split("."):
        name, _, index = part.partition("[")
        try:
            if name:
                value = value[name]
            if index:
                value = value[int(index.rstrip("]"))]
        except (KeyError, IndexError, TypeError):
            if missing is KeyError:
                raise KeyError(path) from None
            return missing
    return value


ABSENT = object()


def set_path(data: dict, path: str, value) -> dict:
    if path == "$":
        return value
    parts = path[2:].split(".")
    target = data
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return data


def parameters(template: dict, data, context: dict) -> dict:
    """A Parameters block: `key.$` takes a path into the input (`$…`) or the context object (`$$…`)."""
    out = {}
    for key, value in template.items():
        if key.endswith(".$"):
            out[key[:-2]] = get_path(context, value[1:]) if value.startswith("$$") else get_path(data, value)
        elif isinstance(value, dict):
            out[key] = parameters(value, data, context)
        else:
            out[key] = value
    return out


def select(selector: dict, results: list) -> dict:
    """The ResultSelectors ferry.asl.json uses on its Map states."""
    out = {}
    for key, path in selector.items():
        name = key[:-2]
        if path.startswith("$[?(@.status == '") and path.endswith("')]"):
            wanted = path[len("$[?(@.status == '"):-3]
            out[name] = [r for r in results if r.get("status") == wanted]
        elif path.startswith("$[*].") and path.endswith("[*]"):
            field = path[len("$[*]."):-3]
            out[name] = [item for r in results for item in r.get(field, [])]
        else:
            raise ValueError(f"unsupported ResultSelector path {path}")
    return out


def choose(state: dict, data) -> str:
    for rule in state["Choices"]:
        value = get_path(data, rule["Variable"], missing=ABSENT)
        if "IsPresent" in rule:
            hit = (value is not ABSENT) == rule["IsPresent"]
        elif "StringEquals" in rule:
            hit = value == rule["StringEquals"]
        elif "NumericGreaterThan" in rule:
            hit = isinstance(value, (int, float)) and value > rule["NumericGreaterThan"]
        else:
            raise ValueError(f"unsupported Choice rule {rule}")
        if hit:
            return rule["Next"]
    return state["Default"]


class Walker:
    """Walks statemachine/ferry.asl.json as Step Functions would on the success path: Task states
    invoke the binaries, Wait states move the emulator's clock, Choice rules read the documents,
    Map states run their item processors. Every state entered is one state transition."""

    def __init__(self, asl: dict, invoke, wait, execution_name: str):
        self.asl, self.invoke, self.wait = asl, invoke, wait
        self.path: list[str] = []
        # The context object's fields the definition reads.
        self.context = {"Execution": {"Id": f"arn:aws:states:{SOURCE}:{ACCOUNT}:execution:ferry:{execution_name}", "Name": execution_name}}

    def run(self, data):
        return self._run(self.asl["States"], self.asl["StartAt"], data)

    def _run(self, states: dict, name: str, data):
        while True:
            state = states[name]
            self.path.append(name)
            kind = state["Type"]
            if kind == "Choice":
                name = choose(state, data)
                continue
            if kind == "Succeed":
                return data
            if kind == "Fail":
                raise RuntimeError(f"the execution failed in {name}: {data}")
            if kind == "Task":
                payload = parameters(state["Parameters"], data, self.context) if "Parameters" in state else data
                result = self.invoke(name, state["Resource"], payload)
            elif kind == "Wait":
                self.wait(name, get_path(data, state["SecondsPath"]) if "SecondsPath" in state else state["Seconds"])
                result = data
            elif kind == "Map":
                processor = state["ItemProcessor"]
                results = [self._run(processor["States"], processor["StartAt"], item) for item in get_path(data, state["ItemsPath"])]
                result = select(state["ResultSelector"], results) if "ResultSelector" in state else results
            elif kind == "Pass":
                result = parameters(state["Parameters"], data, self.context) if "Parameters" in state else data
            else:
                raise ValueError(f"unsupported state type {kind}")
            if "ResultPath" in state:
                if state["ResultPath"] is not None:
                    data = set_path(data, state["ResultPath"], result)
            else:
                data = result
            if state.get("End"):
                return data
            name = state["Next"]


def replication_run(bootstraps: dict[str, Path], work: Path, copy_minutes: int, asl: dict) -> dict:
    copy_seconds = copy_minutes * 60
    emulator = Emulator(copy_seconds=copy_seconds, work=work)
    processes: dict[str, LambdaProcess] = {}
    invocations: list[dict] = []
    checks: list[dict] = []
    copy_started = None
    try:
        seed = Seeder(emulator.endpoint)
        image = seed.image(f"bench-{copy_minutes}-min")
        calls_before = len(emulator.calls())

        def invoke(state: str, resource: str, payload):
            nonlocal copy_started
            function = FUNCTION_ARNS.get(resource)
            if function is None:
                raise RuntimeError(f"{state}: {resource} is only on the failure path")
            cold = function not in processes
            if cold:
                processes[function] = LambdaProcess(function, bootstraps[function], emulator.endpoint, work)
            process = processes[function]
            if function == "check-copy":
                payload = for_binary(payload, emulator)
            emulator_sent = emulator.now()
            before = len(emulator.calls())
            output, invocation = process.invoke(payload)
            made = emulator.calls()[before:]
            if function == "start-copy":
                output = to_emulator_time(output, emulator)
                copy_started = emulator.now()
            if function == "check-copy":
                output = to_emulator_time(output, emulator)
                checks.append({"at": emulator_sent, "status": output["copy"]["status"], "next": output["copy"]["nextCheckSeconds"],
                               "progress": output["copy"].get("progress")})
            billed_ms = math.ceil(invocation.duration_ms)
            if cold:  # provided.al2023 bills the init phase too
                billed_ms = math.ceil((invocation.done - process.started) * 1000)
            invocations.append({"state": state, "function": function, "cold": cold, "durationMs": invocation.duration_ms,
                                "billedMs": billed_ms, "calls": [c["action"] for c in made]})
            return output

        walker = Walker(asl, invoke, lambda state, seconds: emulator.advance(seconds), f"bench-{copy_minutes}-min")
        walker.run(ami_available_event(image))
        calls = emulator.calls()[calls_before:]
    finally:
        peaks = {name: process.stop() for name, process in processes.items()}
        emulator.close()

    completing = next(c for c in checks if c["status"] == "completed")
    by_action: dict[str, int] = {}
    for call in calls:
        key = f"{call['service']}:{call['action']}"
        by_action[key] = by_action.get(key, 0) + 1
    services = {s: sum(1 for c in calls if c["service"] == s) for s in sorted({c["service"] for c in calls})}
    transitions = len(walker.path)
    fsr_disable = 2 if "DisableFsr" in walker.path else 0
    checks_made = sum(1 for i in invocations if i["function"] == "check-copy")
    assert transitions == 13 + fsr_disable + 3 * checks_made, (transitions, walker.path)
    lambda_gb_seconds = sum(i["billedMs"] for i in invocations) / 1000 * MEMORY_MB / 1024
    lambda_gb_seconds_warm = sum(math.ceil(i["durationMs"]) for i in invocations) / 1000 * MEMORY_MB / 1024
    eventbridge_events = by_action.get("events:PutEvents", 0)
    cost = {
        "stepFunctions": transitions * SFN_PER_TRANSITION,
        "lambdaRequests": len(invocations) * LAMBDA_PER_REQUEST,
        "lambdaCompute": lambda_gb_seconds * LAMBDA_PER_GB_SECOND_X86,
        "kms": services.get("kms", 0) * KMS_PER_REQUEST,
        "eventBridge": eventbridge_events * EVENTBRIDGE_PER_EVENT,
    }
    cost["total"] = sum(cost.values())
    return {
        "copyMinutes": copy_minutes,
        "transitions": transitions,
        "path": walker.path,
        "checkCopyInvocations": sum(1 for i in invocations if i["function"] == "check-copy"),
        "lambdaInvocations": len(invocations),
        "invocations": invocations,
        "calls": by_action,
        "callsByService": services,
        "checks": checks,
        "detectionLagSeconds": completing["at"] - (copy_started + copy_seconds),
        "lambdaGbSeconds": lambda_gb_seconds,
        "lambdaGbSecondsAllWarm": lambda_gb_seconds_warm,
        "costUsd": cost,
        "peakRssKiB": peaks,
    }


def rule_only_lag(copy_seconds: int, first_wait: int = 30, low: int = 30, high: int = 900) -> tuple[int, int]:
    """(checks, lag) of the documented rule when AWS reports no progress: wait a quarter of the
    elapsed time, within [30 s, 900 s] (functions/ferry-core/src/rules/polling.rs)."""
    now, checks, wait = 0, 0, first_wait
    while True:
        now += wait
        checks += 1
        if now >= copy_seconds:
            return checks, now - copy_seconds
        wait = min(max(now // 4, low), high)


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


def write_report(out: Path, info: dict, sizes: dict, functions: dict, runs: list[dict], settings: dict, elapsed: float) -> None:
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
        f"| local AWS | moto {info['moto']} plus ferry's patch layer (tests/emulator), Python {info['python']} |",
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
        f"warm handler, median / p95 of {settings['warm']} | CPU per warm invocation | peak RSS (VmHWM) | zip ≤ 5 MB, RSS ≤ 32 MB |",
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
        "- **cold start**: from spawning `bootstrap` to its first answer reaching the local Runtime API (a fresh process per run,",
        "  binary in the page cache). It includes the process start, tracing, `Config::from_env`, `aws-config` loading and the",
        "  first invocation with its first connections. **init** is the part before the first `GET …/invocation/next`.",
        "  The environment is what Lambda sets for a 128 MB provided.al2023 function with JSON logs: `AWS_LAMBDA_RUNTIME_API`,",
        "  `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`, `AWS_LAMBDA_FUNCTION_VERSION=$LATEST`,",
        "  `AWS_LAMBDA_LOG_FORMAT=JSON`, `AWS_REGION=us-east-1`, dummy credentials, `AWS_ENDPOINT_URL` at the emulator.",
        "- **warm handler**: from the event leaving `…/invocation/next` to the answer arriving at `…/response`, for the invocations",
        "  after the first in one process. Each invocation has its own input: AMI State Change events for 2-snapshot encrypted AMIs",
        "  (plan-replication), then the documents the previous function's binary returned (start-copy makes a real CopyImage each",
        "  time; check-copy reads copies that are still pending; verify, tag and enable-fsr work on completed copies; enable-fsr",
        "  enables FSR in two zones, with the FSR quota raised so that it never skips).",
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
        "## Per replication",
        "",
        "One execution of the state machine for one encrypted AMI (8 GiB root + 20 GiB data snapshot, two source keys) and one",
        "destination Region, triggered by its `EC2 AMI State Change` event, with the README's options (alias key, `copySourceTags`,",
        "FSR in two zones, disabled again after 24 h). `statemachine/ferry.asl.json` is walked state by state (benches/ferry_bench.py,",
        "`Walker`): each Task state invokes the real release binary through the local Runtime API (the first invocation of each",
        "function is a cold start), each Wait state moves the emulator's clock by its `SecondsPath` (`nextCheckSeconds`,",
        "`disableAfterSeconds`), Choice states read the returned documents. The emulator's copies stay pending for the simulated",
        "duration (`copySeconds`) with growing `Progress`, as the patch layer makes them. The walker covers the success path",
        "(Task, Wait, Choice, Map, Pass, Succeed, Parameters with `$`/`$$` paths, the Map ResultSelectors); no Retry fires.",
        "The Lambda binaries read the system clock while the emulator's clock runs ahead by what the Wait states added, so",
        "check-copy is handed `copy.startedAt` moved back by that offset (and its answer moved forward again): the elapsed time",
        "it computes is the emulator's, as the tests' `EmulatorClock` gives the in-process handlers.",
        "",
        "| copy takes | check-copy invocations | Lambda invocations | state transitions | EC2 calls | KMS calls | EventBridge PutEvents | detection lag | cost per replication | per 1,000 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        s = run["callsByService"]
        lines.append(
            f"| {run['copyMinutes']} min | {run['checkCopyInvocations']} | {run['lambdaInvocations']} | {run['transitions']} | {s.get('ec2', 0)} | "
            f"{s.get('kms', 0)} | {run['calls'].get('events:PutEvents', 0)} | {run['detectionLagSeconds']:.0f} s | {usd(run['costUsd']['total'])} | ${1000 * run['costUsd']['total']:.2f} |"
        )
    lines += [
        "",
        "Cost per replication at list prices (us-east-1, x86_64, before free tiers):",
        "",
        "| copy takes | Step Functions (transitions × $0.025/1,000) | Lambda requests ($0.20/1M) | Lambda compute (128 MB, $0.0000166667/GB-s) | KMS ($0.03/10,000) | EventBridge ($1.00/1M events) | total |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        c = run["costUsd"]
        lines.append(
            f"| {run['copyMinutes']} min | {usd(c['stepFunctions'])} | {usd(c['lambdaRequests'])} | {usd(c['lambdaCompute'])} "
            f"({run['lambdaGbSeconds']:.4f} GB-s) | {usd(c['kms'])} | {usd(c['eventBridge'])} | **{usd(c['total'])}** |"
        )
    first = runs[0]
    lines += [
        "",
        "**State transitions.** Every state entered counts once (a Map state once, plus the states its iterations enter); with",
        "`N` check-copy invocations, one destination Region, one wave and one replication:",
        "",
        "```text",
        "Plan, AnythingToReplicate, Regions(Map), Waves(Map), Replications(Map), StartCopy        6",
        "N × (WaitForCopy, CheckCopy, CopySettled)                                              3N",
        "VerifyEncryption, TagLineage, EnableFsr, DisableFsrLater                               4",
        "WaitToDisableFsr, DisableFsr   (only when FSR is enabled with disableAfterHours)       2",
        "BranchSucceeded, AnyFailed, Replicated                                                 3",
        "T = 13 + 3N  (15 + 3N with FSR disable)",
        "```",
        "",
        "For R Regions, W waves per Region and replications i: `T = 5 + Σ_R (1 + Σ_W (1 + Σ_i (6 + 3·N_i + 2·fsr_i)))`. Retries",
        "(`Retry` on throttling, quota, Lambda service errors) add one transition per attempt and are not in these counts.",
        f"The walked path for {first['copyMinutes']} min: `{' → '.join(first['path'])}`.",
        "",
        "Each walked path has exactly " + ", ".join(f"15 + 3·{r['checkCopyInvocations']} = {r['transitions']}" for r in runs) + " states.",
        "",
        "**Lambda invocations** = plan-replication + start-copy + N × check-copy + verify-encryption + tag-lineage + enable-fsr",
        "+ DisableFsr (enable-fsr again) = N + 6. Lambda bills per 1 ms of duration at 128 MB; the first invocation of each function",
        "is billed with its init phase (a cold start as measured here: custom runtimes such as provided.al2023 always pay for init,",
        "every runtime since August 2025), the others with their warm duration. All warm it would be "
        + ", ".join(f"{r['lambdaGbSecondsAllWarm']:.4f} GB-s" for r in runs)
        + ". On AWS, where every call takes tens of milliseconds, even 250 ms per invocation would bill "
        + ", ".join(usd(r["lambdaInvocations"] * 0.25 * MEMORY_MB / 1024 * LAMBDA_PER_GB_SECOND_X86) for r in runs)
        + ": compute stays a rounding error next to the transitions.",
        "",
        "**Detection lag** is, on the emulator's clock, the time of the check-copy invocation that saw the copy completed minus",
        "the time the copy was due (start + copy duration); VerifyEncryption follows that check with no Wait, so the copy is",
        "verified a few milliseconds later. The emulator reports linear `Progress`, which check-copy uses to",
        "shorten the wait to the estimated time left. AWS's progress is often coarser; with no progress at all the rule",
        "alone (a quarter of the elapsed time, 30 s to 15 min) gives "
        + ", ".join(f"{m} min: {rule_only_lag(m * 60)[0]} checks, {rule_only_lag(m * 60)[1]} s lag" for m in (r["copyMinutes"] for r in runs))
        + ".",
        "",
        "Calls per replication, by action (what the functions sent; seeding excluded):",
        "",
        "| action | " + " | ".join(f"{r['copyMinutes']} min" for r in runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    actions = sorted({a for r in runs for a in r["calls"]})
    for action in actions:
        lines.append(f"| {action} | " + " | ".join(str(r["calls"].get(action, 0)) for r in runs) + " |")
    per_function: dict[str, list[str]] = {}
    for invocation in first["invocations"]:
        per_function.setdefault(invocation["state"], [])
        per_function[invocation["state"]].append(", ".join(invocation["calls"]) or "none")
    lines += [
        "",
        f"Which state sends what ({first['copyMinutes']} min run; one line per invocation kind):",
        "",
        "| state | calls per invocation |",
        "|---|---|",
    ]
    for state, call_lists in per_function.items():
        distinct = sorted(set(call_lists), key=call_lists.index)
        lines.append(f"| {state} (×{len(call_lists)}) | " + "<br>".join(distinct) + " |")
    lines += [
        "",
        "**Excluded from the cost:** the copy itself (snapshot storage in the destination, cross-Region data transfer),",
        "Fast Snapshot Restore hours (billed per snapshot per zone per hour, one-hour minimum), the KMS requests EBS makes on",
        "your behalf during the copy (grants, data keys), CloudWatch Logs ingestion, and free tiers. EC2 API calls are free.",
        "These dominate: the orchestration above costs well under a cent per replication, where one GiB moved between",
        "Regions costs about $0.02.",
        "",
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
        "make bench   # scripts/setup, then scripts/bench: the release build, then benches/ferry_bench.py",
        "```",
        "",
        f"This run took {elapsed / 60:.1f} minutes end to end, of which {settings['buildSeconds']:.0f} s for the release build (nothing to",
        "do when it is up to date; a cold release build of the six functions takes 10 minutes on this machine when it is idle,",
        "20 with other builds running). Raw figures: `target/bench/results.json`; logs of every process: `target/bench/work/`.",
        "",
    ]
    out.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release-dir", default=str(REPO / "target/release"))
    parser.add_argument("--out", default=str(REPO / "docs/PERFORMANCE.md"))
    parser.add_argument("--results", default=str(REPO / "target/bench/results.json"))
    parser.add_argument("--cold-runs", type=int, default=11)
    parser.add_argument("--warm-runs", type=int, default=30)
    parser.add_argument("--copy-minutes", default="5,30,120")
    parser.add_argument("--started", type=float, default=time.time(), help="epoch seconds `make bench` started")
    parser.add_argument("--build-seconds", type=float, default=0.0, help="how long scripts/bench's cargo build took")
    parser.add_argument("--extra-env", action="append", default=[], help="NAME=VALUE for every function process (experiments)")
    args = parser.parse_args()

    release, out_dir = Path(args.release_dir), Path(args.results).parent
    work = out_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    missing = [f for f in FUNCTIONS if not (release / f).exists()]
    if missing:
        log(f"missing release binaries {missing} in {release}: run scripts/bench (it builds them)")
        return 1

    extra = dict(item.split("=", 1) for item in args.extra_env)
    if extra:
        original = LambdaProcess.__init__

        def with_extra(self, function, bootstrap, endpoint, work_dir, extra_env=None):
            original(self, function, bootstrap, endpoint, work_dir, {**extra, **(extra_env or {})})

        LambdaProcess.__init__ = with_extra

    info = machine()
    info["loadStart"] = os.getloadavg()
    sizes = {f: package(f, release, out_dir) for f in FUNCTIONS}
    for f in FUNCTIONS:
        log(f"{f}: bootstrap {mb(sizes[f]['binaryBytes'])}, zip {mb(sizes[f]['zipBytes'])}")
    bootstraps = {f: sizes[f]["bootstrap"] for f in FUNCTIONS}
    functions = part_one(bootstraps, work, args.cold_runs, args.warm_runs)
    for f in FUNCTIONS:
        figures = functions[f]
        log(f"{f}: cold {figures['coldStartMs']['median']:.1f} ms (CPU {figures['coldCpuMs']['median']:.1f} ms), warm {figures['warmMs']['median']:.2f} / p95 {figures['warmMs']['p95']:.2f} ms (CPU {figures['warmCpuMsPerInvocation']:.2f} ms), "
            f"peak RSS {mb(figures['peakRssKiB']['max'] * 1024)}")
    asl = json.loads((REPO / "statemachine/ferry.asl.json").read_text())
    runs = []
    for minutes in (int(m) for m in args.copy_minutes.split(",")):
        log(f"one replication, copy of {minutes} min")
        run = replication_run(bootstraps, work, minutes, asl)
        log(f"  {run['checkCopyInvocations']} checks, {run['transitions']} transitions, {run['lambdaInvocations']} invocations, "
            f"calls {run['callsByService']}, lag {run['detectionLagSeconds']:.0f} s, {usd(run['costUsd']['total'])}")
        runs.append(run)

    info["loadEnd"] = os.getloadavg()
    settings = {"cold": args.cold_runs, "warm": args.warm_runs, "buildSeconds": args.build_seconds}
    results = {"machine": info, "profile": release_profile(), "extraEnv": extra, "sizes": {f: {k: v for k, v in s.items() if k != "bootstrap"} for f, s in sizes.items()},
               "functions": functions, "replications": runs}
    Path(args.results).write_text(json.dumps(results, indent=1, default=str))
    write_report(Path(args.out), info, sizes, functions, runs, settings, time.time() - args.started)
    log(f"wrote {args.out} and {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
