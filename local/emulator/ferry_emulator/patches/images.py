"""AMIs keep real block device mappings (row 5).

moto's Ami always invents one unencrypted 15 GiB /dev/sda1 snapshot. ``new_ami`` builds
an Ami with the mappings it is given instead, and RegisterImage uses it.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models.amis import Ami
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.utils import random_ami_id

from .. import state
from .common import ec2_error, tags_by_resource_type

_original_register_image = AmisResponse.register_image
_original_mappings = Ami.block_device_mappings


def apply() -> None:
    Ami.block_device_mappings = property(_block_device_mappings)
    AmisResponse.register_image = register_image


def _block_device_mappings(self: Ami) -> list[dict[str, Any]]:
    mappings = self.__dict__.get("_ferry_mappings")
    return mappings if mappings is not None else _original_mappings.fget(self)


def new_ami(backend: Any, ami_id: str, block_device_mappings: list[dict[str, Any]], **kwargs: Any) -> Ami:
    """An Ami whose BlockDeviceMappings are exactly ``block_device_mappings``."""
    ami = Ami(backend, ami_id, **kwargs)
    # Drop the snapshot moto's constructor invented for it.
    backend.snapshots.pop(ami.ebs_snapshot.id, None)
    ami._ferry_mappings = block_device_mappings
    ami.creation_date = state.now_dt()
    backend.amis[ami_id] = ami
    return ami


def _register_mapping(backend: Any, mapping: dict[str, Any], ami_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"DeviceName": mapping.get("DeviceName")}
    if "VirtualName" in mapping:
        entry["VirtualName"] = mapping["VirtualName"]
    if "NoDevice" in mapping:
        entry["NoDevice"] = mapping["NoDevice"]
    ebs = mapping.get("Ebs")
    if ebs is None:
        return entry
    snapshot_id = ebs.get("SnapshotId")
    snap = None
    if snapshot_id:
        snap = backend.snapshots.get(snapshot_id)
        if snap is None:
            raise ec2_error("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")
        if not snap.from_ami or snap.from_ami not in backend.amis:
            snap.from_ami = ami_id  # DeleteSnapshot now fails while the AMI is registered
    size = ebs.get("VolumeSize") or (snap.volume_size if snap else None)
    if size is None:
        raise ec2_error("MissingParameter", "The request must contain the parameter size or snapshotId.")
    out: dict[str, Any] = {
        "DeleteOnTermination": ebs.get("DeleteOnTermination", True),
        "SnapshotId": snapshot_id,
        "VolumeSize": size,
        "VolumeType": ebs.get("VolumeType") or "gp2",
        "Encrypted": bool(snap.encrypted) if snap else bool(ebs.get("Encrypted")),
    }
    for optional in ("Iops", "Throughput"):
        if ebs.get(optional) is not None:
            out[optional] = ebs[optional]
    entry["Ebs"] = out
    return entry


def register_image(self: AmisResponse) -> ActionResult:
    p = self._get_param
    mappings = p("BlockDeviceMappings") or []
    location = p("ImageLocation")
    if not mappings and not location:
        return _original_register_image(self)
    self.error_on_dryrun()
    tags = tags_by_resource_type(p("TagSpecifications"), {"image"})
    backend = self.ec2_backend
    with state.LOCK:
        ami_id = random_ami_id()
        registered = [_register_mapping(backend, m, ami_id) for m in mappings]
        has_ebs = any("Ebs" in m for m in registered)
        ami = new_ami(
            backend,
            ami_id,
            block_device_mappings=registered,
            name=p("Name"),
            description=p("Description"),
            architecture=p("Architecture") or "x86_64",
            virtualization_type=p("VirtualizationType") or "paravirtual",
            root_device_name=p("RootDeviceName") or "/dev/sda1",
            root_device_type="ebs" if has_ebs else "instance-store",
            image_location=location,
            boot_mode=p("BootMode"),
            sriov=p("SriovNetSupport") or "simple",
            hypervisor="xen",
            state="available",
        )
        for param, attr in (("EnaSupport", "ena_support"), ("TpmSupport", "tpm_support"), ("ImdsSupport", "imds_support")):
            if p(param) is not None:
                setattr(ami, attr, p(param))
        ami.add_tags(tags.get("image", {}))
    return ActionResult({"ImageId": ami_id})
