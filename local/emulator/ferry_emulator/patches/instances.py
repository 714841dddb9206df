"""RunInstances from an AMI's own mappings, and instance states on the emulator clock (row 13).

moto ignores the AMI's block device mappings (every instance gets one unencrypted 8 GiB
/dev/sda1, or only the request's mappings) and refuses an override that names neither a size
nor a snapshot; its instances are ``running`` with status checks ``ok`` at once, and
TerminateInstances ends them at once. Here:

- Volumes come from the AMI's mappings, overridden per device by the launch template's and then
  the request's (EC2 user guide, "Block device mappings": a mapping in the launch request
  overrides the AMI's for the same device). EBS encryption outcomes (EBS user guide, "Amazon
  EBS encryption"): a volume restored from an encrypted snapshot is encrypted with the
  snapshot's key unless the mapping names another KmsKeyId; encryption can never be removed;
  ``Encrypted=true`` on an unencrypted snapshot uses the KmsKeyId, else the default EBS key;
  KmsKeyId needs ``Encrypted=true``.
- An instance is ``pending`` for ``instanceBootSeconds``, then ``running``. Its status checks
  are ``initializing`` for ``statusCheckSeconds`` after that, then ``ok`` (or ``impaired``
  under the ``impairStatusChecks`` switch). If a volume's KMS key is unusable when it boots
  (missing, disabled, pending deletion), it goes ``terminated`` instead, with StateReason
  ``Client.InvalidKMSKey.InvalidState`` (EC2 troubleshooting, "Instance terminates
  immediately": "The KMS key provided is in an incorrect state").
- TerminateInstances: ``shutting-down`` for ``instanceShutdownSeconds``, then ``terminated``,
  when the volumes marked DeleteOnTermination are deleted.
- ``launchVolumeKey`` puts the volumes of the next launched instances under another key.
- ``ClientToken`` (EC2 developer guide, "Ensuring idempotency in Amazon EC2 API requests"): a
  repeat with the same token and parameters launches nothing and answers the first call's
  reservation (same ReservationId and InstanceIds, in their current state, terminated included);
  the same token with other parameters → ``IdempotentParameterMismatch``; a token is at most 64
  ASCII characters (else ``InvalidParameterValue``). moto only stores the token on the instance.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidAMIIdError
from moto.ec2.models.instances import Instance, InstanceBackend, InstanceState, StateReason
from moto.ec2.responses.instances import InstanceResponse

from .. import state
from .common import (
    client_params,
    ec2_error,
    invalid_value,
    key_problem,
    require_encrypted_for_key,
    resolve_key_arn,
)

_original_run_instances = InstanceBackend.run_instances
_original_run_instances_response = InstanceResponse.run_instances
_original_terminate = Instance.terminate
_original_instance_status = Instance.instance_status
_original_system_status = Instance.system_status

KMS_FAILURE_CODE = "Client.InvalidKMSKey.InvalidState"
KMS_FAILURE_MESSAGE = "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state"


@dataclass
class Timer:
    due: float
    kind: str  # "boot" or "terminate"
    instance: Instance


TIMERS: list[Timer] = []
# (account, region, ClientToken) -> (request fingerprint, ReservationId)
CLIENT_TOKENS: dict[tuple[str, str, str], tuple[str, str]] = {}
MAX_CLIENT_TOKEN_LEN = 64
RUN_INSTANCES_STATE_PATH = "RunInstances.Reservation.Instances.Instance.State"


def apply() -> None:
    InstanceResponse._parse_block_device_mapping = _raw_block_device_mappings
    InstanceBackend.run_instances = run_instances
    InstanceResponse.run_instances = run_instances_once
    Instance.terminate = terminate
    Instance.instance_status = property(lambda self: _status(self, "instance"))
    Instance.system_status = property(lambda self: _status(self, "system"))


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


# --- block device mappings ---------------------------------------------------------------


def _raw_block_device_mappings(self: InstanceResponse) -> list[dict[str, Any]]:
    """The request's mappings as given: an override may name only Encrypted/KmsKeyId (or
    DeleteOnTermination, VolumeSize, ...) of a device the AMI maps."""
    mappings = []
    for mapping in self._get_param("BlockDeviceMappings", []):
        if "NoDevice" in mapping and mapping["NoDevice"] not in ("", None):
            raise ec2_error("InvalidRequest", "NoDevice must be an empty string.")
        mappings.append(mapping)
    return mappings


def _merged_mappings(ami_mappings: list[dict], *overrides: list[dict]) -> list[dict[str, Any]]:
    """The AMI's EBS mappings overridden per DeviceName by each layer in turn; a layer's
    ``NoDevice`` drops the device. Each result's Ebs holds the merged fields, plus
    ``_encrypt``/``_key``: what the overrides asked for (the AMI's ``Encrypted`` only reports
    its snapshot's)."""
    devices: dict[str, dict[str, Any] | None] = {}
    for m in ami_mappings:
        if m.get("Ebs") is not None:
            devices[m["DeviceName"]] = {"DeviceName": m["DeviceName"], "Ebs": dict(m["Ebs"])}
    for layer in overrides:
        for m in layer or []:
            device = m.get("DeviceName")
            if "NoDevice" in m and m["NoDevice"] is not None:
                devices[device] = None
                continue
            ebs = m.get("Ebs")
            if ebs is None:  # an instance store volume: no EBS volume to create
                devices[device] = None
                continue
            given = {k: v for k, v in ebs.items() if v is not None}
            require_encrypted_for_key(given.get("KmsKeyId"), _flag(given.get("Encrypted")))
            merged = dict((devices.get(device) or {}).get("Ebs") or {})
            merged.update(given)
            if "Encrypted" in given:
                merged["_encrypt"] = merged.get("_encrypt") or _flag(given["Encrypted"])
            if "KmsKeyId" in given:
                merged["_key"] = given["KmsKeyId"]
            devices[device] = {"DeviceName": device, "Ebs": merged}
    return [m for m in devices.values() if m is not None]


def _volume_spec(backend: Any, mapping: dict[str, Any]) -> dict[str, Any]:
    """What moto's RunInstances loop needs to create one volume, encrypted as AWS would."""
    ebs = mapping["Ebs"]
    snapshot_id = ebs.get("SnapshotId")
    snap = backend.snapshots.get(snapshot_id) if snapshot_id else None
    if snapshot_id and snap is None:
        raise ec2_error("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")
    if not ebs.get("VolumeSize") and snap is None:
        raise ec2_error("MissingParameter", "The request must contain the parameter size or snapshotId")
    key = ebs.get("_key")
    if key:  # the mapping names a key: the volume is under it (a snapshot's key or none before)
        encrypted = True
    elif snap is not None and snap.encrypted:  # the snapshot's key (create_volume keeps it)
        encrypted = True
    else:  # Encrypted=true on a blank or unencrypted source: the default EBS key
        encrypted = bool(ebs.get("_encrypt"))
    return {
        "DeviceName": mapping["DeviceName"],
        "Ebs": {
            "SnapshotId": snapshot_id,
            "VolumeSize": ebs.get("VolumeSize"),
            "VolumeType": ebs.get("VolumeType"),
            "Encrypted": encrypted,
            "KmsKeyId": key,
            "DeleteOnTermination": _flag(ebs.get("DeleteOnTermination", True)),
        },
    }


# --- RunInstances -------------------------------------------------------------------------


def run_instances_once(self: InstanceResponse) -> ActionResult:
    """RunInstances with ``ClientToken`` idempotency: a repeat answers the first reservation."""
    token = self._get_param("ClientToken")
    if token is not None and (len(token) > MAX_CLIENT_TOKEN_LEN or not token.isascii()):
        raise invalid_value(
            f"Value ({token}) for parameter clientToken is invalid. "
            f"A client token is a case-sensitive string of up to {MAX_CLIENT_TOKEN_LEN} ASCII characters."
        )
    if not token:
        return _original_run_instances_response(self)
    backend = self.ec2_backend
    key = (backend.account_id, backend.region_name, token)
    with state.LOCK:
        fingerprint = client_params(self.params)
        if key in CLIENT_TOKENS:
            seen_fingerprint, reservation_id = CLIENT_TOKENS[key]
            if seen_fingerprint != fingerprint:
                raise ec2_error(
                    "IdempotentParameterMismatch",
                    "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
                )
            self.error_on_dryrun()
            # moto renders every RunInstances instance as pending; a repeat reports the
            # instances' current state, as AWS does (this response object only).
            self.RESPONSE_KEY_PATH_TO_TRANSFORMER = {
                path: transform
                for path, transform in self.RESPONSE_KEY_PATH_TO_TRANSFORMER.items()
                if path != RUN_INSTANCES_STATE_PATH
            }
            return ActionResult(backend.reservations[reservation_id])
        answer = _original_run_instances_response(self)
        CLIENT_TOKENS[key] = (fingerprint, answer.result.id)
    return answer


def run_instances(
    self: InstanceBackend, image_id: str, count: int, user_data: Any, security_group_names: list[str], **kwargs: Any
) -> Any:
    template_mappings: list[dict] = []
    if kwargs.get("launch_template"):
        version = self._get_template_from_args(kwargs["launch_template"])
        image_id = image_id or version.image_id
        template_mappings = version.data.get("BlockDeviceMappings") or []
    if not image_id:
        raise ec2_error("MissingParameter", "The request must contain the parameter ImageId")
    images = self.describe_images(ami_ids=[image_id])
    if not images:  # deregistered
        raise InvalidAMIIdError(image_id)
    request_mappings = kwargs.pop("block_device_mappings", None) or []
    with state.LOCK:
        merged = _merged_mappings(images[0].block_device_mappings, template_mappings, request_mappings)
        specs = [_volume_spec(self, m) for m in merged]
        if specs:
            kwargs["block_device_mappings"] = specs
        reservation = _original_run_instances(self, image_id, count, user_data, security_group_names, **kwargs)
        now = state.now()
        boot = state.CONFIG["instanceBootSeconds"]
        for instance in reservation.instances:
            instance._state = InstanceState("pending", 0)
            instance.launch_time = state.now_dt(now)
            instance._ferry_check_seconds = state.CONFIG["statusCheckSeconds"]
            instance._ferry_impaired = state.take_impaired_launch()
            _apply_launch_volume_key(self, instance)
            TIMERS.append(Timer(due=now + boot, kind="boot", instance=instance))
    return reservation


def _apply_launch_volume_key(backend: Any, instance: Instance) -> None:
    """The ``launchVolumeKey`` switch: this instance's volumes come up under another key."""
    rekey = state.take_launch_volume_key(backend.region_name)
    if rekey is None:
        return
    key_ref, device = rekey
    key_arn = resolve_key_arn(backend.account_id, backend.region_name, key_ref)
    for device_name, block in instance.get_block_device_mapping:
        volume = backend.volumes.get(block.volume_id)
        if volume is not None and device in (None, device_name):
            volume.encrypted = True
            volume.kms_key_id = key_arn


# --- states -------------------------------------------------------------------------------


def settle_due() -> None:
    """Boot instances whose pending time has passed; end those whose shutdown has."""
    if not TIMERS:
        return
    with state.LOCK:
        now = state.now()
        due = sorted((t for t in TIMERS if t.due <= now), key=lambda t: t.due)
        if not due:
            return
        TIMERS[:] = [t for t in TIMERS if t.due > now]
        for timer in due:
            if timer.kind == "boot":
                _boot(timer)
            elif timer.instance.state == "shutting-down":
                _original_terminate(timer.instance)


def _boot(timer: Timer) -> None:
    instance = timer.instance
    if instance.state != "pending":
        return
    backend = instance.ec2_backend
    for _device, block in instance.get_block_device_mapping:
        volume = backend.volumes.get(block.volume_id)
        if volume is not None and volume.encrypted and volume.kms_key_id:
            if key_problem(backend.account_id, backend.region_name, volume.kms_key_id):
                _original_terminate(instance)
                instance._reason = KMS_FAILURE_MESSAGE
                instance.state_reason = StateReason(KMS_FAILURE_MESSAGE, KMS_FAILURE_CODE)
                return
    instance._state = InstanceState("running", 16)
    instance._ferry_running_at = timer.due


def terminate(self: Instance) -> InstanceState:
    """TerminateInstances: ``shutting-down`` now, ``terminated`` (volumes with
    DeleteOnTermination deleted) after ``instanceShutdownSeconds``."""
    previous = copy.copy(self._state)
    if self._state.name in ("shutting-down", "terminated"):
        return previous
    with state.LOCK:
        self._state = InstanceState("shutting-down", 32)
        self._reason = f"User initiated ({state.now_dt().strftime('%Y-%m-%d %H:%M:%S GMT')})"
        self.state_reason = StateReason("Client.UserInitiatedShutdown: User initiated shutdown", "Client.UserInitiatedShutdown")
        TIMERS.append(Timer(due=state.now() + state.CONFIG["instanceShutdownSeconds"], kind="terminate", instance=self))
    return previous


def _status(self: Instance, check: str) -> dict[str, Any]:
    """DescribeInstanceStatus's InstanceStatus/SystemStatus: ``initializing`` for
    ``statusCheckSeconds`` after the instance is running, then ``ok``, or ``impaired``
    (reachability ``failed``) when ``impairStatusChecks`` picked it."""
    running_at = self.__dict__.get("_ferry_running_at")
    if self.state_code != 16 or running_at is None:
        original = _original_instance_status if check == "instance" else _original_system_status
        return original.fget(self)
    ok_at = running_at + self._ferry_check_seconds
    if state.now() < ok_at:
        return {"Status": "initializing", "Details": [{"Name": "reachability", "Status": "initializing"}]}
    if check in (self._ferry_impaired, state.impaired_check(self.id)):
        return {
            "Status": "impaired",
            "Details": [{"Name": "reachability", "Status": "failed", "ImpairedSince": state.now_dt(ok_at)}],
        }
    return {"Status": "ok", "Details": [{"Name": "reachability", "Status": "passed"}]}
