"""CopyImage and CopySnapshot as AWS does them (rows 1-4, and 10: AWS-recorded lineage).

A copy creates its image/snapshots at once in state ``pending``; they settle when the
emulator clock passes ``copySeconds`` after the call (``settle_due`` runs before every
request). The destination KMS key is checked only then, as EBS does asynchronously: a
missing, disabled, pending-deletion or non-symmetric key fails the copy.

Fault switches (``state.CONFIG``): ``copyQuotaPerRegion`` bounds the snapshot copies in flight
per destination Region (an AMI copy counts one per snapshot; beyond it the call answers
``ResourceLimitExceeded``), ``failNextCopies`` makes the next copies end failed/error with
a given message, and ``hideNewCopies`` hides each new copy from its first N describes (row 11).

Row 11, EC2's eventual consistency (EC2 developer guide, "Eventual consistency in the Amazon EC2
API"): "if you run a command to modify or describe the resource that you just created, its ID
might not have propagated throughout the system, and you will get an error responding that the
resource does not exist". A hidden copy (the image of a CopyImage, the snapshot of a
CopySnapshot) named in ``ImageIds``/``SnapshotIds`` answers ``InvalidAMIID.NotFound`` /
``InvalidSnapshot.NotFound``, as an unknown id does; a filtered listing leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidAMIIdError
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.ec2.utils import random_ami_id, random_snapshot_id

from .. import state
from .common import (
    KEY_NOT_ACCESSIBLE,
    client_params,
    default_ebs_key_arn,
    ec2_error,
    key_problem,
    require_encrypted_for_key,
    resolve_key_arn,
    tags_by_resource_type,
    validate_completion_minutes,
    validate_tags,
)
from .images import new_ami

COPY_IMAGE_TAG_TYPES = {"image", "snapshot"}


class CopiedVolume:
    """What a copied snapshot's ``volume`` points at: AWS reports ``vol-ffffffff``."""

    def __init__(self, size: int):
        self.id = "vol-ffffffff"
        self.size = size


@dataclass
class CopyJob:
    account_id: str
    region: str
    started: float
    due: float
    snapshot_ids: list[str]
    image_id: str | None = None
    key_ref: str | None = None  # the destination key, None for unencrypted copies
    done: bool = False
    # (StateReason code, message) when failNextCopies picked this copy to fail.
    forced_failure: tuple[str, str] | None = None


PENDING: list[CopyJob] = []
# (account, region, ClientToken) -> (request fingerprint, ImageId)
CLIENT_TOKENS: dict[tuple[str, str, str], tuple[str, str]] = {}


def apply() -> None:
    AmisResponse.copy_image = copy_image
    ElasticBlockStore.copy_snapshot = copy_snapshot
    AmisResponse.describe_images = _hiding_new_copies(AmisResponse.describe_images, "ImageIds", "Images")
    ElasticBlockStore.describe_snapshots = _hiding_new_copies(
        ElasticBlockStore.describe_snapshots, "SnapshotIds", "Snapshots"
    )
    _snapshot_progress_is_settable()


def _hiding_new_copies(original: Any, ids_param: str, result_key: str) -> Any:
    """DescribeImages/DescribeSnapshots that do not yet see copies ``hideNewCopies`` hides
    (row 11): an id asked for by name is NotFound, a listing leaves the copy out."""

    def describe(self: Any) -> ActionResult:
        answer = original(self)
        if not state.HIDDEN:
            return answer
        found = answer.result.get(result_key) if isinstance(answer, ActionResult) else None
        if found is None:
            return answer
        hidden = state.take_hidden([item.id for item in found])
        if not hidden:
            return answer
        named = sorted(hidden & set(self._get_param(ids_param, [])))
        if named:
            if result_key == "Images":
                raise InvalidAMIIdError(named if len(named) > 1 else named[0])
            raise ec2_error("InvalidSnapshot.NotFound", f"The snapshot '{named[0]}' does not exist.")
        return ActionResult({result_key: [item for item in found if item.id not in hidden]})

    return describe


def _snapshot_progress_is_settable() -> None:
    """moto's Snapshot.progress is always "100%"; pending copies report their own. Row 12:
    ``FullSnapshotSizeInBytes`` and ``CompletionTime``, which moto does not report."""
    Snapshot.progress = property(lambda self: self.__dict__.get("_ferry_progress", "100%"))
    Snapshot.full_snapshot_size_in_bytes = property(_full_snapshot_size_in_bytes)
    Snapshot.completion_time = property(_completion_time)


GIB = 1024**3


def _full_snapshot_size_in_bytes(self: Snapshot) -> int | None:
    """Every block written to the source volume: this emulator's volumes are full, so the
    volume's size (a copy keeps its source's)."""
    size = getattr(self.volume, "size", None)
    return None if size is None else int(size) * GIB


def _completion_time(self: Snapshot) -> Any:
    """When the snapshot completed: a copy when it settled, any other snapshot at its start
    (moto completes them at once); absent while pending or failed."""
    if self.status != "completed":
        return None
    return self.__dict__.get("_ferry_completion_time", self.start_time)


