"""KMS fixes (row 7) and the AWS-managed aws/ebs key that EBS uses by default."""

from __future__ import annotations

import functools
import json
from typing import Any

from moto.ec2.models.elastic_block_store import EBSBackend
from moto.kms.models import Key, KmsBackend, kms_backends
from moto.kms.responses import KmsResponse

EBS_ALIAS = "alias/aws/ebs"
EBS_KEY_DESCRIPTION = "Default key that protects my EBS volumes when no other key is defined"


def apply() -> None:
    _multi_region_is_always_a_bool()
    _key_state_changes_accept_arns()
    _reserved_aliases_make_aws_managed_keys()
    _ebs_default_key_is_aws_ebs()


def _multi_region_is_always_a_bool() -> None:
    """DescribeKey/CreateKey: ``MultiRegion: false`` on ordinary keys (moto leaves it null)."""
    original = Key.to_dict

    @functools.wraps(original)
    def to_dict(self: Key) -> dict[str, Any]:
        result = original(self)
        meta = result["KeyMetadata"]
        meta["MultiRegion"] = bool(self.multi_region)
        meta["KeyUsage"] = self.key_usage or "ENCRYPT_DECRYPT"
        return result

    Key.to_dict = to_dict


def _key_state_changes_accept_arns() -> None:
    """Disable/Enable/ScheduleKeyDeletion/CancelKeyDeletion index keys by raw id in moto,
    so a key ARN gave HTTP 500. Normalise to the key id first."""
    for name in ("disable_key", "enable_key", "cancel_key_deletion", "schedule_key_deletion"):
        original = getattr(KmsBackend, name)

        def by_key_id(self: KmsBackend, key_id: str, *args: Any, _original=original) -> Any:
            return _original(self, self.get_key_id(key_id), *args)

        setattr(KmsBackend, name, functools.wraps(original)(by_key_id))

    # AWS answers both with the key ARN in KeyId.
    for name in ("cancel_key_deletion", "schedule_key_deletion"):
        original = getattr(KmsResponse, name)

        def with_key_arn(self: KmsResponse, _original=original) -> str:
            result = json.loads(_original(self))
            key = self.kms_backend.keys.get(self.kms_backend.get_key_id(result["KeyId"]))
            if key is not None:
                result["KeyId"] = key.arn
                if key.key_state == "PendingDeletion":
                    result["KeyState"] = key.key_state
            return json.dumps(result)

        setattr(KmsResponse, name, functools.wraps(original)(with_key_arn))


def _reserved_aliases_make_aws_managed_keys() -> None:
    """Keys moto creates on demand for alias/aws/* are AWS managed (KeyManager AWS)."""
    original = KmsBackend._generate_default_keys

    @functools.wraps(original)
    def generate(self: KmsBackend, alias_name: str) -> str | None:
        key_id = original(self, alias_name)
        if key_id is not None:
            key = self.keys[key_id]
            key.key_manager = "AWS"
            if alias_name == EBS_ALIAS:
                key.description = EBS_KEY_DESCRIPTION
        return key_id

    KmsBackend._generate_default_keys = generate


def ebs_key_arn(account_id: str, region: str) -> str:
    """ARN of the Region's aws/ebs key, created (AWS managed) when first needed."""
    kms = kms_backends[account_id][region]
    key_id = kms.get_key_id_from_alias(EBS_ALIAS)
    return kms.keys[key_id].arn


def _ebs_default_key_is_aws_ebs() -> None:
    """moto's EBS made a customer-managed key for the default; use the AWS-managed aws/ebs."""

    def create_default_encryption_key(self: EBSBackend) -> str:
        self.default_kms_key_id = ebs_key_arn(self.account_id, self.region_name)
        return self.default_kms_key_id

    EBSBackend._create_default_encryption_key = create_default_encryption_key
