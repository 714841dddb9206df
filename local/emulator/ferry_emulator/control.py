"""WSGI middleware in front of moto: the /_ferry/* control endpoints, and a record
of every AWS call (and EventBridge entry) that passes through to moto."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from . import state

# Signing names whose botocore (boto3) service name differs.
_BOTO3_NAMES = {"states": "stepfunctions", "execute-api": "apigateway"}


def _json_response(start_response: Callable, status: int, payload: Any) -> list[bytes]:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
    start_response(
        f"{status} {reason.get(status, 'Error')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _credential_scope(environ: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(access key id, region, service) from a SigV4 Authorization header, else Nones."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        credential = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
        key, _date, region, service, _term = credential.split("/")
        return key, region, service.lower()
    except (IndexError, ValueError):
        return None, None, None


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back so moto can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _rest_action(environ: dict[str, Any], service: str) -> str | None:
    """Operation name of a REST-protocol call (e.g. Lambda Invoke) via moto's router."""
    try:
        from moto.core.request import Request
        from moto.core.routing import get_service_router

        router = get_service_router(_BOTO3_NAMES.get(service, service))
        operation, _params = router.match(Request(environ))
        return operation.name
    except Exception:  # noqa: BLE001 - unknown service/route: record without action
        return None


def _describe_call(environ: dict[str, Any]) -> tuple[dict[str, Any], dict | None]:
    """The call record, plus the parsed JSON body when it is an EventBridge PutEvents."""
    access_key, region, service = _credential_scope(environ)
    content_type = environ.get("CONTENT_TYPE", "")
    gzipped = "gzip" in environ.get("HTTP_CONTENT_ENCODING", "")
    action = None
    json_body = None

    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        action = query["Action"][0]
    elif content_type.startswith("application/x-www-form-urlencoded") and not gzipped:
        form = parse_qs(_read_body(environ).decode("utf-8", "replace"))
        if "Action" in form:
            action = form["Action"][0]

    target = environ.get("HTTP_X_AMZ_TARGET")
    if action is None and target:
        action = target.rsplit(".", 1)[-1]
        if action == "PutEvents" and not gzipped:
            try:
                json_body = json.loads(_read_body(environ) or b"{}")
            except ValueError:
                json_body = None

    if action is None and service:
        action = _rest_action(environ, service)

    return {"service": service, "action": action, "region": region, "accessKeyId": access_key}, json_body


def _event_entries(region: str | None, body: dict) -> list[dict[str, Any]]:
    return [
        {
            "region": region,
            "source": entry.get("Source"),
            "detailType": entry.get("DetailType"),
            "detail": entry.get("Detail"),
            "eventBusName": entry.get("EventBusName"),
            "resources": entry.get("Resources", []),
        }
        for entry in body.get("Entries", [])
        if isinstance(entry, dict)
    ]


def _throttled_response(environ: dict[str, Any], start_response: Callable, service: str | None) -> list[bytes]:
    """AWS's answer to a throttled call, in the caller's protocol."""
    request_id = str(uuid.uuid4())
    if environ.get("HTTP_X_AMZ_TARGET"):  # JSON protocols (KMS, EventBridge, ...)
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        status, content_type = "400 Bad Request", "application/x-amz-json-1.1"
    elif service == "ec2":
        # EC2 answers HTTP 503 with code RequestLimitExceeded in its query-protocol error XML.
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>'
            f"<Message>Request limit exceeded.</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
        status, content_type = "503 Service Unavailable", "text/xml;charset=UTF-8"
    else:  # other query protocols (STS, ...)
        body = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        status, content_type = "400 Bad Request", "text/xml"
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("x-amzn-RequestId", request_id)],
    )
    return [body]


_SERVER_ERRORS = {
    # EC2's query-protocol error codes for HTTP 500 and 503 (EC2 API reference, error codes).
    ("ec2", 500): ("InternalError", "An internal error has occurred."),
    ("ec2", 503): ("Unavailable", "The server is overloaded and can't handle the request."),
    # KMS (JSON protocol): its own internal error, and the common 503 error of every AWS API.
    ("kms", 500): ("KMSInternalException", "The request was rejected because an internal exception occurred. The request can be retried."),
    ("kms", 503): ("ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
}


def _server_error_response(environ: dict[str, Any], start_response: Callable, service: str, status: int) -> list[bytes]:
    """An HTTP 500/503 in the caller's protocol, with the service's own error code."""
    request_id = str(uuid.uuid4())
    code, message = _SERVER_ERRORS[(service, status)]
    if environ.get("HTTP_X_AMZ_TARGET"):  # JSON protocols
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    else:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
        content_type = "text/xml;charset=UTF-8"
    reason = "Internal Server Error" if status == 500 else "Service Unavailable"
    start_response(
        f"{status} {reason}",
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("x-amzn-RequestId", request_id)],
    )
    return [body]


def _failed_put_events_response(start_response: Callable, entries: int) -> list[bytes]:
    """EventBridge's answer when it took none of the entries: HTTP 200, every entry failed."""
    failed = {"ErrorCode": "InternalFailure", "ErrorMessage": "Internal Failure (injected by failPutEvents)"}
    body = json.dumps({"FailedEntryCount": entries, "Entries": [failed] * entries}).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body))), ("x-amzn-RequestId", str(uuid.uuid4()))],
    )
    return [body]


