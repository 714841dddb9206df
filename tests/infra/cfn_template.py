"""infra/template.yaml as data: CloudFormation's short forms, its IAM documents, and the actions
each principal (function binary, or the state machine) is allowed.

Run as a script, it prints those actions as JSON, for the Rust test that compares them with the
calls each function really makes (tests/tests/faults.rs, least privilege):

    .venv/bin/python tests/infra/cfn_template.py permissions
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "template.yaml"
STATE_MACHINE = "state-machine"
# Conditions under which an action is never called by the principal itself: AWS calls it on the
# principal's behalf (EBS re-encrypting through KMS, EC2 tagging inside CopyImage/CopySnapshot).
ON_BEHALF_CONDITIONS = {"kms:ViaService", "ec2:CreateAction"}


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns !Ref x / !GetAtt a.b / !Sub ... into their long forms."""


def _short_form(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _short_form)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CfnLoader)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_documents(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM policy document anywhere in the template (SAM Policies, roles, queue policies)."""
    if isinstance(node, dict):
        if isinstance(node.get("Statement"), list):
            yield where, node
            return
        for key, value in node.items():
            yield from policy_documents(value, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from policy_documents(value, f"{where}[{index}]")


def principal(resource: dict[str, Any]) -> str | None:
    """The function binary a resource deploys, or STATE_MACHINE; None for other resources."""
    if resource["Type"] == "AWS::Serverless::Function":
        return resource["Metadata"]["BuildProperties"]["Binary"]
    if resource["Type"] == "AWS::Serverless::StateMachine":
        return STATE_MACHINE
    return None


def permissions(template: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """Per principal, the allowed actions it calls itself (`direct`) and those AWS calls on its
    behalf (`onBehalf`), from the principal's own inline policies."""
    allowed: dict[str, dict[str, set[str]]] = {}
    for resource in template["Resources"].values():
        name = principal(resource)
        if name is None:
            continue
        sets = allowed.setdefault(name, {"direct": set(), "onBehalf": set()})
        for _, document in policy_documents(resource["Properties"].get("Policies", [])):
            for stmt in document["Statement"]:
                if stmt.get("Effect") != "Allow":
                    continue
                keys = {key for operator in stmt.get("Condition", {}).values() for key in operator}
                kind = "onBehalf" if keys & ON_BEHALF_CONDITIONS else "direct"
                sets[kind].update(a for a in as_list(stmt.get("Action", [])) if isinstance(a, str))
    return {name: {kind: sorted(actions) for kind, actions in sets.items()} for name, sets in sorted(allowed.items())}


if __name__ == "__main__":
    if sys.argv[1:] != ["permissions"]:
        sys.exit("usage: cfn_template.py permissions")
    print(json.dumps(permissions(load()), indent=2))
