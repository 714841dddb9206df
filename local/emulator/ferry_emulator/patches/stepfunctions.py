"""Step Functions executions on moto's own engine (the LocalStack interpreter moto vendors in
``moto/stepfunctions/parser``), made to behave as AWS where ferry depends on it.

``apply`` switches the engine on; the engine's modules are patched the first time a Step
Functions call arrives (importing them costs ~0.3 s, which the emulator's startup does not pay).

Config (``state.CONFIG``): ``lambdaEndpoint`` sends the engine's Lambda calls to another server
(the Lambda router); ``stepFunctions.waitSeconds`` / ``retrySeconds`` replace the length of every
Wait state / Retry pause entered afterwards.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from moto.core.config import default_user_config

from .. import state

# The access key id the engine signs its own AWS calls with (GET /_ferry/calls tells them apart).
ENGINE_ACCESS_KEY = "state-machine"

_engine_lock = threading.Lock()
_engine_patched = False


def apply() -> None:
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    # Lambda's Invoke inside the emulator answers without Docker (none on these machines).
    default_user_config["lambda"] = {**default_user_config.get("lambda", {}), "use_docker": False}
    _patch_engine_on_first_use()


def _patch_engine_on_first_use() -> None:
    """Patch the engine's modules just before the first Step Functions call uses them."""
    from moto.stepfunctions import responses

    original = responses.get_backend

    def get_backend(account: str, region: str) -> Any:
        _patch_engine()
        return original(account, region)

    responses.get_backend = get_backend


def _patch_engine() -> None:
    global _engine_patched
    if _engine_patched:
        return
    with _engine_lock:
        if _engine_patched:
            return
        import moto.stepfunctions.parser.models  # noqa: F401 - imports every engine module

        _integer_tolerated_failure_percentage()
        _each_text_parsed_once()
        _engine_clients_go_to_the_emulator()
        _wait_seconds_override()
        _retry_seconds_override()
        _unnamed_executions_get_a_uuid()
        _describe_execution_as_aws()
        _start_execution_speaks_aws()
        _failed_entry_cause_is_json()
        _aws_sdk_timestamps_as_strings()
        _map_run_children_are_recorded()
        _tolerated_failure_threshold()
        _result_writer_writes_result_files()
        _lambda_invoke_failures_are_named_as_aws()
        _sync_polls_back_off()
        _engine_patched = True


# --- definitions -----------------------------------------------------------------------------


def _floats_for_percentages(node: Any) -> bool:
    """Turn every integer ``ToleratedFailurePercentage`` into a float, in place; True if any."""
    changed = False
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "ToleratedFailurePercentage" and type(value) is int:
                node[key] = float(value)
                changed = True
            else:
                changed |= _floats_for_percentages(value)
    elif isinstance(node, list):
        for item in node:
            changed |= _floats_for_percentages(item)
    return changed


