"""Fast Snapshot Restore (row 8): moto answers NotImplemented for all three calls.

Each (snapshot, AZ) goes enabling -> optimizing (after fsrStepSeconds) -> enabled
(after 2 x fsrStepSeconds) on the emulator clock; disabling -> disabled after one step.
At most fsrQuotaPerRegion distinct snapshots may be enabling/optimizing/enabled per
Region. States are computed from timestamps whenever they are read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.ec2.responses import EC2Response

from .. import state
from .common import ec2_error

ACTIVE = {"enabling", "optimizing", "enabled"}
QUOTA_ERROR = "FastSnapshotRestoreLimitExceeded"
MAX_SNAPSHOTS_PER_CALL = 10
USER = "Client.UserInitiated"
LIFECYCLE = "Client.UserInitiated - Lifecycle state transition"


@dataclass
class FsrRecord:
    snapshot_id: str
    zone: str
    zone_id: str | None
    owner_id: str
    step: float
    enabling_at: float
    disabling_at: float | None = None

    def state(self, now: float) -> str:
        if self.disabling_at is not None:
            return "disabling" if now < self.disabling_at + self.step else "disabled"
        if now < self.enabling_at + self.step:
            return "enabling"
        if now < self.enabling_at + 2 * self.step:
            return "optimizing"
        return "enabled"

    def item(self, now: float) -> dict[str, Any]:
        current = self.state(now)
        item: dict[str, Any] = {
            "SnapshotId": self.snapshot_id,
            "AvailabilityZone": self.zone,
            "AvailabilityZoneId": self.zone_id,
            "State": current,
            "StateTransitionReason": USER if current in ("enabling", "disabling") else LIFECYCLE,
            "OwnerId": self.owner_id,
            "EnablingTime": state.now_dt(self.enabling_at),
        }
        reached_until = now if self.disabling_at is None else min(now, self.disabling_at)
        if self.enabling_at + self.step <= reached_until:
            item["OptimizingTime"] = state.now_dt(self.enabling_at + self.step)
        if self.enabling_at + 2 * self.step <= reached_until:
            item["EnabledTime"] = state.now_dt(self.enabling_at + 2 * self.step)
        if self.disabling_at is not None:
            item["DisablingTime"] = state.now_dt(self.disabling_at)
            if current == "disabled":
                item["DisabledTime"] = state.now_dt(self.disabling_at + self.step)
        return item


# (account, region) -> {(snapshot_id, zone): record}
RECORDS: dict[tuple[str, str], dict[tuple[str, str], FsrRecord]] = {}

_original_delete_snapshot = EBSBackend.delete_snapshot


def apply() -> None:
    EC2Response.enable_fast_snapshot_restores = enable_fast_snapshot_restores
    EC2Response.disable_fast_snapshot_restores = disable_fast_snapshot_restores
    EC2Response.describe_fast_snapshot_restores = describe_fast_snapshot_restores
    EBSBackend.delete_snapshot = delete_snapshot


def _records(backend: Any) -> dict[tuple[str, str], FsrRecord]:
    return RECORDS.setdefault((backend.account_id, backend.region_name), {})


def _error(snapshot_id: str, errors: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "SnapshotId": snapshot_id,
        "FastSnapshotRestoreStateErrors": [
            {"AvailabilityZone": zone, "Error": {"Code": code, "Message": message}}
            for zone, code, message in errors
        ],
    }


def _requested_zones(response: EC2Response, backend: Any) -> list[tuple[str, str | None, bool]]:
    """[(zone as requested, zone id, zone exists in this Region)]."""
    names = response._get_param("AvailabilityZones") or []
    ids = response._get_param("AvailabilityZoneIds") or []
    if names and ids:
        raise ec2_error(
            "InvalidParameterCombination",
            "Either AvailabilityZone or AvailabilityZoneId must be specified in the request, but not both.",
        )
    if not names and not ids:
        raise ec2_error("MissingParameter", "The request must contain the parameter AvailabilityZone")
    zones = backend.describe_availability_zones()
    by_name = {z.name: z.zone_id for z in zones}
    by_id = {z.zone_id: z.name for z in zones}
    if names:
        return [(n, by_name.get(n), n in by_name) for n in names]
    return [(by_id.get(i, i), i, i in by_id) for i in ids]


def _requested_snapshots(response: EC2Response) -> list[str]:
    snapshot_ids = response._get_param("SourceSnapshotIds") or []
    if not snapshot_ids:
        raise ec2_error("MissingParameter", "The request must contain the parameter SourceSnapshotId")
    if len(snapshot_ids) > MAX_SNAPSHOTS_PER_CALL:
        raise ec2_error(
            "InvalidRequest",
            f"Number of values of parameter SourceSnapshotIds must be less than or equal to {MAX_SNAPSHOTS_PER_CALL}.",
        )
    return list(dict.fromkeys(snapshot_ids))


def _zone_errors(snapshot_id: str, backend: Any, zones: list) -> list[tuple[str, str, str]]:
    if snapshot_id not in backend.snapshots:
        return [(z, "InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.") for z, _, _ in zones]
    return [
        (z, "InvalidParameterValue", f"Invalid availability zone: [{z}]") for z, _, ok in zones if not ok
    ]


def _request(response: EC2Response) -> tuple[Any, list[str], list[tuple[str, str | None, bool]]]:
    """(backend, snapshot ids, zones) of an Enable/DisableFastSnapshotRestores call."""
    response.error_on_dryrun()
    backend = response.ec2_backend
    return backend, _requested_snapshots(response), _requested_zones(response, backend)


def enable_fast_snapshot_restores(self: EC2Response) -> ActionResult:
    backend, snapshot_ids, zones = _request(self)
    successful, unsuccessful = [], []
    with state.LOCK:
        now = state.now()
        records = _records(backend)
        quota = state.CONFIG["fsrQuotaPerRegion"]
        for snapshot_id in snapshot_ids:
            errors = _zone_errors(snapshot_id, backend, zones)
            valid = [(z, zid) for z, zid, ok in zones if ok] if snapshot_id in backend.snapshots else []
            active = {r.snapshot_id for r in records.values() if r.state(now) in ACTIVE}
            if valid and snapshot_id not in active and len(active) >= quota:
                errors += [
                    (
                        z,
                        QUOTA_ERROR,
                        f"You can enable fast snapshot restores for at most {quota} snapshots per "
                        f"Region; {len(active)} snapshots already have it enabled in {backend.region_name}.",
                    )
                    for z, _ in valid
                ]
                valid = []
            for zone, zone_id in valid:
                record = records.get((snapshot_id, zone))
                if record is None or record.state(now) not in ACTIVE:
                    record = FsrRecord(
                        snapshot_id,
                        zone,
                        zone_id,
                        backend.snapshots[snapshot_id].owner_id,
                        step=state.CONFIG["fsrStepSeconds"],
                        enabling_at=now,
                    )
                    records[(snapshot_id, zone)] = record
                successful.append(record.item(now))
            if errors:
                unsuccessful.append(_error(snapshot_id, errors))
    return ActionResult({"Successful": successful, "Unsuccessful": unsuccessful})


def disable_fast_snapshot_restores(self: EC2Response) -> ActionResult:
    backend, snapshot_ids, zones = _request(self)
    successful, unsuccessful = [], []
    with state.LOCK:
        now = state.now()
        records = _records(backend)
        for snapshot_id in snapshot_ids:
            errors = _zone_errors(snapshot_id, backend, zones)
            if snapshot_id in backend.snapshots:
                for zone, zone_id, ok in zones:
                    if not ok:
                        continue
                    record = records.get((snapshot_id, zone))
                    if record is None:
                        successful.append(
                            {
                                "SnapshotId": snapshot_id,
                                "AvailabilityZone": zone,
                                "AvailabilityZoneId": zone_id,
                                "State": "disabled",
                                "OwnerId": backend.snapshots[snapshot_id].owner_id,
                            }
                        )
                        continue
                    if record.state(now) in ACTIVE:
                        record.disabling_at = now
                        record.step = state.CONFIG["fsrStepSeconds"]
                    successful.append(record.item(now))
            if errors:
                unsuccessful.append(_error(snapshot_id, errors))
    return ActionResult({"Successful": successful, "Unsuccessful": unsuccessful})


_FILTERS = {
    "snapshot-id": lambda item: item["SnapshotId"],
    "availability-zone": lambda item: item["AvailabilityZone"],
    "state": lambda item: item["State"],
    "owner-id": lambda item: item["OwnerId"],
}


def describe_fast_snapshot_restores(self: EC2Response) -> ActionResult:
    self.error_on_dryrun()
    filters = self._filters_from_querystring()
    for name in filters:
        if name not in _FILTERS:
            raise ec2_error("InvalidParameterValue", f"The filter '{name}' is invalid")
    with state.LOCK:
        now = state.now()
        items = [record.item(now) for record in _records(self.ec2_backend).values()]
    for name, values in filters.items():
        items = [item for item in items if _FILTERS[name](item) in values]
    return ActionResult({"FastSnapshotRestores": items})


@functools.wraps(_original_delete_snapshot)
def delete_snapshot(self: EBSBackend, snapshot_id: str) -> Any:
    """AWS refuses to delete a snapshot while FSR is on in any AZ."""
    with state.LOCK:
        now = state.now()
        records = _records(self)
        busy = sorted(
            r.zone for r in records.values() if r.snapshot_id == snapshot_id and r.state(now) != "disabled"
        )
        if busy:
            raise ec2_error(
                "InvalidSnapshot.InUse",
                f"The snapshot {snapshot_id} is currently enabled for fast restores in {', '.join(busy)}. "
                "Fast snapshot restores must be disabled within all Availability Zones before the "
                "snapshot may be deleted.",
            )
        deleted = _original_delete_snapshot(self, snapshot_id)
        for key in [k for k in records if k[0] == snapshot_id]:
            del records[key]
        return deleted
