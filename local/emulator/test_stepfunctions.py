"""Step Functions executions on moto's engine in the patched emulator (patches/stepfunctions.py).

Task states call Lambda through `lambdaEndpoint`, here a stand-in that answers Lambda's Invoke
API the way the Lambda router does; everything else the engine calls is the emulator itself.
One emulator serves the module; each test starts from the default config plus that endpoint.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conftest import Emulator, unique
from ferry_emulator.lambda_router import function_name

ROLE = "arn:aws:iam::123456789012:role/ferry-state-machine"
FAILURE = {"errorType": "KeyNotFound", "errorMessage": "alias/ferry does not exist in us-west-2"}


def fn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:function:{name}"


class FakeLambda(BaseHTTPRequestHandler):
    """Lambda's Invoke API. The payload steers it: `fail: true` (or the function `fails`) is a
    handler error `KeyNotFound`; `failTimes: n` fails the first n calls per `key`; `sleep: s`
    holds the answer. Answers `{"echo": payload}`."""

    lock = threading.Lock()
    calls: list[tuple[str, Any]] = []
    attempts: Counter = Counter()
    in_flight = 0
    peak = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"] or 0)) or b"null")
        name = function_name(self.path.split("/functions/", 1)[1].split("/", 1)[0])
        steer = payload if isinstance(payload, dict) else {}
        with FakeLambda.lock:
            FakeLambda.calls.append((name, payload))
            FakeLambda.attempts[steer.get("key")] += 1
            attempt = FakeLambda.attempts[steer.get("key")]
            FakeLambda.in_flight += 1
            FakeLambda.peak = max(FakeLambda.peak, FakeLambda.in_flight)
        time.sleep(steer.get("sleep", 0))
        with FakeLambda.lock:
            FakeLambda.in_flight -= 1
        if name == "unavailable" and attempt <= steer.get("serviceFailures", 0):
            # Lambda's own failure around the invocation (not the function's): HTTP 500.
            body = json.dumps({"Type": "Service", "message": "injected"}).encode()
            self.send_response(500)
            self.send_header("x-amzn-ErrorType", "ServiceException")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        fails = name == "fails" or steer.get("fail") is True or attempt <= steer.get("failTimes", 0)
        body = json.dumps(FAILURE if fails else {"echo": payload}).encode()
        self.send_response(200)
        if fails:
            self.send_header("X-Amz-Function-Error", "Unhandled")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    @classmethod
    def reset(cls) -> None:
        with cls.lock:
            cls.calls.clear()
            cls.attempts.clear()
            cls.in_flight = cls.peak = 0


@pytest.fixture(scope="module")
def lambda_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLambda)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def sf_emulator():
    e = Emulator()
    yield e
    e.stop()


@pytest.fixture
def sf(sf_emulator, lambda_url):
    """The module's emulator, with the engine's Lambda calls going to FakeLambda."""
    FakeLambda.reset()
    sf_emulator.config(lambdaEndpoint=lambda_url, stepFunctions={"waitSeconds": None, "retrySeconds": None}, failPutEvents=0)
    return sf_emulator


# --- helpers ----------------------------------------------------------------------------


def machine(e: Emulator, definition: dict, name: str | None = None) -> str:
    return e.client("stepfunctions").create_state_machine(
        name=name or unique("m"), definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]


def settle(e: Emulator, execution_arn: str, timeout: float = 20) -> dict:
    sfn = e.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.05)


def execute(e: Emulator, definition: dict | str, payload: Any = None, name: str | None = None) -> dict:
    """Start an execution (of a new machine, or of a machine ARN) and wait until it ends."""
    arn = definition if isinstance(definition, str) else machine(e, definition)
    started = e.client("stepfunctions").start_execution(
        stateMachineArn=arn, name=name or unique("x"), input=json.dumps(payload or {})
    )
    return settle(e, started["executionArn"])


def history(e: Emulator, execution_arn: str) -> list[dict]:
    return e.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]


def types(events: list[dict]) -> list[str]:
    return [event["type"] for event in events]


def task(resource: str, **fields: Any) -> dict:
    return {"Type": "Task", "Resource": resource, **fields}


def one_state(state: dict) -> dict:
    return {"StartAt": "S", "States": {"S": {**state, "End": True}}}


def distributed(processor_states: dict, start_at: str, **fields: Any) -> dict:
    """A Distributed Map state (STANDARD child executions) over `processor_states`."""
    return {
        "Type": "Map",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": start_at,
            "States": processor_states,
        },
        **fields,
    }


def put_work_list(e: Emulator, items: list[Any]) -> tuple[str, str]:
    s3 = e.client("s3")
    bucket = unique("work")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="plan/items.json", Body=json.dumps(items).encode())
    return bucket, "plan/items.json"


def s3_json(e: Emulator, bucket: str, key: str) -> Any:
    return json.loads(e.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


# --- 1, 2: the engine and where its Lambda calls go ---------------------------------------


def test_engine_runs_executions_only_when_patched(sf, plain):
    done = execute(sf, one_state({"Type": "Pass", "Result": {"ok": True}}))
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"]) == {"ok": True}
    # --plain keeps moto's default: no engine, the execution stays RUNNING with canned history.
    sfn = plain.client("stepfunctions")
    arn = sfn.create_state_machine(name=unique("m"), definition=json.dumps(one_state({"Type": "Pass"})), roleArn=ROLE)
    started = sfn.start_execution(stateMachineArn=arn["stateMachineArn"], name="x")
    time.sleep(0.3)
    assert sfn.describe_execution(executionArn=started["executionArn"])["status"] == "RUNNING"


def test_config_keys_are_validated(sf, lambda_url):
    config = sf.config()
    assert config["lambdaEndpoint"] == lambda_url
    assert config["stepFunctions"] == {"waitSeconds": None, "retrySeconds": None}
    assert config["failPutEvents"] == 0
    # stepFunctions is partial: a key left out keeps its value.
    assert sf.config(stepFunctions={"waitSeconds": 0.5})["stepFunctions"] == {"waitSeconds": 0.5, "retrySeconds": None}
    assert sf.config(stepFunctions={"retrySeconds": 0})["stepFunctions"] == {"waitSeconds": 0.5, "retrySeconds": 0.0}
    for bad in (
        b'{"lambdaEndpoint": "127.0.0.1:9"}',
        b'{"lambdaEndpoint": 9}',
        b'{"stepFunctions": {"waitSeconds": -1}}',
        b'{"stepFunctions": {"waitSeconds": "1"}}',
        b'{"stepFunctions": {"sleep": 1}}',
        b'{"failPutEvents": -1}',
        b'{"failPutEvents": true}',
    ):
        assert sf.post("/_ferry/config", bad)[0] == 400, bad
    assert sf.config(lambdaEndpoint=None)["lambdaEndpoint"] is None


def test_lambda_tasks_go_to_the_lambda_endpoint(sf):
    machine_arn = machine(sf, {
        "StartAt": "Short",
        "States": {
            "Short": task(fn("ferry-start-copy"), ResultPath="$.short", Next="Invoke"),
            "Invoke": task("arn:aws:states:::lambda:invoke", Parameters={"FunctionName": fn("ferry-check-copy"), "Payload.$": "$"}, End=True),
        },
    })
    done = execute(sf, machine_arn, {"image": "ami-1"})
    assert done["status"] == "SUCCEEDED", done
    out = json.loads(done["output"])
    assert out["Payload"] == {"echo": {"image": "ami-1", "short": {"echo": {"image": "ami-1"}}}}
    assert out["StatusCode"] == 200
    assert [name for name, _ in FakeLambda.calls] == ["ferry-start-copy", "ferry-check-copy"]


@pytest.mark.parametrize("resource", ["function-arn", "lambda:invoke"])
def test_function_error_name_is_the_error_type(sf, resource):
    state = task(fn("fails")) if resource == "function-arn" else task(
        "arn:aws:states:::lambda:invoke", Parameters={"FunctionName": fn("fails"), "Payload.$": "$"}
    )
    failed = execute(sf, one_state(state))
    assert (failed["status"], failed["error"]) == ("FAILED", "KeyNotFound")
    assert json.loads(failed["cause"]) == FAILURE
    # Retry and Catch match that name.
    FakeLambda.reset()
    handled = {
        "StartAt": "S",
        "States": {
            "S": {
                **state,
                "Retry": [{"ErrorEquals": ["KeyNotFound"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                "Catch": [{"ErrorEquals": ["KeyNotFound"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    sf.config(stepFunctions={"retrySeconds": 0})
    done = execute(sf, handled, {"n": 1})
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"])["error"]["Error"] == "KeyNotFound"
    assert len(FakeLambda.calls) == 2  # the attempt and its one retry


def test_a_failed_invoke_call_is_named_by_the_lambda_service_exception(sf):
    """AWS: Lambda.ServiceException (what ferry's Lambda.* retrier matches); moto: Exception."""
    state = task(fn("unavailable"))
    FakeLambda.reset()
    failed = execute(sf, one_state(state), {"key": "a", "serviceFailures": 5})
    assert (failed["status"], failed["error"]) == ("FAILED", "Lambda.ServiceException")
    FakeLambda.reset()
    retried = {
        "StartAt": "S",
        "States": {
            "S": {
                **state,
                "Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "IntervalSeconds": 1, "MaxAttempts": 3}],
                "End": True,
            }
        },
    }
    sf.config(stepFunctions={"retrySeconds": 0})
    done = execute(sf, retried, {"key": "b", "serviceFailures": 2})
    assert done["status"] == "SUCCEEDED"
    assert len(FakeLambda.calls) == 3


def test_error_names_inside_maps(sf):
    failing = {"T": task(fn("worker"), End=True)}
    # Inline Map: the iteration's error is the Map state's error, by name.
    inline = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "T", "States": failing},
                "Catch": [{"ErrorEquals": ["KeyNotFound"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    done = execute(sf, inline, {"items": [{"fail": False}, {"fail": True}]})
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"])["Error"] == "KeyNotFound"
    # Distributed Map child: its own Retry/Catch see the name.
    caught_inside = {
        "T": task(
            fn("worker"),
            Retry=[{"ErrorEquals": ["KeyNotFound"], "IntervalSeconds": 1, "MaxAttempts": 1}],
            Catch=[{"ErrorEquals": ["KeyNotFound"], "ResultPath": "$.error", "Next": "C"}],
            End=True,
        ),
        "C": {"Type": "Pass", "End": True},
    }
    sf.config(stepFunctions={"retrySeconds": 0})
    done = execute(sf, one_state(distributed(caught_inside, "T", ItemsPath="$.items")), {"items": [{"fail": True, "key": "d"}]})
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"])[0]["error"]["Error"] == "KeyNotFound"
    assert FakeLambda.attempts["d"] == 2
    # Uncaught in the child: as AWS, the Map Run fails with States.ExceedToleratedFailureThreshold
    # (no threshold given); the child's own error is in its result file (test_result_writer...).
    dmap = distributed(failing, "T", ItemsPath="$.items", Catch=[{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "Caught"}])
    done = execute(sf, {"StartAt": "M", "States": {"M": dmap, "Caught": {"Type": "Pass", "End": True}}}, {"items": [{"fail": True}]})
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"]) == {
        "Error": "States.ExceedToleratedFailureThreshold",
        "Cause": "The specified tolerated failure threshold was exceeded",
    }


# --- 3: the engine's own calls are signed `state-machine` ---------------------------------


def test_engine_calls_are_signed_with_access_key_state_machine(sf):
    sf.config(lambdaEndpoint=None)  # Lambda too goes to the emulator, which records it
    iam, lam = sf.client("iam"), sf.client("lambda")
    role = iam.create_role(RoleName=unique("fn"), AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return event\n")
    function = lam.create_function(FunctionName=unique("fn"), Runtime="python3.12", Role=role, Handler="index.handler", Code={"ZipFile": archive.getvalue()})
    child = machine(sf, one_state({"Type": "Pass"}))
    bucket, key = put_work_list(sf, [{"i": 1}])
    definition = {
        "StartAt": "Invoke",
        "States": {
            "Invoke": task(function["FunctionArn"], ResultPath=None, Next="Announce"),
            "Announce": task("arn:aws:states:::events:putEvents", Parameters={"Entries": [{"Source": "ferry", "DetailType": "t", "Detail": {}}]}, ResultPath=None, Next="Nest"),
            "Nest": task("arn:aws:states:::states:startExecution.sync:2", Parameters={"StateMachineArn": child, "Input": {}}, ResultPath=None, Next="Each"),
            "Each": distributed(
                {"P": {"Type": "Pass", "End": True}},
                "P",
                ItemReader={"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"}, "Parameters": {"Bucket": bucket, "Key": key}},
                ResultWriter={"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": bucket, "Prefix": "out"}},
                End=True,
            ),
        },
    }
    before = len(sf.calls())
    done = execute(sf, definition)
    assert done["status"] == "SUCCEEDED", done
    engine = {(c["service"], c["action"]) for c in sf.calls()[before:] if c["accessKeyId"] == "state-machine"}
    assert {
        ("lambda", "Invoke"),
        ("events", "PutEvents"),
        ("states", "StartExecution"),
        ("states", "DescribeExecution"),
        ("s3", "GetObject"),
        ("s3", "PutObject"),
    } <= engine
    assert all(c["accessKeyId"] in ("test", "state-machine") for c in sf.calls()[before:])


# --- 4: time overrides ---------------------------------------------------------------------


def test_wait_seconds_replaces_every_wait(sf):
    waits = {
        "StartAt": "Seconds",
        "States": {
            "Seconds": {"Type": "Wait", "Seconds": 3600, "Next": "SecondsPath"},
            "SecondsPath": {"Type": "Wait", "SecondsPath": "$.seconds", "Next": "Timestamp"},
            "Timestamp": {"Type": "Wait", "Timestamp": "2999-01-01T00:00:00Z", "Next": "TimestampPath"},
            "TimestampPath": {"Type": "Wait", "TimestampPath": "$.at", "End": True},
        },
    }
    sf.config(stepFunctions={"waitSeconds": 0.25})
    started = time.monotonic()
    done = execute(sf, waits, {"seconds": 86400, "at": "2999-01-01T00:00:00Z"})
    took = time.monotonic() - started
    assert done["status"] == "SUCCEEDED"
    assert 1.0 <= took < 5, took  # four waits of 0.25 s
    # Default (null): the definition's own length.
    sf.config(stepFunctions={"waitSeconds": None})
    started = time.monotonic()
    assert execute(sf, one_state({"Type": "Wait", "Seconds": 1}))["status"] == "SUCCEEDED"
    assert time.monotonic() - started >= 1


def test_retry_seconds_replaces_every_retry_pause(sf):
    retried = one_state(task(
        fn("flaky"),
        Retry=[{"ErrorEquals": ["KeyNotFound"], "IntervalSeconds": 60, "BackoffRate": 2, "MaxAttempts": 3, "JitterStrategy": "FULL"}],
    ))
    sf.config(stepFunctions={"retrySeconds": 0.1})
    started = time.monotonic()
    done = execute(sf, retried, {"key": "three", "failTimes": 3})
    assert done["status"] == "SUCCEEDED"
    assert time.monotonic() - started < 5
    # A function ARN as Resource logs LambdaFunction* events (lambda:invoke logs Task* ones).
    events = types(history(sf, done["executionArn"]))
    assert events.count("LambdaFunctionFailed") == 3 and events.count("LambdaFunctionSucceeded") == 1
    assert events.index("LambdaFunctionSucceeded") > max(i for i, t in enumerate(events) if t == "LambdaFunctionFailed")
    # MaxAttempts still applies: 1 + 3 attempts, all failing, then the error.
    failed = execute(sf, retried, {"key": "four", "failTimes": 4})
    assert (failed["status"], failed["error"]) == ("FAILED", "KeyNotFound")
    assert types(history(sf, failed["executionArn"])).count("LambdaFunctionFailed") == 4
    # ErrorEquals still applies: another error is not retried.
    other = one_state(task(fn("fails"), Retry=[{"ErrorEquals": ["Other"], "MaxAttempts": 3}]))
    assert execute(sf, other)["error"] == "KeyNotFound"
    assert [name for name, _ in FakeLambda.calls].count("fails") == 1


# --- 5: Distributed Map as ferry uses it ---------------------------------------------------


def test_item_reader_item_selector_and_max_concurrency_path(sf):
    items = [{"imageId": f"ami-{i}", "sleep": 0.3} for i in range(6)]
    bucket, key = put_work_list(sf, items)
    dmap = distributed(
        {"Copy": task(fn("ferry-start-copy"), End=True)},
        "Copy",
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.key"},
        },
        ItemSelector={"item.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "runId.$": "$.runId", "sleep.$": "$$.Map.Item.Value.sleep"},
        MaxConcurrencyPath="$.concurrency",
        ToleratedFailurePercentage=100,
    )
    done = execute(sf, one_state(dmap), {"bucket": bucket, "key": key, "runId": "run-7", "concurrency": 2})
    assert done["status"] == "SUCCEEDED", done
    received = sorted((payload for _, payload in FakeLambda.calls), key=lambda p: p["index"])
    assert received == [{"item": item, "index": i, "runId": "run-7", "sleep": 0.3} for i, item in enumerate(items)]
    assert FakeLambda.peak == 2  # MaxConcurrencyPath: at most 2 children at once
    assert [out["echo"]["item"]["imageId"] for out in json.loads(done["output"])] == [f"ami-{i}" for i in range(6)]


def test_result_writer_writes_aws_result_files(sf):
    bucket, key = put_work_list(sf, [{"id": 0}, {"id": 1, "fail": True}, {"id": 2}])
    dmap = distributed(
        {"Copy": task(fn("ferry-start-copy"), End=True)},
        "Copy",
        ItemReader={"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"}, "Parameters": {"Bucket.$": "$.bucket", "Key": key}},
        ToleratedFailurePercentage=100,
        ResultWriter={"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"}},
    )
    done = execute(sf, one_state(dmap), {"bucket": bucket, "prefix": "runs/r1"})
    assert done["status"] == "SUCCEEDED", done
    out = json.loads(done["output"])
    map_run_arn = out["MapRunArn"]
    folder = f"runs/r1/{map_run_arn.rsplit(':', 1)[1]}/"
    assert out == {"MapRunArn": map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": folder + "manifest.json"}}
    manifest = s3_json(sf, bucket, folder + "manifest.json")
    s3 = sf.client("s3")
    size = {k: s3.head_object(Bucket=bucket, Key=folder + k)["ContentLength"] for k in ("SUCCEEDED_0.json", "FAILED_0.json")}
    assert manifest == {
        "DestinationBucket": bucket,
        "MapRunArn": map_run_arn,
        "ResultFiles": {
            "FAILED": [{"Key": folder + "FAILED_0.json", "Size": size["FAILED_0.json"]}],
            "PENDING": [],
            "SUCCEEDED": [{"Key": folder + "SUCCEEDED_0.json", "Size": size["SUCCEEDED_0.json"]}],
        },
    }
    succeeded, failed = s3_json(sf, bucket, folder + "SUCCEEDED_0.json"), s3_json(sf, bucket, folder + "FAILED_0.json")
    assert [json.loads(c["Input"]) for c in succeeded] == [{"id": 0}, {"id": 2}]
    assert [json.loads(c["Output"]) for c in succeeded] == [{"echo": {"id": 0}}, {"echo": {"id": 2}}]
    machine_name = done["stateMachineArn"].rsplit(":", 1)[1]
    for child in succeeded + failed:
        assert list(child) == sorted(child)
        assert child["ExecutionArn"].endswith(":" + child["Name"])
        assert f":execution:{machine_name}/" in child["ExecutionArn"]
        assert child["StateMachineArn"].split(":stateMachine:")[1].startswith(machine_name + "/")
        assert (child["InputDetails"], child["OutputDetails"], child["RedriveCount"]) == ({"Included": True}, {"Included": True}, 0)
        assert child["StartDate"].endswith("Z") and child["StartDate"] <= child["StopDate"]
    assert {c["Status"] for c in succeeded} == {"SUCCEEDED"}
    assert {c["RedriveStatus"] for c in succeeded} == {"NOT_REDRIVABLE"}
    [only] = failed
    assert (only["Status"], only["Error"], json.loads(only["Cause"])) == ("FAILED", "KeyNotFound", FAILURE)
    assert json.loads(only["Input"]) == {"id": 1, "fail": True}
    assert "Output" not in only and only["RedriveStatus"] == "REDRIVABLE_BY_MAP_RUN"


@pytest.mark.parametrize(
    ("thresholds", "status"),
    [({}, "FAILED"), ({"ToleratedFailureCount": 1}, "SUCCEEDED"), ({"ToleratedFailurePercentage": 30}, "FAILED"), ({"ToleratedFailurePercentage": 34}, "SUCCEEDED")],
)
def test_tolerated_failure_threshold(sf, thresholds, status):
    dmap = distributed({"T": task(fn("worker"), End=True)}, "T", ItemsPath="$.items", **thresholds)
    done = execute(sf, one_state(dmap), {"items": [{"fail": True}, {}, {}]})  # 1 of 3 fails
    assert done["status"] == status
    events = types(history(sf, done["executionArn"]))
    map_run_arn = next(e for e in history(sf, done["executionArn"]) if e["type"] == "MapRunStarted")["mapRunStartedEventDetails"]["mapRunArn"]
    counts = sf.client("stepfunctions").describe_map_run(mapRunArn=map_run_arn)["executionCounts"]
    assert (counts["total"], counts["succeeded"], counts["failed"], counts["running"]) == (3, 2, 1, 0)
    if status == "FAILED":
        assert done["error"] == "States.ExceedToleratedFailureThreshold"
        assert events[-3:] == ["MapRunFailed", "MapStateFailed", "ExecutionFailed"]
    else:
        assert json.loads(done["output"])[1:] == [{"echo": {}}, {"echo": {}}]
        assert "MapRunSucceeded" in events


def test_nested_distributed_map(sf):
    bucket, _ = put_work_list(sf, [])
    writer = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": bucket, "Prefix.$": "$.prefix"}}
    inner = distributed({"T": task(fn("leaf"), End=True)}, "T", ItemsPath="$.leaves", ResultWriter=writer, End=True)
    outer = distributed(
        {"Inner": inner}, "Inner", ItemsPath="$.groups", ResultWriter=writer,
        ItemSelector={"leaves.$": "$$.Map.Item.Value", "prefix": "inner"},
    )
    done = execute(sf, one_state(outer), {"groups": [[{"n": 1}, {"n": 2}], [{"n": 3}]], "prefix": "outer"})
    assert done["status"] == "SUCCEEDED", done
    assert sorted(p["n"] for _, p in FakeLambda.calls) == [1, 2, 3]
    events = history(sf, done["executionArn"])
    assert (types(events).count("MapRunStarted"), types(events).count("MapRunSucceeded")) == (1, 1)  # the children's are their own
    out = json.loads(done["output"])
    assert out["MapRunArn"] == next(e["mapRunStartedEventDetails"]["mapRunArn"] for e in events if e["type"] == "MapRunStarted")
    manifest = s3_json(sf, bucket, out["ResultWriterDetails"]["Key"])
    assert manifest["MapRunArn"] == out["MapRunArn"] and out["ResultWriterDetails"]["Key"].startswith("outer/")
    [succeeded] = manifest["ResultFiles"]["SUCCEEDED"]
    inner_outputs = [json.loads(child["Output"]) for child in s3_json(sf, bucket, succeeded["Key"])]
    assert len(inner_outputs) == 2 and all(o["ResultWriterDetails"]["Key"].startswith("inner/") for o in inner_outputs)
    leaves = [s3_json(sf, bucket, s3_json(sf, bucket, o["ResultWriterDetails"]["Key"])["ResultFiles"]["SUCCEEDED"][0]["Key"]) for o in inner_outputs]
    assert sorted(json.loads(leaf["Output"])["echo"]["n"] for group in leaves for leaf in group) == [1, 2, 3]


def test_distributed_children_have_their_own_execution_context(sf):
    dmap = distributed(
        {"P": {"Type": "Pass", "Parameters": {"id.$": "$$.Execution.Id", "name.$": "$$.Execution.Name", "input.$": "$$.Execution.Input"}, "End": True}},
        "P",
        ItemsPath="$.items",
        ItemSelector={"v.$": "$$.Map.Item.Value"},
    )
    done = execute(sf, one_state(dmap), {"items": ["a"]})
    [child] = json.loads(done["output"])
    machine_name = done["stateMachineArn"].rsplit(":", 1)[1]
    assert child["id"].startswith(done["executionArn"].split(":execution:")[0] + f":execution:{machine_name}/")
    assert child["id"].endswith(":" + child["name"]) and child["id"] != done["executionArn"]
    assert child["input"] == {"v": "a"}


def test_start_execution_sync2(sf):
    sfn = sf.client("stepfunctions")
    child = machine(sf, one_state(task(fn("ferry-check-copy"))))
    parent = {
        "StartAt": "Nest",
        "States": {
            "Nest": task(
                "arn:aws:states:::states:startExecution.sync:2",
                Parameters={
                    "StateMachineArn": child,
                    "Name.$": "$.name",
                    "Input": {"fail.$": "$.fail", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"},
                },
                End=True,
            )
        },
    }
    parent_arn = machine(sf, parent)
    done = execute(sf, parent_arn, {"name": "child-ok", "fail": False})
    assert done["status"] == "SUCCEEDED", done
    result = json.loads(done["output"])
    child_input = {"fail": False, "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": done["executionArn"]}
    assert result == {
        "ExecutionArn": child.replace(":stateMachine:", ":execution:") + ":child-ok",
        "Input": child_input,
        "InputDetails": {"Included": True},
        "Name": "child-ok",
        "Output": {"echo": child_input},
        "OutputDetails": {"Included": True},
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
        "StartDate": result["StartDate"],
        "StateMachineArn": child,
        "Status": "SUCCEEDED",
        "StopDate": result["StopDate"],
    }
    assert list(result) == sorted(result)
    # Epoch milliseconds, as the optimized integration answers (and DescribeExecution is a 200).
    assert isinstance(result["StartDate"], int) and abs(result["StartDate"] / 1000 - time.time()) < 60
    # A failed child fails the task with States.TaskFailed; the cause is its DescribeExecution.
    failed = execute(sf, parent_arn, {"name": "child-bad", "fail": True})
    assert (failed["status"], failed["error"]) == ("FAILED", "States.TaskFailed")
    cause = json.loads(failed["cause"])
    assert (cause["Name"], cause["Status"], cause["Error"], json.loads(cause["Cause"])) == ("child-bad", "FAILED", "KeyNotFound", FAILURE)
    nest = {key: value for key, value in parent["States"]["Nest"].items() if key != "End"}
    catching = {
        "StartAt": "Nest",
        "States": {
            "Nest": {**nest, "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}], "End": True},
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    caught = execute(sf, catching, {"name": "child-caught", "fail": True})
    assert caught["status"] == "SUCCEEDED"
    # The children are executions of their own: listable, with a history.
    listed = {x["name"]: x["status"] for x in sfn.list_executions(stateMachineArn=child)["executions"]}
    assert listed == {"child-ok": "SUCCEEDED", "child-bad": "FAILED", "child-caught": "FAILED"}
    child_history = types(history(sf, result["ExecutionArn"]))
    assert child_history[0] == "ExecutionStarted" and child_history[-1] == "ExecutionSucceeded"
    parent_history = types(history(sf, done["executionArn"]))
    assert "TaskSucceeded" in parent_history


def test_start_execution_is_idempotent_while_running(sf):
    sfn = sf.client("stepfunctions")
    sf.config(stepFunctions={"waitSeconds": 1})
    arn = machine(sf, one_state({"Type": "Wait", "Seconds": 5}))
    first = sfn.start_execution(stateMachineArn=arn, name="once", input='{"a":1}')
    again = sfn.start_execution(stateMachineArn=arn, name="once", input='{"a":1}')
    assert again["executionArn"] == first["executionArn"] and again["startDate"] == first["startDate"]
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=arn, name="once", input='{"a":2}')
    assert settle(sf, first["executionArn"])["status"] == "SUCCEEDED"
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=arn, name="once", input='{"a":1}')
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
    # Without a name, each execution gets a UUID (moto would name them all "None").
    names = {sfn.start_execution(stateMachineArn=arn)["executionArn"].rsplit(":", 1)[1] for _ in range(2)}
    assert len(names) == 2 and all(len(n) == 36 for n in names)


# --- 6: PutEvents failures -------------------------------------------------------------------


def test_fail_put_events_fails_the_engine_task_with_failed_entry(sf):
    announce = task(
        "arn:aws:states:::events:putEvents",
        Parameters={"Entries": [{"Source": "ferry", "DetailType": "Copy Done", "Detail": {"id": 1}}]},
    )
    before = len(sf.events())
    assert sf.config(failPutEvents=1)["failPutEvents"] == 1
    failed = execute(sf, one_state(announce))
    assert (failed["status"], failed["error"]) == ("FAILED", "EventBridge.FailedEntry")
    cause = json.loads(failed["cause"])
    assert cause["FailedEntryCount"] == 1 and cause["Entries"][0]["ErrorCode"] == "InternalFailure"
    assert sf.config()["failPutEvents"] == 0
    assert len(sf.events()) == before  # nothing recorded
    # A Catch on it works.
    sf.config(failPutEvents=1)
    caught = execute(sf, {
        "StartAt": "A",
        "States": {"A": {**announce, "Catch": [{"ErrorEquals": ["EventBridge.FailedEntry"], "Next": "C"}], "End": True}, "C": {"Type": "Pass", "End": True}},
    })
    assert caught["status"] == "SUCCEEDED"
    assert json.loads(caught["output"])["Error"] == "EventBridge.FailedEntry"
    # From the SDK too: HTTP 200, every entry failed; then the switch is used up.
    sf.config(failPutEvents=1)
    events = sf.client("events")
    answer = events.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}] * 2)
    assert answer["FailedEntryCount"] == 2 and {e["ErrorCode"] for e in answer["Entries"]} == {"InternalFailure"}
    assert events.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])["FailedEntryCount"] == 0
    assert len(sf.events()) == before + 1
    assert execute(sf, one_state(announce))["status"] == "SUCCEEDED"