def _integer_tolerated_failure_percentage() -> None:
    """AWS takes ``"ToleratedFailurePercentage": 100``; moto's grammar wants a decimal point
    (an integer is a syntax error, "no viable alternative"). Parse integers as their float."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    original = AmazonStateLanguageParser.parse

    def parse(definition: str) -> Any:
        try:
            document = json.loads(definition)
        except ValueError:
            return original(definition)  # moto reports the syntax error
        return original(json.dumps(document) if _floats_for_percentages(document) else definition)

    AmazonStateLanguageParser.parse = staticmethod(parse)


def _each_text_parsed_once() -> None:
    """moto parses the definition again for every execution and every Map child, and each
    JSONPath again every time a state reads one, which costs more than running them. Parsed
    programs and paths keep no execution's state (that lives in the execution's environment),
    so one parse serves every use of the same text."""
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.utils import json_path

    AmazonStateLanguageParser.parse = staticmethod(functools.lru_cache(maxsize=64)(AmazonStateLanguageParser.parse))
    json_path.parse = functools.lru_cache(maxsize=4096)(json_path.parse)
    result_path.parse = functools.lru_cache(maxsize=4096)(result_path.parse)


# --- the engine's AWS clients ---------------------------------------------------------------


def engine_endpoint(service: str) -> str:
    """Where the engine's client for ``service`` goes: Lambda to ``lambdaEndpoint`` when set,
    everything else (and Lambda by default) to the emulator itself."""
    if service == "lambda" and state.CONFIG["lambdaEndpoint"]:
        return state.CONFIG["lambdaEndpoint"]
    if state.SELF_URL:
        return state.SELF_URL
    from moto.settings import moto_server_port

    return f"http://127.0.0.1:{moto_server_port()}"


def _engine_clients_go_to_the_emulator() -> None:
    """moto's ``boto_client_for`` sends every engine call to ``localhost:$MOTO_PORT`` signed
    with access key ``ak``. Route it by service (``engine_endpoint``) and sign it with
    ``state-machine``. Every module that imported the function by name gets the new one."""
    import boto3
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    # One client per (Region, service, endpoint): botocore clients are thread-safe, and
    # building one costs more than the call it makes.
    clients: dict[tuple[str, str, str], Any] = {}
    clients_lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, engine_endpoint(service))
        with clients_lock:
            client = clients.get(key)
            if client is None:
                client = clients[key] = boto3.client(
                    service_name=service,
                    region_name=region,
                    endpoint_url=key[2],
                    aws_access_key_id=ENGINE_ACCESS_KEY,
                    aws_secret_access_key="state-machine-secret",
                    config=Config(
                        parameter_validation=False,
                        retries={"max_attempts": 0, "total_max_attempts": 1},
                        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        max_pool_connections=64,
                    ),
                )
        return client

    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for


# --- time overrides -------------------------------------------------------------------------


def _wait_seconds_override() -> None:
    """``stepFunctions.waitSeconds``: every Wait state (Seconds, SecondsPath, Timestamp,
    TimestampPath) waits exactly that long in real time. The state's own value is still
    evaluated first, so a bad path fails as it would."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    original = WaitFunction._eval_body

    def _eval_body(self: WaitFunction, env: Any) -> None:
        seconds = state.step_functions_seconds("waitSeconds")
        if seconds is None:
            return original(self, env)
        self._get_wait_seconds(env=env)
        deadline = time.monotonic() + seconds
        # The program_state_event is set when the execution stops; then waiting ends at once.
        while env.is_running() and (left := deadline - time.monotonic()) > 0:
            env.program_state_event.wait(left)

    WaitFunction._eval_body = _eval_body


class _RetryClock:
    """Stands in for the ``time`` module in moto's retrier: its only use there is
    ``time.sleep(interval)`` for the Retry pause, which ``stepFunctions.retrySeconds`` replaces
    (IntervalSeconds, BackoffRate, MaxDelaySeconds and JitterStrategy are then ignored; ErrorEquals
    and MaxAttempts still apply)."""

    @staticmethod
    def sleep(seconds: float) -> None:
        override = state.step_functions_seconds("retrySeconds")
        time.sleep(seconds if override is None else override)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _retry_seconds_override() -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    retrier_decl.time = _RetryClock()


# --- executions -------------------------------------------------------------------------------


def _unnamed_executions_get_a_uuid() -> None:
    """StartExecution without a name: AWS names the execution with a UUID; moto names every
    such execution ``None`` (so the second one is the first one, or ExecutionAlreadyExists)."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution


def _describe_execution_as_aws() -> None:
    """DescribeExecution also answers ``inputDetails``, ``redriveCount``, ``redriveStatus`` and
    ``redriveStatusReason`` on AWS (moto leaves them out; they show in a ``.sync`` result)."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    original = StepFunctionResponse.describe_execution

    def describe_execution(self: Any) -> Any:
        answer = original(self)
        result = answer.result if isinstance(answer, ActionResult) else None
        if isinstance(result, dict):
            status = result.get("status")
            result.setdefault("inputDetails", {"included": True})
            result.setdefault("redriveCount", 0)
            if status in ("RUNNING", "SUCCEEDED"):
                result.setdefault("redriveStatus", "NOT_REDRIVABLE")
                result.setdefault("redriveStatusReason", f"Execution is {status} and cannot be redriven")
            else:
                result.setdefault("redriveStatus", "REDRIVABLE")
        return answer

    StepFunctionResponse.describe_execution = describe_execution


