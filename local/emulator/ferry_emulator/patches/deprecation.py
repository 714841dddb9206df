"""AMI deprecation (row 16): moto answers Enable/DisableImageDeprecation with HTTP 500.

EC2 user guide, "Deprecate an Amazon EC2 AMI": EnableImageDeprecation sets the time (UTC) at which
the AMI is deprecated, seconds rounded to the nearest minute; DescribeImages reports it as
``DeprecationTime``; once that time has passed, a deprecated AMI is left out of DescribeImages
for everyone but its owner, unless ``IncludeDeprecated=true`` ("If you are the AMI owner, all
deprecated AMIs appear in the response regardless of what you specify for IncludeDeprecated").
DisableImageDeprecation cancels it.

The owner's view is all this emulator has: moto keeps each account's images apart (no image is
shared across accounts), so hiding a deprecated image from other accounts is not modelled, and
the owner sees its deprecated images, as on AWS.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidAMIIdError
from moto.ec2.models.amis import Ami
from moto.ec2.responses.amis import AmisResponse


def apply() -> None:
    AmisResponse.enable_image_deprecation = enable_image_deprecation
    AmisResponse.disable_image_deprecation = disable_image_deprecation


def _image(self: AmisResponse) -> Ami:
    image_id = self._get_param("ImageId")
    image = self.ec2_backend.amis.get(image_id)
    if image is None:
        raise InvalidAMIIdError(image_id)
    return image


def _utc(value: Any) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    # seconds are rounded to the nearest minute
    return (when + timedelta(seconds=30)).replace(second=0, microsecond=0)


def enable_image_deprecation(self: AmisResponse) -> ActionResult:
    image = _image(self)
    self.error_on_dryrun()
    at = _utc(self._get_param("DeprecateAt"))
    image.deprecation_time = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return ActionResult({"Return": True})


def disable_image_deprecation(self: AmisResponse) -> ActionResult:
    image = _image(self)
    self.error_on_dryrun()
    image.__dict__.pop("deprecation_time", None)
    return ActionResult({"Return": True})
