"""Process-wide emulator state: tunables, the emulator clock and what was received.

Everything here is guarded by ``LOCK`` (an RLock: patched moto code that holds it
may call helpers that take it again).
"""

from __future__ import annotations

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
}
_CONFIG_TYPES = {"copySeconds": float, "fsrStepSeconds": float, "fsrQuotaPerRegion": int}

_offset_seconds = 0.0

# Every AWS API call and every EventBridge PutEvents entry received, in order.
CALLS: list[dict[str, Any]] = []
EVENTS: list[dict[str, Any]] = []


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
    with LOCK:
        new = dict(CONFIG)
        for key, value in partial.items():
            if key == "throttle":
                new[key] = _throttle_config(value)
                continue
            if key not in _CONFIG_TYPES:
                raise ValueError(f"unknown config key {key!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number")
            if value < 0:
                raise ValueError(f"{key} must be >= 0")
            new[key] = _CONFIG_TYPES[key](value)
        CONFIG.update(new)
        return dict(CONFIG)


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


def record_call(call: dict[str, Any]) -> None:
    with LOCK:
        CALLS.append(call)


def record_events(entries: list[dict[str, Any]]) -> None:
    with LOCK:
        EVENTS.extend(entries)
