"""Behaviour patches that make moto fail the way AWS fails (not applied with --plain).

Each module patches one area in small, named functions; ``apply_all`` installs them once.
"""

from __future__ import annotations

_applied = False


def apply_all() -> None:
    global _applied
    if _applied:
        return
    from . import associated_keys, copies, cost, fsr, images, kms, stepfunctions, volumes

    cost.apply()
    kms.apply()
    images.apply()
    volumes.apply()
    copies.apply()
    fsr.apply()
    associated_keys.apply()
    stepfunctions.apply()
    _applied = True


def settle_due() -> None:
    """Runs before every request: finish copies whose time has come."""
    from .copies import settle_due as settle_copies

    settle_copies()
