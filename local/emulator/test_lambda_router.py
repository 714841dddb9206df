"""ferry_emulator.lambda_router: Lambda's Invoke API in front of `cargo lambda watch`.

A stand-in for watch answers the way watch does (200 with the result; 500 with
`{"errorType", "errorMessage"}` for a handler error); the router must answer as real Lambda,
which boto3's Lambda client (the same API the Step Functions interpreter uses) reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from conftest import http_json
from ferry_emulator.lambda_router import function_name, translate

PACKAGE_DIR = Path(__file__).resolve().parent


class FakeWatch(BaseHTTPRequestHandler):
    """Answers like `cargo lambda watch`: echo for `ok`, a handler error for `fails`."""

    received: list[tuple[str, dict]] = []

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeWatch.received.append((self.path, body))
        if "/functions/fails/" in self.path:
            status, answer = 500, {"errorType": "KeyNotFound", "errorMessage": "alias/x does not exist in us-west-2"}
        else:
            status, answer = 200, {"echo": body}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def start_router(emu, watch, *args):
    """The router in front of `watch` (start-copy served as `ok`), with extra `args`: (process, URL)."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "ferry_emulator.lambda_router",
            "--emulator", emu.url,
            "--lambda", f"http://127.0.0.1:{watch.server_port}",
            "--function", "ferry-start-copy=ok",
            *args,
        ],
        env={**os.environ, "PYTHONPATH": str(PACKAGE_DIR)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("FERRY_LAMBDA_ROUTER_READY http://127.0.0.1:"), line
    return proc, line.split()[1]


@pytest.fixture(scope="module")
def router(emu):
    watch = ThreadingHTTPServer(("127.0.0.1", 0), FakeWatch)
    threading.Thread(target=watch.serve_forever, daemon=True).start()
    proc, url = start_router(emu, watch, "--function", "ferry-check-copy=fails")
    yield url
    proc.stdin.close()  # the router exits at stdin EOF
    assert proc.wait(10) == 0
    watch.shutdown()


def lambda_client(url: str):
    return boto3.client(
        "lambda", region_name="us-east-1", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_function_names_arns_and_qualifiers_name_the_function():
    assert function_name("ferry-start-copy") == "ferry-start-copy"
    assert function_name("arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aferry-start-copy") == "ferry-start-copy"
    assert function_name("arn:aws:lambda:us-east-1:123456789012:function:ferry-start-copy:$LATEST") == "ferry-start-copy"
    assert function_name("123456789012:function:ferry-start-copy") == "ferry-start-copy"
    assert function_name("ferry-start-copy:live") == "ferry-start-copy"


def test_a_result_passes_through_to_the_mapped_binary(router):
    arn = "arn:aws:lambda:us-east-1:123456789012:function:ferry-start-copy"
    answer = lambda_client(router).invoke(FunctionName=arn, Payload=json.dumps({"n": 1}).encode())
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read()) == {"echo": {"n": 1}}
    assert FakeWatch.received[-1] == ("/2015-03-31/functions/ok/invocations", {"n": 1})


def test_a_handler_error_becomes_lambdas_unhandled_function_error(router):
    answer = lambda_client(router).invoke(FunctionName="ferry-check-copy", Payload=b"{}")
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    assert json.loads(answer["Payload"].read()) == {"errorType": "KeyNotFound", "errorMessage": "alias/x does not exist in us-west-2"}


def test_an_unknown_function_is_resource_not_found(router):
    client = lambda_client(router)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="ferry-nothing", Payload=b"{}")


def test_everything_else_reaches_the_emulator(router, emu):
    before = len(emu.calls())
    # A Region no other test of the shared emulator uses: nothing there yet.
    ec2 = boto3.client("ec2", region_name="ca-west-1", endpoint_url=router, aws_access_key_id="test", aws_secret_access_key="test")
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    assert {"service": "ec2", "action": "DescribeImages", "region": "ca-west-1", "accessKeyId": "test"} in emu.calls()[before:]


