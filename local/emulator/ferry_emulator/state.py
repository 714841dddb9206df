"""Process-wide emulator state: tunables, the emulator clock and what was received.

Everything here is guarded by ``LOCK`` (an RLock: patched moto code that holds it
may call helpers that take it again).
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone
from typing import Any

LOCK = threading.RLock()

# Tunables, changed through POST /_ferry/config.
CONFIG: dict[str, Any] = {
    "copySeconds": 2.0,
    "fsrStepSeconds": 2.0,
    "fsrQuotaPerRegion": 5,
    # The next `times` calls of these actions are throttled (see take_throttle).
    "throttle": {"actions": [], "times": 0},
    # Random faults on EC2 and KMS calls (see draw_fault), drawn from one seeded RNG.
    "seed": 0,
    "throttleFraction": 0.0,
    "serverErrorFraction": 0.0,
    "delaySeconds": 0.0,
    # Snapshot copies in flight per destination Region; None: no limit (see copy_admitted).
    "copyQuotaPerRegion": None,
    # The next `count` copies end failed/error with this code and message (see take_copy_failure).
    "failNextCopies": {"count": 0, "code": "Server.InternalError", "message": "An internal error has occurred", "region": None},
    # Where the Step Functions engine sends Lambda calls; None: the emulator itself.
    "lambdaEndpoint": None,
    # Real-time lengths of every Wait state and every Retry pause; None: the definition's own.
    "stepFunctions": {"waitSeconds": None, "retrySeconds": None},
    # The next N PutEvents calls answer every entry failed (see take_put_events_failure).
    "failPutEvents": 0,
    # Each copy started while this is N > 0 is hidden from its first N describes (EC2's
    # eventual consistency: a just-created id answers NotFound; see patches/copies.py).
    "hideNewCopies": 0,
    # Instances: pending for instanceBootSeconds, then running; status checks initializing for
    # statusCheckSeconds after that; shutting-down for instanceShutdownSeconds (patches/instances.py).
    "instanceBootSeconds": 2.0,
    "statusCheckSeconds": 2.0,
    "instanceShutdownSeconds": 2.0,
    # The next `times` instances launched (and those named) fail their status checks: `check`
    # ("instance" or "system") goes impaired instead of ok (see take_impaired_launch).
    "impairStatusChecks": {"times": 0, "instanceIds": [], "check": "instance"},
    # The next `times` instances launched (in `region`, when given) get their volumes (only
    # `deviceName`'s, when given) under `kmsKeyId` instead (see take_launch_volume_key).
    "launchVolumeKey": {"kmsKeyId": None, "times": 0, "region": None, "deviceName": None},
}
_CONFIG_TYPES = {
    "copySeconds": float,
    "fsrStepSeconds": float,
    "fsrQuotaPerRegion": int,
    "delaySeconds": float,
    "instanceBootSeconds": float,
    "statusCheckSeconds": float,
    "instanceShutdownSeconds": float,
}
_FRACTIONS = ("throttleFraction", "serverErrorFraction")
# Services whose calls the random faults apply to (SigV4 signing names).
FAULT_SERVICES = ("ec2", "kms")

RNG = random.Random(0)

_offset_seconds = 0.0

# The emulator's own base URL (http://127.0.0.1:PORT), set by server.py once it is bound.
SELF_URL: str | None = None

# Every AWS API call and every EventBridge PutEvents entry received, in order.
CALLS: list[dict[str, Any]] = []
EVENTS: list[dict[str, Any]] = []

# What the fault switches did, for GET /_ferry/stats.
STATS: dict[str, Any] = {
    "throttled": {},  # service -> answers
    "serverErrors": {},  # service -> answers
    "delayed": 0,
    "resourceLimitExceeded": {},  # Region -> refused copies
    "peakCopiesInFlight": {},  # Region -> snapshot copies
    "failedCopies": 0,
    "hiddenDescribes": 0,
    "impairedInstances": 0,
    "rekeyedLaunches": 0,
    "rejectedImageParameters": 0,
}
# Region -> snapshot copies in flight now (kept by patches/copies.py).
IN_FLIGHT: dict[str, int] = {}


def now() -> float:
    """Emulator time (epoch seconds): real time plus what /_ferry/advance added."""
    return time.time() + _offset_seconds


def now_dt(at: float | None = None) -> datetime:
    """Emulator time as a naive UTC datetime, the form moto's models use."""
    ts = now() if at is None else at
    return datetime.fromtimestamp(ts, tz=timezone.utc).replace(tzinfo=None)