class _NotFound(Exception):
    pass


def _tamper(body: dict[str, Any]) -> dict[str, Any]:
    """Re-points a snapshot's KmsKeyId (drift: a replica later found under another key)."""
    snapshot_id, key_ref, region = body.get("snapshotId"), body.get("kmsKeyId"), body.get("region")
    if set(body) - {"snapshotId", "kmsKeyId", "region"}:
        raise ValueError('tamper takes {"snapshotId": str, "kmsKeyId": str, "region": str (optional)}')
    if not isinstance(snapshot_id, str) or not snapshot_id or not isinstance(key_ref, str) or not key_ref:
        raise ValueError("snapshotId and kmsKeyId must be non-empty strings")
    if region is not None and not isinstance(region, str):
        raise ValueError("region must be a string")
    from moto.ec2.models import ec2_backends

    with state.LOCK:
        for account, regional in list(ec2_backends.items()):
            # dict.items: only the Regions already in use (indexing would create the others).
            for name, backend in list(dict.items(regional)):
                if region not in (None, name) or snapshot_id not in backend.snapshots:
                    continue
                snapshot = backend.snapshots[snapshot_id]
                previous = snapshot.kms_key_id
                try:
                    from .patches.common import resolve_key_arn

                    key_arn = resolve_key_arn(account, name, key_ref)
                except Exception:  # noqa: BLE001 - plain moto: keep the reference as given
                    key_arn = key_ref
                snapshot.kms_key_id = key_arn
                snapshot.encrypted = True
                return {"snapshotId": snapshot_id, "region": name, "kmsKeyId": key_arn, "previousKmsKeyId": previous}
    raise _NotFound(f"no snapshot {snapshot_id} in any Region in use")


class FerryMiddleware:
    """Intercepts /_ferry/*, records AWS calls, settles due timers, then calls moto."""

    def __init__(self, app: Callable, on_request: Callable[[], None] | None = None):
        self.app = app
        # Runs before every AWS call: finishes copies whose time has come (patched mode).
        self.on_request = on_request

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_ferry/"):
            return self.control(environ, start_response, path)

        if environ.get("HTTP_AUTHORIZATION"):  # an AWS API call (moto-api calls are unsigned)
            call, put_events = _describe_call(environ)
            if state.take_throttle(call["action"]):
                state.count_throttled(call["service"])
                state.record_call({**call, "throttled": True})
                return _throttled_response(environ, start_response, call["service"])
            fault, delay = state.draw_fault(call["service"])
            if delay > 0:
                time.sleep(delay)
            if fault == "throttle":
                state.record_call({**call, "throttled": True})
                return _throttled_response(environ, start_response, call["service"])
            if fault == "serverError":
                status = state.server_error_kind()
                state.record_call({**call, "serverError": status})
                return _server_error_response(environ, start_response, call["service"], status)
            if call["action"] == "PutEvents" and state.take_put_events_failure():
                entries = len((put_events or {}).get("Entries") or []) or 1
                state.record_call({**call, "failedEntries": entries})
                return _failed_put_events_response(start_response, entries)
            state.record_call(call)
            if put_events is not None:
                state.record_events(_event_entries(call["region"], put_events))
        if self.on_request is not None:
            self.on_request()
        return self.app(environ, start_response)

    def control(self, environ: dict[str, Any], start_response: Callable, path: str) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        endpoint = path[len("/_ferry/"):].strip("/")
        try:
            body = json.loads(_read_body(environ) or b"{}") if method == "POST" else {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as err:
            return _json_response(start_response, 400, {"error": str(err)})

        try:
            if endpoint == "config" and method == "POST":
                return _json_response(start_response, 200, state.update_config(body))
            if endpoint == "config" and method == "GET":
                return _json_response(start_response, 200, dict(state.CONFIG))
            if endpoint == "advance" and method == "POST":
                seconds = body.get("seconds")
                if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                    raise ValueError("seconds must be a number")
                offset = state.advance(float(seconds))
                if self.on_request is not None:
                    self.on_request()
                return _json_response(start_response, 200, {"offsetSeconds": offset})
            if endpoint == "calls" and method == "GET":
                with state.LOCK:
                    return _json_response(start_response, 200, list(state.CALLS))
            if endpoint == "events" and method == "GET":
                with state.LOCK:
                    return _json_response(start_response, 200, list(state.EVENTS))
            if endpoint == "stats" and method == "GET":
                if self.on_request is not None:
                    self.on_request()  # copies that are due stop counting first
                return _json_response(start_response, 200, state.stats())
            if endpoint == "tamper" and method == "POST":
                return _json_response(start_response, 200, _tamper(body))
        except ValueError as err:
            return _json_response(start_response, 400, {"error": str(err)})
        except _NotFound as err:
            return _json_response(start_response, 404, {"error": str(err)})

        known = {"config", "advance", "calls", "events", "stats", "tamper"}
        status = 405 if endpoint in known else 404
        return _json_response(start_response, status, {"error": f"no such endpoint: {method} {path}"})
