"""The Lambda Invoke API in front of `cargo lambda watch`, and everything else to the emulator.

    python -m ferry_emulator.lambda_router --emulator http://127.0.0.1:P1 --lambda http://127.0.0.1:P2 \\
        --function ferry-start-copy=start-copy --function ...

`POST /2015-03-31/functions/NAME/invocations` (NAME: a function name, a full function ARN, or
either with a `:qualifier`) goes to `cargo lambda watch` as the binary that NAME maps to. Its
answer is translated to real Lambda's: watch answers a handler error with HTTP 500 and the
`{"errorType", "errorMessage"}` body, Lambda answers HTTP 200 with `X-Amz-Function-Error:
Unhandled` and that body, which is what Step Functions' Retry and Catch route on. An unknown
function is Lambda's 404 `ResourceNotFoundException`. Only synchronous (`RequestResponse`)
invocations are served. Every other request is proxied to the emulator unchanged.

Crash faults (`POST /_router/faults {"function": NAME, "mode": MODE, "times": N}`): the next N
invocations of NAME (a function name or its binary) run to the end, so whatever the function
did in AWS is done, and then their answer is lost the way Lambda loses it:

- `serviceException`: HTTP 500 `ServiceException`, as Lambda answers when the service fails
  around an invocation. Step Functions reports it as `Lambda.ServiceException`.
- `runtimeExit`: HTTP 200 with `X-Amz-Function-Error: Unhandled` and errorType
  `Runtime.ExitError`, as Lambda answers when the runtime process is killed (out of memory,
  a crash) before it returns. Step Functions reports such a crash as `Lambda.Unknown`.

`GET /_router/faults` answers `{"pending": [...], "injected": [{"function", "mode"}...]}`.

`--concurrency N` lets at most N invocations of one function reach watch at once (the others
wait in the router, as Lambda's reserved concurrency would hold them): watch stops answering
every function once too many invocations are queued in it.

Process contract as the emulator's: one `FERRY_LAMBDA_ROUTER_READY http://127.0.0.1:PORT` line on
stdout when ready, exit at stdin EOF or SIGTERM.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from ferry_emulator.lifetime import exit_on_stdin_eof

_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
# Headers that belong to one hop, never forwarded.
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host", "content-length"}


def function_name(raw: str) -> str:
    """The function name in an Invoke path segment: `NAME`, `NAME:qualifier`,
    `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:qualifier]` or `ACCOUNT:function:NAME`."""
    name = unquote(raw)
    if ":function:" in name:
        name = name.split(":function:", 1)[1]
    return name.split(":", 1)[0]


def translate(status: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """cargo lambda watch's answer → real Lambda's (status, extra headers, body)."""
    if status == 200:
        return 200, {"X-Amz-Executed-Version": "$LATEST"}, body
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if status == 500 and isinstance(error, dict) and "errorType" in error:
        payload = {"errorType": error["errorType"], "errorMessage": error.get("errorMessage", "")}
        return 200, {"X-Amz-Executed-Version": "$LATEST", "X-Amz-Function-Error": "Unhandled"}, json.dumps(payload).encode()
    # Anything else is the service failing, as Lambda's ServiceException.
    message = body.decode("utf-8", "replace")[:1000]
    return 500, {"x-amzn-ErrorType": "ServiceException"}, json.dumps({"Type": "Service", "message": message}).encode()


FAULT_MODES = ("serviceException", "runtimeExit")


class Faults:
    """Answers the router loses on purpose after the function ran (POST /_router/faults)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[dict[str, Any]] = []
        self.injected: list[dict[str, str]] = []

    def add(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) - {"function", "mode", "times"}:
            raise ValueError('faults take {"function": name, "mode": "serviceException" | "runtimeExit", "times": int}')
        function, mode, times = body.get("function"), body.get("mode"), body.get("times", 1)
        if not isinstance(function, str) or not function:
            raise ValueError("function must be a function name or binary")
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError("times must be an integer >= 1")
        with self.lock:
            self.pending.append({"function": function, "mode": mode, "times": times})
        return self.state()

    def take(self, name: str, binary: str) -> str | None:
        """The fault for this invocation, if one is pending for the function."""
        with self.lock:
            for fault in self.pending:
                if fault["function"] in (name, binary):
                    fault["times"] -= 1
                    if fault["times"] == 0:
                        self.pending.remove(fault)
                    self.injected.append({"function": name, "mode": fault["mode"]})
                    return fault["mode"]
        return None

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"pending": [dict(f) for f in self.pending], "injected": list(self.injected)}