def test_watch_answers_other_than_a_handler_error_are_service_errors():
    assert translate(500, b"panic")[0] == 500
    assert translate(500, b"panic")[1]["x-amzn-ErrorType"] == "ServiceException"
    status, headers, body = translate(500, b'{"errorType": "Throttled", "errorMessage": "slow"}')
    assert (status, headers["X-Amz-Function-Error"], json.loads(body)["errorType"]) == (200, "Unhandled", "Throttled")


def router_faults(url: str, body: dict | None = None) -> tuple[int, dict]:
    return http_json(url + "/_router/faults", None if body is None else json.dumps(body).encode())


def test_a_lost_answer_runs_the_function_then_answers_service_exception(router):
    status, state = router_faults(router, {"function": "ferry-start-copy", "mode": "serviceException", "times": 1})
    assert status == 200
    assert state["pending"] == [{"function": "ferry-start-copy", "mode": "serviceException", "times": 1}]
    client = lambda_client(router)
    before = len(FakeWatch.received)
    with pytest.raises(client.exceptions.ServiceException) as raised:
        client.invoke(FunctionName="ferry-start-copy", Payload=b'{"n": 2}')
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert FakeWatch.received[before:] == [("/2015-03-31/functions/ok/invocations", {"n": 2})], "the function ran"
    answer = client.invoke(FunctionName="ferry-start-copy", Payload=b'{"n": 3}')
    assert json.loads(answer["Payload"].read()) == {"echo": {"n": 3}}, "only the next invocation loses its answer"
    assert router_faults(router)[1]["pending"] == []
    assert {"function": "ferry-start-copy", "mode": "serviceException"} in router_faults(router)[1]["injected"]


def test_a_killed_runtime_runs_the_function_then_answers_runtime_exit_error(router):
    router_faults(router, {"function": "ok", "mode": "runtimeExit", "times": 1})  # by binary name
    before = len(FakeWatch.received)
    answer = lambda_client(router).invoke(FunctionName="ferry-start-copy", Payload=b'{"n": 4}')
    assert (answer["StatusCode"], answer["FunctionError"]) == (200, "Unhandled")
    payload = json.loads(answer["Payload"].read())
    assert payload["errorType"] == "Runtime.ExitError"
    assert payload["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    assert FakeWatch.received[before:] == [("/2015-03-31/functions/ok/invocations", {"n": 4})], "the function ran"


@pytest.mark.parametrize(
    "body",
    [
        {"function": "ferry-start-copy", "mode": "explode"},
        {"function": "", "mode": "serviceException"},
        {"function": "ferry-start-copy", "mode": "serviceException", "times": 0},
        {"function": "ferry-start-copy", "mode": "serviceException", "after": "run"},
    ],
)
def test_bad_faults_are_rejected(router, body):
    assert router_faults(router, body)[0] == 400


class SlowWatch(BaseHTTPRequestHandler):
    """A watch whose every invocation takes 0.3 s; counts how many it holds at once."""

    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with SlowWatch.lock:
            SlowWatch.in_flight += 1
            SlowWatch.peak = max(SlowWatch.peak, SlowWatch.in_flight)
        time.sleep(0.3)
        with SlowWatch.lock:
            SlowWatch.in_flight -= 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_concurrency_holds_invocations_beyond_the_limit_in_the_router(emu):
    """watch stops answering once too many invocations queue in it: with --concurrency N at most
    N of one function reach it at once; the rest wait in the router and are all answered."""
    watch = ThreadingHTTPServer(("127.0.0.1", 0), SlowWatch)
    threading.Thread(target=watch.serve_forever, daemon=True).start()
    proc, url = start_router(emu, watch, "--concurrency", "2")
    answers = []

    def invoke(i):
        client = lambda_client(url)
        answers.append(client.invoke(FunctionName="ferry-start-copy", Payload=json.dumps({"i": i}))["StatusCode"])

    threads = [threading.Thread(target=invoke, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    proc.stdin.close()
    proc.wait(10)
    watch.shutdown()
    assert answers == [200] * 8
    assert SlowWatch.peak == 2
