"""Launch templates as AWS keeps them (row 14).

moto ignores CreateLaunchTemplateVersion's ``SourceVersion`` and ``ClientToken`` (every call adds
a version holding only the data it was given), ignores DescribeLaunchTemplateVersions'
``Filters``, answers an unknown template id in DescribeLaunchTemplates with an empty list and
in ModifyLaunchTemplate with the wrong codes, and copies CreateLaunchTemplate's
``launch-template`` tag specifications into version 1's data. Here (EC2 API reference):

- CreateLaunchTemplateVersion ``SourceVersion`` (``$Latest``, ``$Default`` or a number): "the new
  version inherits the same launch parameters as the source version, except for parameters that
  you specify in LaunchTemplateData" (a parameter given replaces the source's whole value, e.g.
  all BlockDeviceMappings); an unknown version → ``InvalidLaunchTemplateId.VersionNotFound``.
- ``ClientToken`` (EC2 developer guide, "Ensuring idempotency"): a repeat returns the version the
  first call made and creates nothing; the same token with other parameters →
  ``IdempotentParameterMismatch``.
- A missing template: by name ``InvalidLaunchTemplateName.NotFoundException``, by id
  ``InvalidLaunchTemplateId.NotFound`` (EC2 API error codes), HTTP 400, in every call.
- DescribeLaunchTemplateVersions ``Filters``: ``image-id``, ``instance-type``,
  ``is-default-version``, ``ebs-optimized``; a version asked for twice (``$Latest`` and
  ``$Default`` naming the same one) is listed once.
- RunInstances from a template applies its ``volume`` tag specifications to the volumes (the
  request's own win, key by key).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import (
    InvalidLaunchTemplateIdNotFound,
    InvalidLaunchTemplateVersionNotFound,
    MissingParameterError,
)
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.models.launch_templates import LaunchTemplate, LaunchTemplateBackend, LaunchTemplateVersion
from moto.ec2.responses.launch_templates import LaunchTemplates
from moto.ec2.utils import convert_tag_spec

from .. import state
from .common import client_params, ec2_error

_original_create_launch_template = LaunchTemplates.create_launch_template
_original_describe_launch_templates = LaunchTemplateBackend.describe_launch_templates
_original_modify_launch_template = LaunchTemplateBackend.modify_launch_template
_original_run_instances = None  # set in apply(): the instances patch's run_instances

# (account, region, ClientToken) -> (request fingerprint, LaunchTemplateId, VersionNumber)
CLIENT_TOKENS: dict[tuple[str, str, str], tuple[str, str, int]] = {}

VERSION_FILTERS = {
    "image-id": lambda data, version: data.get("ImageId"),
    "instance-type": lambda data, version: data.get("InstanceType"),
    "ebs-optimized": lambda data, version: str(bool(data.get("EbsOptimized"))).lower(),
    "is-default-version": lambda data, version: str(version.template.is_default(version)).lower(),
}


def apply() -> None:
    global _original_run_instances
    LaunchTemplates.create_launch_template = create_launch_template
    LaunchTemplates.create_launch_template_version = create_launch_template_version
    LaunchTemplates.describe_launch_template_versions = describe_launch_template_versions
    LaunchTemplateBackend.describe_launch_templates = describe_launch_templates
    LaunchTemplateBackend.modify_launch_template = modify_launch_template
    _original_run_instances = InstanceBackend.run_instances
    InstanceBackend.run_instances = run_instances_with_template_volume_tags


def _template(backend: Any, name: str | None, template_id: str | None) -> LaunchTemplate:
    if name:
        return backend.get_launch_template_by_name(name)
    if template_id:
        return backend.get_launch_template(template_id)
    raise MissingParameterError("launch template ID or launch template name")


def _version(template: LaunchTemplate, ref: Any) -> LaunchTemplateVersion:
    """``$Latest``, ``$Default`` (any case, as moto) or an existing version number."""
    text = str(ref)
    if text.lower() == "$latest":
        return template.latest_version()
    if text.lower() == "$default":
        return template.default_version()
    if text.isdigit() and 1 <= int(text) <= len(template.versions):
        return template.versions[int(text) - 1]
    raise InvalidLaunchTemplateVersionNotFound(template_id=template.id, version=text)


def _version_dict(self: LaunchTemplates, template: LaunchTemplate, version: LaunchTemplateVersion) -> dict[str, Any]:
    return {
        "CreateTime": version.create_time,
        "CreatedBy": f"arn:{self.partition}:iam::{self.current_account}:root",
        "DefaultVersion": template.is_default(version),
        "LaunchTemplateData": version.data,
        "LaunchTemplateId": template.id,
        "LaunchTemplateName": template.name,
        "VersionDescription": version.description,
        "VersionNumber": version.number,
    }


def create_launch_template(self: LaunchTemplates) -> ActionResult:
    """The ``launch-template`` tags tag the template; they are not launch parameters."""
    answer = _original_create_launch_template(self)
    template = self.ec2_backend.get_launch_template(answer.result["LaunchTemplate"]["LaunchTemplateId"])
    data = template.versions[0].data
    kept = [spec for spec in data.get("TagSpecifications") or [] if spec.get("ResourceType") != "launch-template"]
    if kept:
        data["TagSpecifications"] = kept
    else:
        data.pop("TagSpecifications", None)
    return answer


def create_launch_template_version(self: LaunchTemplates) -> ActionResult:
    p = self._get_param
    backend = self.ec2_backend
    template = _template(backend, p("LaunchTemplateName"), p("LaunchTemplateId"))
    self.error_on_dryrun()
    with state.LOCK:
        token = p("ClientToken")
        fingerprint = client_params(self.params)
        key = (backend.account_id, backend.region_name, token)
        if token and key in CLIENT_TOKENS:
            seen_fingerprint, template_id, number = CLIENT_TOKENS[key]
            if seen_fingerprint != fingerprint:
                raise ec2_error(
                    "IdempotentParameterMismatch",
                    "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
                )
            seen = backend.get_launch_template(template_id)
            return ActionResult({"LaunchTemplateVersion": _version_dict(self, seen, _version(seen, number))})
        data = copy.deepcopy(p("LaunchTemplateData", {}))
        if p("SourceVersion") is not None:
            source = _version(template, p("SourceVersion"))
            data = {**copy.deepcopy(source.data), **data}
        version = template.create_version(data, p("VersionDescription"))
        version.create_time = state.now_dt()
        if token:
            CLIENT_TOKENS[key] = (fingerprint, template.id, version.number)
    return ActionResult({"LaunchTemplateVersion": _version_dict(self, template, version)})


def describe_launch_template_versions(self: LaunchTemplates) -> ActionResult:
    p = self._get_param
    backend = self.ec2_backend
    self.error_on_dryrun()
    versions = p("Versions", [])
    name, template_id = p("LaunchTemplateName"), p("LaunchTemplateId")
    if name or template_id:
        template = _template(backend, name, template_id)
        if versions:
            found = [(template, _version(template, v)) for v in versions]
        else:
            low, high = p("MinVersion"), p("MaxVersion")
            found = [
                (template, v)
                for v in template.versions
                if (low is None or v.number >= int(low)) and (high is None or v.number <= int(high))
            ]
    else:  # every template's $Latest and/or $Default (moto validates the request)
        found = backend.describe_launch_template_versions(None, None, versions, None, None, 10**9)
    unique: dict[tuple[str, int], tuple[LaunchTemplate, LaunchTemplateVersion]] = {}
    for template, version in found:
        unique.setdefault((template.id, version.number), (template, version))
    for spec in p("Filters", []):
        filter_name, values = spec.get("Name"), [str(v) for v in spec.get("Values", [])]
        if filter_name not in VERSION_FILTERS:
            raise ec2_error("InvalidParameterValue", f"The filter '{filter_name}' is invalid")
        read = VERSION_FILTERS[filter_name]
        unique = {k: (t, v) for k, (t, v) in unique.items() if read(v.data, v) in values}
    listed = list(unique.values())[: int(p("MaxResults") or 200)]
    return ActionResult({"LaunchTemplateVersions": [_version_dict(self, t, v) for t, v in listed]})


def describe_launch_templates(
    self: LaunchTemplateBackend, template_names: list[str] | None = None, template_ids: list[str] | None = None, filters: Any = None
) -> list[LaunchTemplate]:
    """An id asked for that does not exist → ``InvalidLaunchTemplateId.NotFound``."""
    for template_id in template_ids or []:
        if template_id not in self.launch_templates:
            raise InvalidLaunchTemplateIdNotFound(template_id)
    return _original_describe_launch_templates(self, template_names=template_names, template_ids=template_ids, filters=filters)


def modify_launch_template(
    self: LaunchTemplateBackend, default_version: str, template_name: str | None = None, template_id: str | None = None
) -> LaunchTemplate:
    """A missing template answers the not-found code of the name or id given."""
    template = _template(self, template_name, template_id)
    if default_version is None:
        return template
    return _original_modify_launch_template(self, str(default_version), template_id=template.id)


def run_instances_with_template_volume_tags(self: Any, *args: Any, **kwargs: Any) -> Any:
    if kwargs.get("launch_template"):
        data = self._get_template_from_args(kwargs["launch_template"]).data
        template_volume_tags = convert_tag_spec(data.get("TagSpecifications") or []).get("volume", {})
        if template_volume_tags:
            tags = dict(kwargs.get("tags") or {})
            tags["volume"] = {**template_volume_tags, **tags.get("volume", {})}
            kwargs["tags"] = tags
    return _original_run_instances(self, *args, **kwargs)
