"""Pins the built template to the architecture scripts/package built.

    .venv-infra/bin/python scripts/pin_architecture.py .aws-sam/build/template.yaml x86_64

infra/template.yaml lets `Architecture` be arm64 or x86_64 and defaults to arm64, but the
binaries in .aws-sam/build were compiled for one of them: deployed as the other, every
invocation fails (Runtime.InvalidEntrypoint). The built template's parameter then allows only
the built architecture and defaults to it, so `sam deploy` uses exactly that, and
CloudFormation refuses any other value with the ConstraintDescription below.

It reads and writes the template with SAM CLI's own YAML helpers, the ones `sam build` wrote it
with, so the intrinsic functions keep their form.
"""

from __future__ import annotations

import sys
from pathlib import Path

from samcli.yamlhelper import yaml_dump, yaml_parse

# Lambda's architecture name → the Rust target scripts/package builds it with.
ARCHITECTURES = {"arm64": "aarch64-unknown-linux-gnu", "x86_64": "x86_64-unknown-linux-gnu"}
USAGE = "usage: pin_architecture.py BUILT_TEMPLATE arm64|x86_64"


def pin(template: dict, architecture: str) -> dict:
    """The template with its Architecture parameter allowing only `architecture`."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    parameter = template.get("Parameters", {}).get("Architecture")
    if parameter is None:
        raise ValueError("the template has no Architecture parameter to pin")
    parameter["AllowedValues"] = [architecture]
    parameter["Default"] = architecture
    other = next(a for a in ARCHITECTURES if a != architecture)
    parameter["ConstraintDescription"] = (
        f"this build's binaries are {architecture} (scripts/package); to deploy {other}, "
        f"rebuild on a machine whose Rust toolchain has the {ARCHITECTURES[other]} target"
    )
    return template


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(USAGE, file=sys.stderr)
        return 2
    path, architecture = Path(argv[1]), argv[2]
    try:
        pinned = pin(yaml_parse(path.read_text()), architecture)
    except (OSError, ValueError) as error:
        print(f"pin_architecture: {path}: {error}", file=sys.stderr)
        return 2
    path.write_text(yaml_dump(pinned))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