# --- service integrations ---------------------------------------------------------------------


def _epoch_millis(value: Any) -> Any:
    """Every datetime in a response as epoch milliseconds, the form Step Functions' optimized
    integrations use (e.g. ``"StartDate": 1710868289157``)."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: _epoch_millis(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_epoch_millis(item) for item in value]
    return value


def _start_execution_speaks_aws() -> None:
    """``arn:aws:states:::states:startExecution[.sync[:2]]``. moto's copy of the engine lost
    LocalStack's request/response normalisation, so the PascalCase parameters never reach
    boto3 (``KeyError: 'StateMachineArn'`` → States.Runtime). As AWS: parameters map onto
    StartExecution's members; the result (StartExecution's, or with ``.sync``/``.sync:2`` the
    child's DescribeExecution) has PascalCase keys in alphabetical order and dates in epoch
    milliseconds, so DescribeExecution of the parent never meets a datetime."""
    import botocore.session
    from botocore import xform_name
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    model = botocore.session.get_session().get_service_model("stepfunctions")
    operations = {xform_name(name): model.operation_model(name) for name in model.operation_names}
    original_parameters = StateTaskServiceSfn._normalise_parameters

    def _normalise_parameters(self: Any, parameters: dict, boto_service_name: str | None = None, service_action_name: str | None = None) -> None:
        original_parameters(self, parameters, boto_service_name, service_action_name)
        operation = operations.get(self._get_boto_service_action(service_action_name))
        if operation is not None and operation.input_shape is not None:
            self._to_boto_request(parameters, operation.input_shape)

    def _normalise_response(self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None) -> None:
        operation = operations.get(self._get_boto_service_action(service_action_name))
        if not isinstance(response, dict) or operation is None or operation.output_shape is None:
            return
        self._from_boto_response(response, operation.output_shape)
        normalised = _epoch_millis(response)
        response.clear()
        response.update(sorted(normalised.items()))

    StateTaskServiceSfn._normalise_parameters = _normalise_parameters
    StateTaskServiceSfn._normalise_response = _normalise_response


def _failed_entry_cause_is_json() -> None:
    """A PutEvents answer with ``FailedEntryCount > 0`` fails the task with
    ``EventBridge.FailedEntry`` (moto does that); its cause is the answer as a JSON string
    (moto passes the dict itself, which history shows as a Python repr)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_events

    original = state_task_service_events.SfnFailedEntryCountException.__init__

    def __init__(self: Any, cause: dict | None) -> None:
        original(self, cause)
        self.cause = json.dumps(cause, separators=(",", ":"))

    state_task_service_events.SfnFailedEntryCountException.__init__ = __init__


def _iso_millis(moment: datetime) -> str:
    """``2025-01-09T18:13:01.189Z``: how Map Run result files write dates."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _iso_strings(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso_millis(value)
    if isinstance(value, dict):
        return {key: _iso_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_iso_strings(item) for item in value]
    return value


def _aws_sdk_timestamps_as_strings() -> None:
    """``arn:aws:states:::aws-sdk:*`` results keep boto3's datetime objects, and moto's
    DescribeExecution then answers HTTP 500 (``json.dumps`` of a datetime). Turn them into
    ISO 8601 strings with milliseconds (``2025-01-09T18:13:01.189Z``)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    original = StateTaskServiceAwsSdk._eval_service_task

    def _eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original(self, env, *args, **kwargs)
        env.stack.append(_iso_strings(env.stack.pop()))

    StateTaskServiceAwsSdk._eval_service_task = _eval_service_task


# --- Distributed Map --------------------------------------------------------------------------