# --- 7: history and DescribeExecution ----------------------------------------------------------


def test_parent_history_has_map_run_events(sf):
    dmap = distributed({"P": {"Type": "Pass", "End": True}}, "P", ItemsPath="$.items")
    done = execute(sf, one_state(dmap), {"items": [1, 2]})
    events = history(sf, done["executionArn"])
    assert types(events) == [
        "ExecutionStarted", "MapStateEntered", "MapStateStarted", "MapRunStarted",
        "MapRunSucceeded", "MapStateSucceeded", "MapStateExited", "ExecutionSucceeded",
    ]
    map_run_arn = events[3]["mapRunStartedEventDetails"]["mapRunArn"]
    assert ":mapRun:" in map_run_arn
    described = sf.client("stepfunctions").describe_map_run(mapRunArn=map_run_arn)
    assert described["status"] == "SUCCEEDED" and described["itemCounts"]["succeeded"] == 2


def test_describe_execution_with_timestamps_in_the_output(sf):
    bucket, key = put_work_list(sf, [])
    head = one_state(task("arn:aws:states:::aws-sdk:s3:headObject", Parameters={"Bucket": bucket, "Key": key}))
    done = execute(sf, head)  # moto: DescribeExecution answered HTTP 500 (a datetime in the output)
    assert done["status"] == "SUCCEEDED", done
    modified = json.loads(done["output"])["LastModified"]
    assert modified.endswith("Z") and modified[:4].isdigit()
    succeeded = history(sf, done["executionArn"])[-1]
    assert json.loads(succeeded["executionSucceededEventDetails"]["output"])["LastModified"] == modified
    assert done["inputDetails"] == {"included": True} and done["redriveStatus"] == "NOT_REDRIVABLE"


def test_sync_tasks_look_at_their_child_less_often_the_longer_it_runs():
    """AWS completes .sync from the child's completion event; the patched engine polls with a
    growing pause (0.5 s, then half as long again each time, up to the cap) instead of moto's
    fixed 0.5 s, so hundreds of children in flight do not flood the emulator."""
    from itertools import islice

    from ferry_emulator.patches.stepfunctions import SYNC_POLL_CAP_SECONDS, sync_poll_delays

    delays = list(islice(sync_poll_delays(), 12))
    assert delays[:3] == [0.5, 0.75, 1.125]
    assert all(b >= a for a, b in zip(delays, delays[1:]))
    assert delays[-1] == SYNC_POLL_CAP_SECONDS
