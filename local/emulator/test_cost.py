"""The cost patches (patches/cost.py) answer exactly what moto answers."""

from __future__ import annotations

import moto.backends
import moto.core.responses
from moto.ec2.models import ec2_backends
from moto.ec2.models.core import TaggedEC2Resource

from ferry_emulator.patches import cost

ACCOUNT = "123456789012"
# moto's own, before any test applies the patches to this process
MOTO_GET_TAGS = TaggedEC2Resource.get_tags
MOTO_METHOD_NAMES = moto.core.responses.method_names_from_class
MOTO_MODULES = moto.backends.list_of_moto_modules


def test_tags_read_from_the_resource_entry_match_motos_scan():
    backend = ec2_backends[ACCOUNT]["eu-central-1"]
    volumes = [backend.create_volume(size=1, zone_name="eu-central-1a") for _ in range(5)]
    snapshots = [backend.create_snapshot(v.id, "s") for v in volumes]
    for i, resource in enumerate(volumes + snapshots):
        if i % 3:  # some untagged
            backend.create_tags([resource.id], {"ferry:selected": "true", "n": str(i), "Name": f"r{i}"})
    for resource in volumes + snapshots:
        assert cost.get_tags(resource) == MOTO_GET_TAGS(resource)
    assert [t["resource_type"] for t in cost.get_tags(snapshots[0])] == ["snapshot"] * 3


def test_a_resource_without_an_id_has_no_tags():
    class NoId:
        id = None

    assert cost.get_tags(NoId()) == []  # type: ignore[arg-type]


def test_method_and_module_lists_are_the_same_once_cached():
    from moto.ec2.responses import EC2Response
    from moto.stepfunctions.responses import StepFunctionResponse

    classes = (EC2Response, StepFunctionResponse)
    before = ([MOTO_METHOD_NAMES(c) for c in classes], list(MOTO_MODULES()))
    cost.apply()
    for _ in range(2):  # computed, then cached
        after = ([moto.core.responses.method_names_from_class(c) for c in classes], list(moto.backends.list_of_moto_modules()))
        assert after == before
    assert "describe_images" in after[0][0] and "ec2" in after[1]