def advance(seconds: float) -> float:
    global _offset_seconds
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
    with LOCK:
        _offset_seconds += seconds
        return _offset_seconds


def offset() -> float:
    return _offset_seconds


def update_config(partial: dict[str, Any]) -> dict[str, Any]:
    """Apply a partial config; unknown keys or bad values raise ValueError."""
    global RNG
    with LOCK:
        new = dict(CONFIG)
        for key, value in partial.items():
            if key == "throttle":
                new[key] = _throttle_config(value)
                continue
            if key == "seed":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError("seed must be an integer")
                new[key] = value
                continue
            if key in _FRACTIONS:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise ValueError(f"{key} must be a number from 0 to 1")
                new[key] = float(value)
                continue
            if key == "copyQuotaPerRegion":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                    raise ValueError("copyQuotaPerRegion must be an integer >= 1, or null for no limit")
                new[key] = value
                continue
            if key == "failNextCopies":
                new[key] = _fail_copies_config(value)
                continue
            if key == "lambdaEndpoint":
                new[key] = _endpoint_config(value)
                continue
            if key == "stepFunctions":
                new[key] = _step_functions_config(value)
                continue
            if key == "impairStatusChecks":
                new[key] = _impair_config(value)
                continue
            if key == "launchVolumeKey":
                new[key] = _launch_volume_key_config(value)
                continue
            if key in ("failPutEvents", "hideNewCopies"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{key} must be an integer >= 0")
                new[key] = value
                continue
            if key not in _CONFIG_TYPES:
                raise ValueError(f"unknown config key {key!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number")
            if value < 0:
                raise ValueError(f"{key} must be >= 0")
            new[key] = _CONFIG_TYPES[key](value)
        if new["throttleFraction"] + new["serverErrorFraction"] > 1:
            raise ValueError("throttleFraction + serverErrorFraction must be <= 1")
        if "seed" in partial:
            RNG = random.Random(new["seed"])
        CONFIG.update(new)
        return dict(CONFIG)


def _fail_copies_config(value: Any) -> dict[str, Any]:
    """``{"count": N, "message": str, "code": str, "region": str | None}``: the next N copies
    (to ``region`` only, when given) end failed/error."""
    if not isinstance(value, dict) or set(value) - {"count", "message", "code", "region"}:
        raise ValueError('failNextCopies must be {"count": int, "message": str, "code": str, "region": str}')
    count = value.get("count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError("failNextCopies.count must be an integer >= 0")
    current = CONFIG["failNextCopies"]
    message, code = value.get("message", current["message"]), value.get("code", current["code"])
    if not isinstance(message, str) or not message or not isinstance(code, str) or not code:
        raise ValueError("failNextCopies.message and failNextCopies.code must be non-empty strings")
    region = value.get("region")
    if region is not None and (not isinstance(region, str) or not region):
        raise ValueError("failNextCopies.region must be a Region name")
    return {"count": count, "code": code, "message": message, "region": region}


def _times(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0")
    return value


def _impair_config(value: Any) -> dict[str, Any]:
    """``{"times": N, "instanceIds": [ids], "check": "instance" | "system"}``, partial: the next
    N instances launched, and the instances named, fail that status check."""
    if not isinstance(value, dict) or set(value) - {"times", "instanceIds", "check"}:
        raise ValueError('impairStatusChecks must be {"times": int, "instanceIds": [ids], "check": "instance" | "system"}')
    merged = {**CONFIG["impairStatusChecks"], **value}
    merged["times"] = _times(merged["times"], "impairStatusChecks.times")
    ids = merged["instanceIds"]
    if not isinstance(ids, list) or not all(isinstance(i, str) and i.startswith("i-") for i in ids):
        raise ValueError("impairStatusChecks.instanceIds must be a list of instance ids")
    if merged["check"] not in ("instance", "system"):
        raise ValueError('impairStatusChecks.check must be "instance" or "system"')
    return {"times": merged["times"], "instanceIds": list(ids), "check": merged["check"]}


def _launch_volume_key_config(value: Any) -> dict[str, Any]:
    """``{"kmsKeyId": str, "times": N, "region": str | None, "deviceName": str | None}``."""
    keys = {"kmsKeyId", "times", "region", "deviceName"}
    if not isinstance(value, dict) or set(value) - keys:
        raise ValueError('launchVolumeKey must be {"kmsKeyId": str, "times": int, "region": str, "deviceName": str}')
    times = _times(value.get("times", 1), "launchVolumeKey.times")
    key = value.get("kmsKeyId")
    if times and (not isinstance(key, str) or not key):
        raise ValueError("launchVolumeKey.kmsKeyId must be a key id, alias or ARN")
    for optional in ("region", "deviceName"):
        if value.get(optional) is not None and (not isinstance(value[optional], str) or not value[optional]):
            raise ValueError(f"launchVolumeKey.{optional} must be a non-empty string or null")
    return {"kmsKeyId": key, "times": times, "region": value.get("region"), "deviceName": value.get("deviceName")}


def take_impaired_launch() -> str | None:
    """The status check (``"instance"`` or ``"system"``) an instance launched now fails, if it
    is one of the next ``impairStatusChecks.times``."""
    with LOCK:
        impair = CONFIG["impairStatusChecks"]
        if impair["times"] <= 0:
            return None
        CONFIG["impairStatusChecks"] = {**impair, "times": impair["times"] - 1}
        STATS["impairedInstances"] += 1
        return impair["check"]


def impaired_check(instance_id: str) -> str | None:
    """The status check an instance named in ``impairStatusChecks.instanceIds`` fails."""
    impair = CONFIG["impairStatusChecks"]
    return impair["check"] if instance_id in impair["instanceIds"] else None


def take_launch_volume_key(region: str) -> tuple[str, str | None] | None:
    """``(kmsKeyId, deviceName or None)`` if the instance launched now in ``region`` is one of
    the next ``launchVolumeKey.times``."""
    with LOCK:
        rekey = CONFIG["launchVolumeKey"]
        if rekey["times"] <= 0 or rekey["region"] not in (None, region):
            return None
        CONFIG["launchVolumeKey"] = {**rekey, "times": rekey["times"] - 1}
        STATS["rekeyedLaunches"] += 1
        return rekey["kmsKeyId"], rekey["deviceName"]


def count_rejected_image_parameter() -> None:
    """An ``aws:ec2:image`` PutParameter whose value failed validation (patches/ssm.py)."""
    with LOCK:
        STATS["rejectedImageParameters"] += 1


def _endpoint_config(value: Any) -> str | None:
    """``"http://HOST:PORT"`` or None (the emulator itself)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError("lambdaEndpoint must be an http:// or https:// URL, or null")
    return value.rstrip("/")


def _step_functions_config(value: Any) -> dict[str, float | None]:
    """``{"waitSeconds": float | None, "retrySeconds": float | None}``, partial: a key left out
    keeps its value."""
    if not isinstance(value, dict) or set(value) - {"waitSeconds", "retrySeconds"}:
        raise ValueError('stepFunctions must be {"waitSeconds": number | null, "retrySeconds": number | null}')
    merged = dict(CONFIG["stepFunctions"])
    for key, seconds in value.items():
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0):
            raise ValueError(f"stepFunctions.{key} must be a number >= 0, or null")
        merged[key] = None if seconds is None else float(seconds)
    return merged


def step_functions_seconds(key: str) -> float | None:
    """``waitSeconds`` or ``retrySeconds`` as configured now (None: the definition's own)."""
    return CONFIG["stepFunctions"][key]


def take_put_events_failure() -> bool:
    """Whether this PutEvents call is one of the next ``failPutEvents`` (each uses one up)."""
    with LOCK:
        if CONFIG["failPutEvents"] <= 0:
            return False
        CONFIG["failPutEvents"] -= 1
        return True


def _throttle_config(value: Any) -> dict[str, Any]:
    """``{"actions": [names], "times": N}``: the next N calls of those actions are throttled."""
    if not isinstance(value, dict) or set(value) - {"actions", "times"}:
        raise ValueError('throttle must be {"actions": [action names], "times": int}')
    actions, times = value.get("actions", []), value.get("times", 0)
    if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
        raise ValueError("throttle.actions must be a list of action names")
    if isinstance(times, bool) or not isinstance(times, int) or times < 0:
        raise ValueError("throttle.times must be an integer >= 0")
    return {"actions": list(actions), "times": times}


def take_throttle(action: str | None) -> bool:
    """Whether this call of ``action`` is throttled; each throttled call uses up one of ``times``."""
    with LOCK:
        throttle = CONFIG["throttle"]
        if action is None or action not in throttle["actions"] or throttle["times"] <= 0:
            return False
        CONFIG["throttle"] = {**throttle, "times": throttle["times"] - 1}
        return True


def draw_fault(service: str | None) -> tuple[str | None, float]:
    """The random fault for one call of ``service``: ``("throttle" | "serverError" | None,
    delay in seconds)``. Only EC2 and KMS calls are faulted; each call draws from the seeded RNG."""
    if service not in FAULT_SERVICES:
        return None, 0.0
    with LOCK:
        throttle, server = CONFIG["throttleFraction"], CONFIG["serverErrorFraction"]
        delay = CONFIG["delaySeconds"]
        fault = None
        if throttle or server:
            draw = RNG.random()
            fault = "throttle" if draw < throttle else "serverError" if draw < throttle + server else None
        if fault is not None:
            counts = STATS["throttled" if fault == "throttle" else "serverErrors"]
            counts[service] = counts.get(service, 0) + 1
        if delay > 0:
            STATS["delayed"] += 1
        return fault, delay


def count_throttled(service: str | None) -> None:
    """A call throttled by the ``throttle`` switch (counted in the stats as well)."""
    with LOCK:
        key = service or "unknown"
        STATS["throttled"][key] = STATS["throttled"].get(key, 0) + 1


def server_error_kind() -> int:
    """500 or 503, drawn from the seeded RNG."""
    with LOCK:
        return 500 if RNG.random() < 0.5 else 503


def copy_admitted(region: str, snapshots: int) -> int | None:
    """Call under LOCK before a copy starts: None if ``snapshots`` more copies fit in the
    Region's quota (they are then counted in flight), else the quota that refused them."""
    quota = CONFIG["copyQuotaPerRegion"]
    in_flight = IN_FLIGHT.get(region, 0)
    if quota is not None and in_flight + snapshots > quota:
        STATS["resourceLimitExceeded"][region] = STATS["resourceLimitExceeded"].get(region, 0) + 1
        return quota
    IN_FLIGHT[region] = in_flight + snapshots
    STATS["peakCopiesInFlight"][region] = max(STATS["peakCopiesInFlight"].get(region, 0), IN_FLIGHT[region])
    return None


def copies_settled(region: str, snapshots: int) -> None:
    """Copies that completed or failed stop counting against the quota."""
    with LOCK:
        IN_FLIGHT[region] = max(0, IN_FLIGHT.get(region, 0) - snapshots)


def take_copy_failure(region: str) -> tuple[str, str] | None:
    """``(code, message)`` if the copy starting now in ``region`` is one of the next ``failNextCopies``."""
    with LOCK:
        fail = CONFIG["failNextCopies"]
        if fail["count"] <= 0 or fail["region"] not in (None, region):
            return None
        CONFIG["failNextCopies"] = {**fail, "count": fail["count"] - 1}
        STATS["failedCopies"] += 1
        return fail["code"], fail["message"]


# Copy id -> describes it is still hidden from (hideNewCopies; kept by patches/copies.py).
HIDDEN: dict[str, int] = {}


def hide_new_copy(resource_id: str) -> None:
    """Call when a copy starts: hide it from its first ``hideNewCopies`` describes."""
    with LOCK:
        if CONFIG["hideNewCopies"] > 0:
            HIDDEN[resource_id] = CONFIG["hideNewCopies"]


def take_hidden(resource_ids: list[str]) -> set[str]:
    """Which of ``resource_ids`` (what one describe would answer) it must not see; each hidden
    one uses up one of its describes."""
    with LOCK:
        hidden = {r for r in resource_ids if HIDDEN.get(r, 0) > 0}
        for resource_id in hidden:
            HIDDEN[resource_id] -= 1
            STATS["hiddenDescribes"] += 1
        return hidden


def stats() -> dict[str, Any]:
    with LOCK:
        return {
            "peakCopiesInFlight": dict(STATS["peakCopiesInFlight"]),
            "copiesInFlight": {region: n for region, n in IN_FLIGHT.items()},
            "resourceLimitExceeded": dict(STATS["resourceLimitExceeded"]),
            "throttled": dict(STATS["throttled"]),
            "serverErrors": dict(STATS["serverErrors"]),
            "delayed": STATS["delayed"],
            "failedCopies": STATS["failedCopies"],
            "hiddenDescribes": STATS["hiddenDescribes"],
            "impairedInstances": STATS["impairedInstances"],
            "rekeyedLaunches": STATS["rekeyedLaunches"],
            "rejectedImageParameters": STATS["rejectedImageParameters"],
        }


def record_call(call: dict[str, Any]) -> None:
    with LOCK:
        CALLS.append(call)


def record_events(entries: list[dict[str, Any]]) -> None:
    with LOCK:
        EVENTS.extend(entries)
