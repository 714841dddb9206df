"""Helpers shared by the patches: AWS-style errors, request validation, KMS lookups."""

from __future__ import annotations

import json
from typing import Any

from moto.ec2.exceptions import EC2ClientError
from moto.kms.models import Key, kms_backends

# Tag limits EC2 enforces (docs: "Tag your Amazon EC2 resources", tag restrictions).
MAX_TAGS_PER_RESOURCE = 50
MAX_TAG_KEY_LEN = 128
MAX_TAG_VALUE_LEN = 256

KEY_NOT_ACCESSIBLE = "Given key ID is not accessible"


def ec2_error(code: str, message: str) -> EC2ClientError:
    """An EC2 query-protocol error (HTTP 400, <Code>/<Message>)."""
    return EC2ClientError(code, message)


def invalid_value(message: str) -> EC2ClientError:
    return ec2_error("InvalidParameterValue", message)


# --- request validation ---------------------------------------------------------------


def require_encrypted_for_key(kms_key_id: str | None, encrypted: bool | None) -> None:
    """AWS rejects KmsKeyId unless Encrypted=true (CopyImage, CopySnapshot, CreateVolume)."""
    if kms_key_id and not encrypted:
        raise ec2_error(
            "InvalidParameterDependency",
            "The parameter KmsKeyId requires the parameter Encrypted to be set.",
        )


def validate_completion_minutes(value: Any, param: str) -> int | None:
    """Time-based copies: 15..2880 minutes in 15-minute steps."""
    if value is None:
        return None
    minutes = int(value)
    if minutes < 15 or minutes > 2880 or minutes % 15:
        raise invalid_value(
            f"Value ({value}) for parameter {param} is invalid. "
            "The completion duration must be a multiple of 15 minutes between 15 and 2880."
        )
    return minutes


def tags_by_resource_type(
    tag_specifications: list[dict[str, Any]] | None, allowed: set[str]
) -> dict[str, dict[str, str]]:
    """Validate TagSpecifications as EC2 does and group the tags by ResourceType."""
    grouped: dict[str, dict[str, str]] = {}
    for spec in tag_specifications or []:
        resource_type = spec.get("ResourceType")
        if resource_type not in allowed:
            raise invalid_value(
                f"'{resource_type}' is not a valid taggable resource type for this operation."
            )
        tags = grouped.setdefault(resource_type, {})
        for tag in spec.get("Tags", []):
            tags[tag.get("Key", "")] = tag.get("Value", "")
    for tags in grouped.values():
        validate_tags(tags)
    return grouped


def validate_tags(tags: dict[str, str]) -> None:
    if len(tags) > MAX_TAGS_PER_RESOURCE:
        raise invalid_value(
            f"The number of tags ({len(tags)}) exceeds the limit of {MAX_TAGS_PER_RESOURCE} tags per resource."
        )
    for key, value in tags.items():
        if key.lower().startswith("aws:"):
            raise invalid_value(f"Tag keys starting with 'aws:' are reserved for internal use ({key}).")
        if not key or len(key) > MAX_TAG_KEY_LEN:
            raise invalid_value(
                f"Tag key must be between 1 and {MAX_TAG_KEY_LEN} characters long ({key[:40]!r})."
            )
        if value is not None and len(value) > MAX_TAG_VALUE_LEN:
            raise invalid_value(
                f"Tag value for key {key!r} exceeds the maximum length of {MAX_TAG_VALUE_LEN} characters."
            )


def client_params(params: dict[str, Any]) -> str:
    """A stable fingerprint of a request's parameters, for ClientToken idempotency."""
    significant = {k: v for k, v in params.items() if k not in ("ClientToken", "DryRun")}
    return json.dumps(significant, sort_keys=True, default=str)


# --- KMS ------------------------------------------------------------------------------


def lookup_key(account_id: str, region: str, key_ref: str | None) -> Key | None:
    """The KMS key that a key id / key ARN / alias name / alias ARN names in ``region``.

    An ARN of another Region or account names no key here (KMS keys are Regional;
    an mrk- replica in this Region has its own ARN)."""
    if not key_ref:
        return None
    if key_ref.startswith("arn:"):
        parts = key_ref.split(":", 5)
        if len(parts) < 6 or parts[3] != region or parts[4] != account_id:
            return None
    kms = kms_backends[account_id][region]
    try:
        key_id = kms.any_id_to_key_id(key_ref)
    except Exception:  # noqa: BLE001 - unknown alias makes moto raise assorted errors
        return None
    return kms.keys.get(key_id)


def resolve_key_arn(account_id: str, region: str, key_ref: str) -> str:
    """The key ARN EC2 reports for ``key_ref``; a key it cannot resolve is kept as given
    (EC2 accepts the call and fails the copy later)."""
    key = lookup_key(account_id, region, key_ref)
    return key.arn if key else key_ref


def default_ebs_key_arn(ec2_backend: Any) -> str:
    """The Region's default EBS key: the account default if set, else aws/ebs (made on demand)."""
    if ec2_backend.default_kms_key_id:
        return ec2_backend.default_kms_key_id
    return ec2_backend._create_default_encryption_key()


def key_problem(account_id: str, region: str, key_ref: str) -> tuple[str, str] | None:
    """Why EBS could not use the key now, as (StateReason code, detail), or None if usable."""
    key = lookup_key(account_id, region, key_ref)
    if key is None:
        return "Client.InvalidKMSKey.NotFound", f"{KEY_NOT_ACCESSIBLE}: {key_ref} (not found in {region})"
    if key.key_state != "Enabled":
        return "Client.InvalidKMSKey.InvalidState", f"{KEY_NOT_ACCESSIBLE}: {key.arn} is {key.key_state}"
    if (key.key_spec or "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT" or (
        key.key_usage or "ENCRYPT_DECRYPT"
    ) != "ENCRYPT_DECRYPT":
        return (
            "Client.InvalidKMSKey.InvalidState",
            f"{KEY_NOT_ACCESSIBLE}: {key.arn} is not a symmetric encryption key",
        )
    return None
