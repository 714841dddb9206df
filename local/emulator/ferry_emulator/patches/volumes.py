"""Volumes and their snapshots keep their KMS key (row 6)."""

from __future__ import annotations

import functools
from typing import Any

from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot, Volume

from .common import require_encrypted_for_key, resolve_key_arn

_original_create_volume = EBSBackend.create_volume
_original_create_snapshot = EBSBackend.create_snapshot


def apply() -> None:
    EBSBackend.create_volume = create_volume
    EBSBackend.create_snapshot = create_snapshot


@functools.wraps(_original_create_volume)
def create_volume(
    self: EBSBackend,
    size: int,
    zone_name: str,
    snapshot_id: str | None = None,
    encrypted: bool = False,
    kms_key_id: str | None = None,
    **kwargs: Any,
) -> Volume:
    """KmsKeyId is stored as the key ARN (aliases resolved); a volume restored from an
    encrypted snapshot without a KmsKeyId keeps the snapshot's key."""
    require_encrypted_for_key(kms_key_id, encrypted)
    if kms_key_id:
        kms_key_id = resolve_key_arn(self.account_id, self.region_name, kms_key_id)
    elif snapshot_id:
        snap = self.get_snapshot(snapshot_id)
        if snap.encrypted and snap.kms_key_id:
            encrypted, kms_key_id = True, snap.kms_key_id
    return _original_create_volume(
        self, size, zone_name, snapshot_id=snapshot_id, encrypted=encrypted, kms_key_id=kms_key_id, **kwargs
    )


@functools.wraps(_original_create_snapshot)
def create_snapshot(self: EBSBackend, volume_id: str, *args: Any, **kwargs: Any) -> Snapshot:
    """A snapshot of a volume encrypted with key A is encrypted with key A."""
    snapshot = _original_create_snapshot(self, volume_id, *args, **kwargs)
    volume = self.volumes.get(volume_id)
    if volume is not None and volume.encrypted:
        snapshot.kms_key_id = volume.kms_key_id
    return snapshot
