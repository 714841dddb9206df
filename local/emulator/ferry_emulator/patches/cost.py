"""Patches that change what a request costs the emulator, never what it answers.

A fleet run asks moto for thousands of tagged resources from one Python process; these keep
each answer's cost independent of how many resources the account holds.

- ``get_tags``: moto reads one resource's tags by scanning every tag of the Region
  (``describe_tags`` with a ``resource-id`` filter), so a filtered DescribeImages over N tagged
  images costs N². Read the resource's own entry instead, in the same shape.
- ``method_names_from_class``: moto lists a response class's methods with ``inspect`` on every
  request. A class's methods do not change while the server runs: list them once.
- ``list_of_moto_modules``: moto lists its own package directory on every request to match the
  Host header. The package does not change while the server runs: list it once.
"""

from __future__ import annotations

import functools

import moto.backends
import moto.core.responses
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix


def apply() -> None:
    TaggedEC2Resource.get_tags = get_tags
    moto.core.responses.method_names_from_class = functools.cache(moto.core.responses.method_names_from_class)
    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules


def get_tags(self: TaggedEC2Resource) -> list[dict[str, str]]:
    """The resource's tags as moto's ``describe_tags`` lists them, from its own entry."""
    resource_id = getattr(self, "id", None)
    if not resource_id:
        return []
    tags = self.ec2_backend.tags.get(resource_id)  # type: ignore[attr-defined]
    if not tags:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    return [
        {"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
        for key, value in tags.items()
    ]
