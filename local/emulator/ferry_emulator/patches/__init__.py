"""Behaviour patches that make moto fail the way AWS fails (not applied with --plain).

Each module patches one area in small, named functions; ``apply_all`` installs them once.
"""

from __future__ import annotations

_applied = False


def apply_all() -> None:
    global _applied
    if _applied:
        return
    from . import associated_keys, copies, cost, deprecation, fsr, images, instances, kms, launch_templates, ssm, stepfunctions, volumes

    cost.apply()
    kms.apply()
    images.apply()
    volumes.apply()
    copies.apply()
    deprecation.apply()
    fsr.apply()
    associated_keys.apply()
    instances.apply()
    launch_templates.apply()  # after instances: it wraps RunInstances again
    ssm.apply()
    stepfunctions.apply()
    _applied = True


def settle_due() -> None:
    """Runs before every request: finish copies and instance state changes whose time has come."""
    from .copies import settle_due as settle_copies
    from .instances import settle_due as settle_instances

    settle_copies()
    settle_instances()
