"""SSM PutParameter with ``DataType=aws:ec2:image`` (row 15).

AWS (SSM API reference, PutParameter ``DataType``): "Systems Manager validates the parameter value
is in the required format, such as ami-12345abcdeEXAMPLE, and that the specified AMI is available
in your Amazon Web Services account. [...] The aws:ec2:image value is validated asynchronously,
and the PutParameter call returns before the validation is complete. If you submit an invalid AMI
value, the PutParameter operation will return success, but the asynchronous validation will fail
and the parameter will not be created or updated."

moto stores any value. Here a value that is not ``ami-`` + 8 or 17 lowercase hex digits, or that
names no image of this account in this Region (never registered, or deregistered), answers as a
success would (HTTP 200 with the Version it would have had) but creates or updates nothing; the
synchronous checks (``ParameterAlreadyExists`` without ``Overwrite``, type, name) still come
first, as moto makes them. Validation is immediate here, not after a delay.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from moto.ec2.models import ec2_backends
from moto.ssm.models import SimpleSystemManagerBackend

from .. import state

IMAGE_DATA_TYPE = "aws:ec2:image"
AMI_ID = re.compile(r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})")

_original_put_parameter = SimpleSystemManagerBackend.put_parameter


def apply() -> None:
    SimpleSystemManagerBackend.put_parameter = put_parameter


def image_available(account_id: str, region: str, value: str) -> bool:
    """Whether ``value`` is an AMI id of an image registered in that account and Region."""
    if not AMI_ID.fullmatch(value or ""):
        return False
    return value in ec2_backends[account_id][region].amis


@functools.wraps(_original_put_parameter)
def put_parameter(self: SimpleSystemManagerBackend, name: str, description: str, value: str, *args: Any, **kwargs: Any) -> Any:
    with state.LOCK:
        existed = bool(self._parameters.get(name))
        parameter = _original_put_parameter(self, name, description, value, *args, **kwargs)
        if parameter.data_type != IMAGE_DATA_TYPE or image_available(self.account_id, self.region_name, parameter.value):
            return parameter
        # The asynchronous validation failed: the parameter is neither created nor updated.
        self._parameters[name].remove(parameter)
        if not existed:
            del self._parameters[name]
            self._resource_tags.get("Parameter", {}).pop(name, None)
        state.count_rejected_image_parameter()
        return parameter