# --- settling -------------------------------------------------------------------------


def settle_due() -> None:
    """Finish every copy whose time has come; refresh Progress of the others."""
    if not PENDING:
        return
    with state.LOCK:
        now = state.now()
        for job in sorted(PENDING, key=lambda j: j.due):
            backend = ec2_backends[job.account_id][job.region]
            if now >= job.due:
                _finish(job, backend)
            else:
                span = max(job.due - job.started, 1e-9)
                pct = min(99, int(100 * (now - job.started) / span))
                for snap in _snapshots(job, backend):
                    snap._ferry_progress = f"{pct}%"
        PENDING[:] = [job for job in PENDING if not job.done]


def _snapshots(job: CopyJob, backend: Any) -> list[Snapshot]:
    return [backend.snapshots[s] for s in job.snapshot_ids if s in backend.snapshots]


def _finish(job: CopyJob, backend: Any) -> None:
    problem = job.forced_failure or (key_problem(job.account_id, job.region, job.key_ref) if job.key_ref else None)
    image = backend.amis.get(job.image_id) if job.image_id else None
    for snap in _snapshots(job, backend):
        if problem:
            snap.status = "error"
            snap.state_message = job.forced_failure[1] if job.forced_failure else KEY_NOT_ACCESSIBLE
        else:
            snap.status = "completed"
            snap._ferry_progress = "100%"
            # Its own due time, not the request's that happened to settle it.
            snap._ferry_completion_time = state.now_dt(job.due)
    if image is not None and image.state == "pending":
        if problem:
            code, detail = problem
            image.state = "failed"
            image.state_reason = {"Code": code, "Message": detail}
        else:
            image.state = "available"
    job.done = True
    state.copies_settled(job.region, len(job.snapshot_ids))


def _admit(region: str, snapshots: int) -> None:
    """The concurrent-copy quota of the destination Region (call under state.LOCK, before
    anything is created). AWS's answer and message when it is full."""
    quota = state.copy_admitted(region, snapshots)
    if quota is not None:
        raise ec2_error(
            "ResourceLimitExceeded",
            f"Too many snapshot copies in progress. The limit is {quota} for this destination region.",
        )


def _start(job_kwargs: dict[str, Any]) -> None:
    now = state.now()
    job = CopyJob(started=now, due=now + state.CONFIG["copySeconds"], **job_kwargs)
    job.forced_failure = state.take_copy_failure(job.region)
    PENDING.append(job)


# --- shared pieces ----------------------------------------------------------------------


def _copy_encryption(
    dest_backend: Any, source_encrypted: bool, encrypted: bool | None, kms_key_id: str | None
) -> tuple[bool, str | None]:
    """(Encrypted, KmsKeyId) of a copy in the destination Region."""
    if kms_key_id:
        return True, resolve_key_arn(dest_backend.account_id, dest_backend.region_name, kms_key_id)
    if encrypted or source_encrypted:
        return True, default_ebs_key_arn(dest_backend)
    return False, None


def _new_snapshot(
    backend: Any,
    size: int,
    description: str,
    encrypted: bool,
    kms_key_id: str | None,
    completion_minutes: int | None,
    tags: dict[str, str],
    from_ami: str | None = None,
) -> Snapshot:
    snap = Snapshot(
        backend,
        random_snapshot_id(),
        volume=CopiedVolume(size),
        description=description,
        encrypted=encrypted,
        kms_key_id=kms_key_id,
        from_ami=from_ami,
    )
    snap.status = "pending"
    snap._ferry_progress = "0%"
    snap.start_time = state.now_dt()
    snap.transfer_type = "time-based" if completion_minutes else "standard"
    if completion_minutes:
        snap.completion_duration_minutes = completion_minutes
    backend.snapshots[snap.id] = snap
    snap.add_tags(tags)
    return snap


def _task_created_on() -> str:
    return f"{int(state.now() * 1000):,}"


# --- CopyImage --------------------------------------------------------------------------


