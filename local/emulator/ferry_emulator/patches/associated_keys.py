"""Associated KMS keys on snapshots (row 9): AssociateKmsKeyId / DisassociateKmsKeyId.

AWS (EC2 API reference, AssociateKmsKeyId): "Associates an additional KMS key with an encrypted
Amazon EBS snapshot. With the associated key, you have a second, independent way to access the
snapshot's data ... Associating a key doesn't re-encrypt the snapshot." DescribeSnapshots then
lists it in ``Snapshot.AssociatedKmsKeys`` (wire: ``<associatedKmsKeySet><item><kmsKeyId>ARN``,
botocore 1.44's ``AssociatedKmsKeySet``/``AssociatedKmsKey`` shapes), each entry the key's ARN
(API reference, AssociatedKmsKey: "The Amazon Resource Name (ARN) of the associated KMS key").

moto 5.2.5 has neither action. The set lives on the moto Snapshot as ``associated_kms_keys``
(a list of ``{"KmsKeyId": arn}``), which moto's botocore-model serializer renders under the
model's location names, exactly as AWS sends it.

Error codes AWS gives for these calls are not documented; the ones here are the nearest EC2
codes and are marked as this emulator's choice in the README.
"""

from __future__ import annotations


from moto.core.responses import ActionResult
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.responses import EC2Response

from .. import state
from .common import ec2_error, invalid_value, lookup_key


def apply() -> None:
    EC2Response.associate_kms_key_id = associate_kms_key_id
    EC2Response.disassociate_kms_key_id = disassociate_kms_key_id


def associated(snapshot: Snapshot) -> list[dict[str, str]]:
    """The snapshot's associated keys, as the serializer renders them (created on first use)."""
    keys = snapshot.__dict__.get("associated_kms_keys")
    if keys is None:
        keys = snapshot.associated_kms_keys = []
    return keys


def _request(response: EC2Response) -> tuple[Snapshot, str, str]:
    """(snapshot, key reference as given, key ARN) of an Associate/Disassociate request."""
    p = response._get_param
    response.error_on_dryrun()
    snapshot_id, key_ref = p("SnapshotId"), p("KmsKeyId")
    if not key_ref:
        raise ec2_error("MissingParameter", "The request must contain the parameter KmsKeyId")
    if not snapshot_id:
        raise ec2_error("MissingParameter", "The request must contain the parameter SnapshotId")
    backend = response.ec2_backend
    snapshot = backend.snapshots.get(snapshot_id)
    if snapshot is None:
        raise ec2_error("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")
    key = lookup_key(backend.account_id, backend.region_name, key_ref)
    return snapshot, key_ref, key.arn if key else ""


def associate_kms_key_id(self: EC2Response) -> ActionResult:
    with state.LOCK:
        snapshot, key_ref, key_arn = _request(self)
        if not key_arn:
            raise ec2_error("InvalidKMSKey.NotFound", f"The KMS key '{key_ref}' does not exist in this Region.")
        if not snapshot.encrypted:
            raise ec2_error(
                "IncorrectState",
                f"The snapshot '{snapshot.id}' is not encrypted: only encrypted snapshots can have associated KMS keys.",
            )
        keys = associated(snapshot)
        if {"KmsKeyId": key_arn} not in keys:  # associating the same key again changes nothing
            keys.append({"KmsKeyId": key_arn})
    return ActionResult({"Return": True})


def disassociate_kms_key_id(self: EC2Response) -> ActionResult:
    with state.LOCK:
        snapshot, key_ref, key_arn = _request(self)
        keys = associated(snapshot)
        entry = {"KmsKeyId": key_arn or key_ref}
        if entry not in keys:
            raise invalid_value(f"The KMS key '{key_ref}' is not associated with snapshot '{snapshot.id}'.")
        keys.remove(entry)
        if not keys:  # AWS omits an empty set
            del snapshot.associated_kms_keys
    return ActionResult({"Return": True})