def lost_answer(mode: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
    """Lambda's answer for an invocation whose function ran but whose answer was lost."""
    if mode == "runtimeExit":
        payload = {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"}
        return 200, {"X-Amz-Executed-Version": "$LATEST", "X-Amz-Function-Error": "Unhandled"}, json.dumps(payload).encode()
    message = "Lambda encountered an internal error: the function ran, but its answer was lost (injected by ferry's Lambda router)"
    return 500, {"x-amzn-ErrorType": "ServiceException"}, json.dumps({"Type": "Service", "message": message}).encode()


class Router:
    def __init__(self, emulator: str, lambda_url: str, functions: dict[str, str], concurrency: int = 0):
        self.emulator = urlsplit(emulator)
        self.lambda_url = urlsplit(lambda_url)
        self.functions = functions
        self.faults = Faults()
        # At most `concurrency` invocations of a function reach watch at once (0: no limit); the
        # rest wait here. cargo lambda watch stops answering every function once too many
        # invocations are queued in it (seen with ~150 at once).
        self.slots = {binary: threading.BoundedSemaphore(concurrency) for binary in functions.values()} if concurrency > 0 else {}

    @staticmethod
    def _send(target: Any, method: str, path: str, headers: dict[str, str], body: bytes, timeout: float) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def invoke(self, raw_name: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        name = function_name(raw_name)
        binary = self.functions.get(name)
        request_id = str(uuid.uuid4())
        if binary is None:
            message = f"Function not found: {unquote(raw_name)}"
            return 404, {"x-amzn-ErrorType": "ResourceNotFoundException", "x-amzn-RequestId": request_id}, json.dumps(
                {"Type": "User", "message": message}
            ).encode()
        invocation_type = headers.get("x-amz-invocation-type", "RequestResponse")
        if invocation_type != "RequestResponse":
            message = f"only RequestResponse invocations are served locally, not {invocation_type}"
            return 400, {"x-amzn-ErrorType": "InvalidParameterValueException", "x-amzn-RequestId": request_id}, json.dumps(
                {"Type": "User", "message": message}
            ).encode()
        fault = self.faults.take(name, binary)
        slot = self.slots.get(binary)
        if slot is not None:
            slot.acquire()
        try:
            status, _headers, answer = self._send(
                self.lambda_url,
                "POST",
                f"/2015-03-31/functions/{binary}/invocations",
                {"Content-Type": "application/json"},
                body,
                timeout=900,
            )
        finally:
            if slot is not None:
                slot.release()
        status, extra, answer = lost_answer(fault, request_id) if fault else translate(status, answer)
        return status, {**extra, "x-amzn-RequestId": request_id, "Content-Type": "application/json"}, answer

    def control(self, method: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """GET/POST /_router/faults."""
        headers = {"Content-Type": "application/json"}
        try:
            if method == "POST":
                return 200, headers, json.dumps(self.faults.add(json.loads(body or b"{}"))).encode()
            return 200, headers, json.dumps(self.faults.state()).encode()
        except ValueError as error:
            return 400, headers, json.dumps({"error": str(error)}).encode()

    def proxy(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP}
        forwarded["Host"] = self.emulator.netloc
        return self._send(self.emulator, method, path, forwarded, body, timeout=300)


def _handler(router: Router) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _answer(self, status: int, headers: Any, body: bytes) -> None:
            self.send_response(status)
            items = headers.items() if isinstance(headers, dict) else headers
            for key, value in items:
                if key.lower() not in _HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            body = self._body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]
            match = _INVOKE.match(path)
            try:
                if self.command == "POST" and match:
                    self._answer(*router.invoke(match.group("name"), headers, body))
                elif path == "/_router/faults" and self.command in ("GET", "POST"):
                    self._answer(*router.control(self.command, body))
                else:
                    self._answer(*router.proxy(self.command, self.path, dict(self.headers.items()), body))
            except OSError as error:  # the backend is gone or timed out
                payload = json.dumps({"Type": "Service", "message": f"local backend unreachable: {error}"}).encode()
                self._answer(502, {"x-amzn-ErrorType": "ServiceException", "Content-Type": "application/json"}, payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

    return Handler


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ferry_emulator.lambda_router", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--emulator", required=True, help="the emulator's URL (everything but Invoke goes there)")
    parser.add_argument("--lambda", dest="lambda_url", required=True, help="cargo lambda watch's URL")
    parser.add_argument(
        "--function",
        action="append",
        default=[],
        metavar="NAME=BINARY",
        help="a function name (as in the state machine's ARNs) and the binary serving it; repeatable",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="invocations of one function sent to watch at once, the rest wait (default 0: no limit); as many as the function's processes",
    )
    parser.add_argument("--no-stdin-watch", action="store_true", help="do not exit when stdin reaches EOF")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    functions = {}
    for spec in args.function:
        name, _, binary = spec.partition("=")
        if not name or not binary:
            raise SystemExit(f"--function wants NAME=BINARY, got {spec!r}")
        functions[name] = binary
    router = Router(args.emulator, args.lambda_url, functions, args.concurrency)
    server = ThreadingHTTPServer((args.host, args.port), _handler(router))
    server.daemon_threads = True

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    if not args.no_stdin_watch:
        threading.Thread(target=exit_on_stdin_eof, name="stdin-watch", daemon=True).start()

    print(f"FERRY_LAMBDA_ROUTER_READY http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