def copy_image(self: AmisResponse) -> ActionResult:
    p = self._get_param
    self.error_on_dryrun()
    encrypted = p("Encrypted")
    kms_key_id = p("KmsKeyId")
    require_encrypted_for_key(kms_key_id, encrypted)
    tags = tags_by_resource_type(p("TagSpecifications"), COPY_IMAGE_TAG_TYPES)
    minutes = validate_completion_minutes(
        p("SnapshotCopyCompletionDurationMinutes"), "SnapshotCopyCompletionDurationMinutes"
    )
    backend = self.ec2_backend
    account, region = backend.account_id, backend.region_name

    with state.LOCK:
        token = p("ClientToken")
        fingerprint = client_params(self.params)
        if token:
            seen = CLIENT_TOKENS.get((account, region, token))
            if seen is not None:
                if seen[0] != fingerprint:
                    raise ec2_error(
                        "IdempotentParameterMismatch",
                        "Arguments on this idempotent request are inconsistent with arguments "
                        "used in previous request(s).",
                    )
                return ActionResult({"ImageId": seen[1]})

        source_id, source_region = p("SourceImageId"), p("SourceRegion")
        source_backend = ec2_backends[account][source_region]
        sources = source_backend.describe_images(ami_ids=[source_id])
        if not sources:  # deregistered
            raise InvalidAMIIdError(source_id)
        source = sources[0]

        image_tags = dict(tags.get("image", {}))
        if p("CopyImageTags"):
            inherited = {
                k: v
                for k, v in source_backend.tags.get(source.id, {}).items()
                if not k.lower().startswith("aws:")
            }
            image_tags = {**inherited, **image_tags}
            validate_tags(image_tags)

        _admit(
            region,
            sum(1 for m in source.block_device_mappings if (m.get("Ebs") or {}).get("SnapshotId") in source_backend.snapshots),
        )
        image_id = random_ami_id()
        mappings, snapshot_ids, key_ref = [], [], None
        for mapping in source.block_device_mappings:
            ebs = mapping.get("Ebs") or {}
            source_snap = source_backend.snapshots.get(ebs.get("SnapshotId"))
            if source_snap is None:
                mappings.append(dict(mapping))  # ephemeral/no-device mappings copy as-is
                continue
            enc, key = _copy_encryption(backend, source_snap.encrypted, encrypted, kms_key_id)
            key_ref = key_ref or key
            snap = _new_snapshot(
                backend,
                size=ebs.get("VolumeSize") or source_snap.volume_size,
                description=(
                    f"Copied for DestinationAmi {image_id} from SourceAmi {source.id} for "
                    f"SourceSnapshot {source_snap.id}. Task created on {_task_created_on()}."
                ),
                encrypted=enc,
                kms_key_id=key,
                completion_minutes=minutes,
                tags=tags.get("snapshot", {}),
                from_ami=image_id,
            )
            snapshot_ids.append(snap.id)
            mappings.append(
                {
                    "DeviceName": mapping["DeviceName"],
                    "Ebs": {**ebs, "SnapshotId": snap.id, "Encrypted": enc},
                }
            )

        image = new_ami(
            backend,
            image_id,
            source_ami=source,
            name=p("Name") or source.name,
            description=p("Description") if p("Description") is not None else source.description,
            state="pending",
            root_device_name=source.root_device_name,
            root_device_type=source.root_device_type,
            boot_mode=source.boot_mode,
            sriov=source.sriov,
            hypervisor=source.hypervisor,
            image_type=source.image_type,
            block_device_mappings=mappings,
        )
        for attr in ("ena_support", "tpm_support", "imds_support"):
            if getattr(source, attr, None) is not None:
                setattr(image, attr, getattr(source, attr))
        # AWS's own lineage record (row 10): DescribeImages reports the source AMI and its
        # Region for an AMI made by CopyImage (Image.SourceImageId / SourceImageRegion).
        image.source_image_id = source.id
        image.source_image_region = source_region
        image.add_tags(image_tags)
        state.hide_new_copy(image_id)
        _start(
            dict(
                account_id=account,
                region=region,
                snapshot_ids=snapshot_ids,
                image_id=image_id,
                key_ref=key_ref,
            )
        )
        if token:
            CLIENT_TOKENS[(account, region, token)] = (fingerprint, image_id)
    return ActionResult({"ImageId": image_id})


# --- CopySnapshot -----------------------------------------------------------------------


def copy_snapshot(self: ElasticBlockStore) -> ActionResult:
    p = self._get_param
    self.error_on_dryrun()
    encrypted = p("Encrypted")
    kms_key_id = p("KmsKeyId")
    require_encrypted_for_key(kms_key_id, encrypted)
    tags = tags_by_resource_type(p("TagSpecifications"), {"snapshot"})
    minutes = validate_completion_minutes(p("CompletionDurationMinutes"), "CompletionDurationMinutes")
    backend = self.ec2_backend

    with state.LOCK:
        source_id, source_region = p("SourceSnapshotId"), p("SourceRegion")
        source = ec2_backends[backend.account_id][source_region].snapshots.get(source_id)
        if source is None:
            raise ec2_error("InvalidSnapshot.NotFound", f"The snapshot '{source_id}' does not exist.")
        enc, key = _copy_encryption(backend, source.encrypted, encrypted, kms_key_id)
        description = p("Description")
        _admit(backend.region_name, 1)
        snap = _new_snapshot(
            backend,
            size=source.volume_size,
            description=description if description is not None else f"[Copied {source_id} from {source_region}]",
            encrypted=enc,
            kms_key_id=key,
            completion_minutes=minutes,
            tags=tags.get("snapshot", {}),
        )
        state.hide_new_copy(snap.id)
        _start(
            dict(
                account_id=backend.account_id,
                region=backend.region_name,
                snapshot_ids=[snap.id],
                key_ref=key if enc else None,
            )
        )
    return ActionResult({"SnapshotId": snap.id, "Tags": snap.tag_set})