def _map_run_children_are_recorded() -> None:
    """Each child of a Distributed Map runs as an execution of its own on AWS, named with a
    UUID (``…:execution:MACHINE/LABEL:UUID``), with ``$$.Execution.Id``/``Name``/``Input`` its
    own. moto runs the item processor in the parent's context and keeps nothing of it. Give
    each child its own Execution context and record it on the MapRunRecord
    (``ferry_children``: name, ARNs, input, output, status, error, cause, dates) for the
    tolerated-failure check and the ResultWriter files. DescribeMapRun's running count also
    drops for children that fail (moto's drops only for successes)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (
        DistributedItemProcessorWorker,
    )
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramEnded, ProgramError, ProgramStopped, ProgramTimedOut

    original_eval_input = DistributedItemProcessorWorker._eval_input
    original_eval_job = DistributedItemProcessorWorker._eval_job

    def _eval_input(self: Any, env_frame: Any) -> None:
        original_eval_input(self, env_frame)
        child = getattr(env_frame, "ferry_child", None)
        if child is not None:  # the child's input is the item after ItemSelector
            child["input"] = env_frame.states.get_input()
            env_frame.states.context_object.context_object_data["Execution"]["Input"] = child["input"]

    def _eval_job(self: Any, env: Any, job: Any) -> None:
        record = self._map_run_record
        name = str(uuid.uuid4())
        child: dict[str, Any] = {
            "index": job.job_index,
            "name": name,
            "stateMachineArn": record.map_state_machine_arn,
            "executionArn": record.map_state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + name,
            "input": job.job_input,
            "start": datetime.now(tz=timezone.utc),
        }
        context = env.states.context_object.context_object_data
        # A new dict: the parent's Execution context is shared with this frame.
        context["Execution"] = {**context["Execution"], "Id": child["executionArn"], "Name": name, "Input": job.job_input, "StartTime": _iso_millis(child["start"])}
        context["StateMachine"] = {"Id": record.map_state_machine_arn, "Name": record.map_state_machine_arn.rsplit(":", 1)[-1]}
        env.ferry_child = child
        try:
            original_eval_job(self, env, job)
        finally:
            ended = env.program_state()
            child["stop"] = datetime.now(tz=timezone.utc)
            if isinstance(ended, ProgramEnded):
                child["status"], child["output"] = "SUCCEEDED", job.job_output
            elif isinstance(ended, ProgramStopped):
                child["status"] = "ABORTED"
            elif isinstance(ended, ProgramTimedOut):
                child["status"], child["error"] = "TIMED_OUT", "States.Timeout"
            else:
                error = getattr(ended, "error", None) or {}
                child["status"] = "FAILED"
                child["error"] = error.get("error") or ("States.Runtime" if not isinstance(ended, ProgramError) else None)
                child["cause"] = error.get("cause")
            if child["status"] != "SUCCEEDED":  # moto takes only successes out of "running"
                record.execution_counter.running.offset(-1)
            with state.LOCK:
                record.__dict__.setdefault("ferry_children", []).append(child)

    DistributedItemProcessorWorker._eval_input = _eval_input
    DistributedItemProcessorWorker._eval_job = _eval_job


EXCEEDED_CAUSE = "The specified tolerated failure threshold was exceeded"


def threshold_exceeded(failed: int, total: int, count: int | None, percentage: float | None) -> bool:
    """AWS fails the Map Run when the failed children exceed either threshold the definition
    gives; with neither given, one failure is too many."""
    if count is None and percentage is None:
        return failed > 0
    return (count is not None and failed > count) or (percentage is not None and failed * 100 > percentage * total)


def _tolerated_failure_threshold() -> None:
    """moto ignores ToleratedFailureCount/Percentage (a failed child is a ``null`` result and
    the Map succeeds). As AWS: when the failed, timed-out or aborted children exceed the
    threshold the Map Run fails with ``States.ExceedToleratedFailureThreshold`` (MapRunFailed,
    then Retry/Catch on the Map state). Checked once every child has ended."""
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure import (
        ToleratedFailureCountDecl,
        ToleratedFailurePercentageDecl,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original_props = StateMap.from_state_props
    original_map_run = DistributedIterationComponent._map_run

    def from_state_props(self: Any, state_props: Any) -> None:
        original_props(self, state_props)
        # Which thresholds the definition gives (moto defaults both to 0 either way).
        self.iteration_component.ferry_thresholds_given = (
            state_props.get(ToleratedFailureCountDecl) is not None,
            state_props.get(ToleratedFailurePercentageDecl) is not None,
        )

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        record = eval_input.map_run_record
        original_map_run(self, env, eval_input)
        env.ferry_map_run_record = record  # for the ResultWriter (nested Map Runs share the pool)
        children = record.__dict__.get("ferry_children", [])
        failed = sum(1 for child in children if child["status"] != "SUCCEEDED")
        count_given, percentage_given = getattr(self, "ferry_thresholds_given", (False, False))
        count = record.tolerated_failure_count if count_given else None
        percentage = record.tolerated_failure_percentage if percentage_given else None
        if threshold_exceeded(failed, len(children), count, percentage):
            error = StatesErrorNameType.StatesExceedToleratedFailureThreshold.to_name()
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold),
                    event_type=HistoryEventType.MapRunFailed,
                    event_details=EventDetails(mapRunFailedEventDetails=MapRunFailedEventDetails(error=error, cause=EXCEEDED_CAUSE)),
                )
            )

    StateMap.from_state_props = from_state_props
    DistributedIterationComponent._map_run = _map_run


def result_file_entry(child: dict[str, Any]) -> dict[str, Any]:
    """One child in SUCCEEDED_n.json / FAILED_n.json, as AWS writes it (keys sorted)."""
    entry: dict[str, Any] = {
        "ExecutionArn": child["executionArn"],
        "Input": json.dumps(child["input"], separators=(",", ":")),
        "InputDetails": {"Included": True},
        "Name": child["name"],
        "OutputDetails": {"Included": True},
        "RedriveCount": 0,
        "StartDate": _iso_millis(child["start"]),
        "StateMachineArn": child["stateMachineArn"],
        "Status": child["status"],
        "StopDate": _iso_millis(child["stop"]),
    }
    if child["status"] == "SUCCEEDED":
        entry["Output"] = json.dumps(child.get("output"), separators=(",", ":"))
        entry["RedriveStatus"] = "NOT_REDRIVABLE"
        entry["RedriveStatusReason"] = "Execution is SUCCEEDED and cannot be redriven"
    else:
        entry["RedriveStatus"] = "REDRIVABLE_BY_MAP_RUN"
        if child.get("error") is not None:
            entry["Error"] = child["error"]
        if child.get("cause") is not None:
            entry["Cause"] = child["cause"]
    return dict(sorted(entry.items()))


def _result_writer_writes_result_files() -> None:
    """``ResultWriter`` with ``arn:aws:states:::s3:putObject``. moto evaluates its Parameters
    against the Map's result (not its input), writes only ``manifest.json`` with empty
    ``ResultFiles``, and takes the newest Map Run of the execution (a nested one, if any). As
    AWS: Parameters read the Map state's input; under ``PREFIX/MAP_RUN_UUID/`` it writes
    ``SUCCEEDED_0.json`` and ``FAILED_0.json`` (JSON arrays of ``result_file_entry``, by item
    index; a file only when it has entries) and ``manifest.json`` listing them with their
    Key and Size."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3 import (
        ResourceEvalS3,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.result_writer_decl import ResultWriter

    def _eval_body(self: Any, env: Any) -> None:
        # The stack holds [..., the Map's effective input, the Map's results].
        env.stack.append(env.stack[-2] if len(env.stack) >= 2 else env.states.get_input())
        self.parargs.eval(env=env)
        parameters = env.stack.pop()
        env.stack.pop()  # the input again; the results stay under the parameters
        env.stack.append(parameters)
        self.resource_eval.eval_resource(env=env)

    def _handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        parameters = env.stack.pop()
        env.stack.pop()  # the Map's results: the files carry each child's output
        s3 = ResourceEvalS3._get_s3_client(resource_runtime_part=resource_runtime_part, state_credentials=state_credentials)
        record = getattr(env, "ferry_map_run_record", None) or env.map_run_record_pool_manager.get_all()[-1]
        bucket, prefix = parameters["Bucket"], parameters.get("Prefix") or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        folder = prefix + record.map_run_arn.split(":")[-1] + "/"
        children = sorted(record.__dict__.get("ferry_children", []), key=lambda child: child["index"])
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for status in ("SUCCEEDED", "FAILED"):
            entries = [result_file_entry(c) for c in children if (c["status"] == "SUCCEEDED") == (status == "SUCCEEDED")]
            if entries:
                body = json.dumps(entries).encode()
                key = f"{folder}{status}_0.json"
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": record.map_run_arn, "ResultFiles": files}
        key = folder + "manifest.json"
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
        env.stack.append({"MapRunArn": record.map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": key}})

    ResultWriter._eval_body = _eval_body
    ResourceEvalS3._handle_put_object = staticmethod(_handle_put_object)


def lambda_invoke_error_name(ex: Exception) -> str | None:
    """AWS's name for a Lambda Invoke call that failed (not the function): the service's
    exception as `Lambda.<Code>` (`Lambda.ServiceException`, `Lambda.TooManyRequestsException`,
    ...), and `Lambda.SdkClientException` when no answer came (Step Functions developer guide,
    "Handling Lambda service exceptions"). None for anything else."""
    from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError

    if isinstance(ex, ClientError):
        code = ex.response.get("Error", {}).get("Code") or "AWSLambdaException"
        return f"Lambda.{code}"
    if isinstance(ex, (BotoConnectionError, HTTPClientError)):
        return "Lambda.SdkClientException"
    return None


def _lambda_invoke_failures_are_named_as_aws() -> None:
    """moto names every failed Invoke call `Exception`, which no Retry matches; AWS names it by
    the Lambda service exception."""
    from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = StateTaskLambda._from_error

    def _from_error(self: Any, env: Any, ex: Exception) -> Any:
        name = lambda_invoke_error_name(ex)
        if name is None:
            return original(self, env, ex)
        cause = str(ex)
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(name),
            event_type=HistoryEventType.LambdaFunctionFailed,
            event_details=EventDetails(
                lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(error=name, cause=cause)
            ),
        )

    StateTaskLambda._from_error = _from_error


# Seconds between a `.sync` task's looks at its child: 0.5 s at first (moto's fixed interval),
# growing by half each look up to this cap.
SYNC_POLL_CAP_SECONDS = 4.0


def sync_poll_delays() -> Any:
    """The pauses between a `.sync` task's looks at its child: 0.5, 0.75, 1.1, … up to the cap."""
    delay = 0.5
    while True:
        yield delay
        delay = min(delay * 1.5, SYNC_POLL_CAP_SECONDS)


def child_is_running(execution_arn: str) -> bool:
    """Whether the execution is still running, asked of the engine's backend in-process."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    parts = execution_arn.split(":")
    try:
        backend = stepfunctions_parser_backends[parts[4]][parts[3]]
        return str(backend.describe_execution(execution_arn).status) in ("RUNNING", "ExecutionStatus.RUNNING")
    except Exception:  # noqa: BLE001 - unknown: let the real DescribeExecution answer
        return False


def _sync_polls_back_off() -> None:
    """AWS completes `.sync` tasks from the child's own completion event; moto polls
    DescribeExecution over HTTP every 0.5 s per task, which with hundreds of replication
    executions in flight is hundreds of calls a second into this one process. Each look now
    waits longer than the one before (capped), asks the backend in-process whether the child
    still runs, and makes the real DescribeExecution call only once it has ended."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    def backing_off(build: Any) -> Any:
        def build_resolver(self: Any, env: Any, *args: Any, **kwargs: Any) -> Any:
            submitted = env.stack[-1] if env.stack else {}
            execution_arn = submitted.get("ExecutionArn") if isinstance(submitted, dict) else None
            resolver = build(self, env, *args, **kwargs)
            delays = sync_poll_delays()
            first = [True]

            def resolve() -> Any:
                if not first[0]:
                    # moto's loop has slept 0.5 s already.
                    time.sleep(max(0.0, next(delays) - 0.5))
                first[0] = False
                if execution_arn and child_is_running(execution_arn):
                    return None
                return resolver()

            return resolve

        return build_resolver

    StateTaskServiceSfn._build_sync_resolver = backing_off(StateTaskServiceSfn._build_sync_resolver)
    StateTaskServiceSfn._build_sync2_resolver = backing_off(StateTaskServiceSfn._build_sync2_resolver)
