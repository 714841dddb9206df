"""The deployment template, checked offline.

* Every EventBridge rule of infra/template.yaml is evaluated against the sample events in
  tests/fixtures/events/ (shaped as AWS sends them) with moto's own EventBridge pattern
  matcher: the AMI-available and snapshot(s)-created events start a replication, nothing else
  does. moto 5.2.5 answers TestEventPattern with an empty body (not implemented), so the
  matcher class is called in-process; it is the same code moto's PutEvents uses to route.
* The IAM policies in the template are least-privilege: no wildcard action, "*" resources only
  for actions that support no resource-level permissions, KMS grants only for AWS resources,
  destructive EC2 calls only on resources ferry manages.
* The names the Rust code and the state machine rely on (functions, binaries, environment,
  DefinitionSubstitutions, the default policy) are what they should be.

Run: .venv/bin/python -m pytest tests/infra -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from typing import Any

import pytest
from moto.events.models import EventPattern

from cfn_template import REPO, STATE_MACHINE, as_list, load, permissions, policy_documents

POLICY_EXAMPLE = REPO / "infra" / "policy.example.json"
EVENTS = REPO / "tests" / "fixtures" / "events"
ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load()


def resolve(node: Any, params: dict[str, Any]) -> Any:
    """Resolve Ref and Sub the way CloudFormation would for this account and Region."""
    pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION}
    values = {**{k: v.get("Default") for k, v in params.items()}, **pseudo}
    if isinstance(node, list):
        return [resolve(item, params) for item in node]
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in values:
            return values[node["Ref"]]
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(values.get(m.group(1), m.group(0))), node["Fn::Sub"])
        return {k: resolve(v, params) for k, v in node.items()}
    return node


def sam_events(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every SAM event source of every resource, by event name."""
    found = {}
    for resource in template["Resources"].values():
        for name, event in resource.get("Properties", {}).get("Events", {}).items():
            found[name] = event
    return found


def rule_patterns(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The event pattern of every EventBridge rule: SAM EventBridgeRule/CloudWatchEvent
    event sources and plain AWS::Events::Rule resources."""
    params = template.get("Parameters", {})
    patterns = {
        name: resolve(event["Properties"]["Pattern"], params)
        for name, event in sam_events(template).items()
        if event["Type"] in ("EventBridgeRule", "CloudWatchEvent")
    }
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Events::Rule" and "EventPattern" in resource["Properties"]:
            patterns[logical] = resolve(resource["Properties"]["EventPattern"], params)
    return patterns


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


# --- event patterns against the sample events ---------------------------------------------

# fixture -> the rules it must start an execution through (every other rule must ignore it)
EXPECTED = {
    "ami-available.json": {"AmiAvailable"},
    "snapshot-created.json": {"SnapshotCreated"},
    "snapshots-created.json": {"SnapshotCreated"},
    "ami-failed.json": set(),
    "ami-deregistered.json": set(),
    "ami-available-other-account.json": set(),
    "snapshot-create-failed.json": set(),
    "snapshot-copied.json": set(),
    "scheduled-event.json": set(),
}


def figure(row: str, text: str) -> None:
    """As ferry_tests::figure: append "FIGURE <row>: <text>" to $FERRY_FIGURES_DIR/<row>.txt (scripts/test)."""
    line = f"FIGURE {row}: {text}"
    print(line)
    directory = os.environ.get("FERRY_FIGURES_DIR")
    if directory:
        name = "".join(c.lower() if c.isascii() and c.isalnum() else "-" for c in row)
        with open(os.path.join(directory, f"{name}.txt"), "a", encoding="utf-8") as out:
            out.write(line + "\n")


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_every_sample_event_is_classified(template):
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(EXPECTED)
    patterns = rule_patterns(template)
    starting = sorted(name for name in EXPECTED if any(matches(pattern, load_event(name)) for pattern in patterns.values()))
    assert starting == sorted(name for name, rules in EXPECTED.items() if rules)
    figure(
        "event patterns",
        f"{len(EXPECTED)} sample events through the template's {len(patterns)} EventBridge rules (moto's matcher): "
        f"{len(starting)} start a replication, the other {len(EXPECTED) - len(starting)} (failed, deregistered, another account's, a copy, the schedule's) match no rule",
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_event_is_a_full_eventbridge_envelope(name):
    event = load_event(name)
    assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
    assert event["version"] == "0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert event["region"] == REGION
    assert isinstance(event["resources"], list) and event["resources"]
    assert isinstance(event["detail"], dict)
    if name != "ami-available-other-account.json":
        assert event["account"] == ACCOUNT


def test_the_template_has_the_two_event_triggers_and_the_sweep(template):
    assert set(rule_patterns(template)) == {"AmiAvailable", "SnapshotCreated"}
    sweep = sam_events(template)["DrSweep"]
    assert sweep["Type"] == "Schedule", "an EventBridge schedule rule sends the 'Scheduled Event' envelope"
    assert sweep["Properties"]["Schedule"] == {"Ref": "DrSweepSchedule"}
    assert "Input" not in sweep["Properties"] and "InputPath" not in sweep["Properties"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_event_starts_exactly_the_expected_rules(template, name):
    event = load_event(name)
    matched = {rule for rule, pattern in rule_patterns(template).items() if matches(pattern, event)}
    assert matched == EXPECTED[name], f"{name}: matched {sorted(matched)}, expected {sorted(EXPECTED[name])}"


def test_rules_listen_to_this_account_only(template):
    for rule, pattern in rule_patterns(template).items():
        assert pattern.get("account") == [ACCOUNT], rule


@pytest.mark.parametrize(
    "change, value",
    [
        (("detail", "State"), "pending"),
        (("source",), "ferry"),
        (("account",), "999999999999"),
    ],
)
def test_the_matcher_rejects_a_changed_available_event(template, change, value):
    """The matcher can say no: the AMI rule stops matching when any filtered field changes."""
    event = load_event("ami-available.json")
    target = event
    for key in change[:-1]:
        target = target[key]
    target[change[-1]] = value
    assert not matches(rule_patterns(template)["AmiAvailable"], event)


# --- IAM ----------------------------------------------------------------------------------

# Actions that support no resource-level permissions: only these may use Resource "*".
NO_RESOURCE_LEVEL = {
    "ec2:DescribeImages",
    "ec2:DescribeSnapshots",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeFastSnapshotRestores",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeVolumes",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
MANAGED_BY = "aws:ResourceTag/ferry:managed-by"
REQUEST_MANAGED_BY = "aws:RequestTag/ferry:managed-by"
# What RunInstances creates: each only with ferry's tags at creation.
CREATED_BY_RUN_INSTANCES = ("instance/*", "volume/*", "network-interface/*")


def resource_texts(stmt: dict[str, Any]) -> list[str]:
    return [r if isinstance(r, str) else json.dumps(r) for r in as_list(stmt.get("Resource", []))]


def statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{where} {stmt.get('Sid', index)}", stmt)
        for where, doc in policy_documents(template["Resources"])
        for index, stmt in enumerate(doc["Statement"])
    ]


def condition_value(stmt: dict[str, Any], operator: str, key: str) -> list[Any]:
    return as_list(stmt.get("Condition", {}).get(operator, {}).get(key, []))


def iam_problems(stmts: list[tuple[str, dict[str, Any]]]) -> list[str]:
    problems = []
    for where, stmt in stmts:
        if "NotAction" in stmt or "NotResource" in stmt:
            problems.append(f"{where}: NotAction/NotResource")
        if "Principal" in stmt:  # a resource policy (the queue's): its actions are still checked
            pass
        actions = [a for a in as_list(stmt.get("Action", [])) if isinstance(a, str)]
        for action in actions:
            if "*" in action or "?" in action:
                problems.append(f"{where}: wildcard action {action}")
        if "Principal" not in stmt and "*" in as_list(stmt.get("Resource", [])):
            for action in actions:
                if action not in NO_RESOURCE_LEVEL:
                    problems.append(f"{where}: {action} on Resource '*' but it supports resource-level permissions")
        if "kms:CreateGrant" in actions:
            granted = condition_value(stmt, "Bool", "kms:GrantIsForAWSResource")
            if not granted or any(str(v).lower() != "true" for v in granted):
                problems.append(f"{where}: kms:CreateGrant without kms:GrantIsForAWSResource true")
        for action in ("ec2:DeleteSnapshot", "ec2:DeregisterImage", "ec2:TerminateInstances"):
            if action in actions and condition_value(stmt, "StringEquals", MANAGED_BY) != ["ferry"]:
                problems.append(f"{where}: {action} without {MANAGED_BY} = ferry")
        if "ec2:RunInstances" in actions:
            resources = resource_texts(stmt)
            creates = [r for r in resources if r == "*" or any(kind in r for kind in CREATED_BY_RUN_INSTANCES)]
            if creates and condition_value(stmt, "StringEquals", REQUEST_MANAGED_BY) != ["ferry"]:
                problems.append(f"{where}: ec2:RunInstances creates {creates} without {REQUEST_MANAGED_BY} = ferry")
            if any("image/*" in r for r in resources) and condition_value(stmt, "StringEquals", MANAGED_BY) != ["ferry"]:
                problems.append(f"{where}: ec2:RunInstances from images without {MANAGED_BY} = ferry")
    return problems


def test_the_template_has_iam_statements_to_check(template):
    assert len(statements(template)) >= 15


def test_iam_policies_are_least_privilege(template):
    checked = statements(template)
    assert iam_problems(checked) == []
    figure(
        "IAM",
        f"{len(checked)} IAM statements of infra/template.yaml: 0 wildcard actions, Resource '*' only where no resource-level "
        "permission exists, kms:CreateGrant only for AWS resources, DeleteSnapshot/DeregisterImage/TerminateInstances only on ferry:managed-by=ferry, RunInstances creating only resources tagged ferry:managed-by=ferry from ferry's images",
    )


def test_sam_policies_are_inline_documents_only(template):
    """SAM policy templates and managed policy names would hide their actions from the checks above."""
    for logical, resource in template["Resources"].items():
        for policy in as_list(resource.get("Properties", {}).get("Policies", [])):
            assert isinstance(policy, dict) and "Statement" in policy, f"{logical}: {policy!r}"


@pytest.mark.parametrize(
    "stmt, problem",
    [
        ({"Effect": "Allow", "Action": "kms:ReEncrypt*", "Resource": "arn:aws:kms:*:1:key/*"}, "wildcard action"),
        ({"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}, "wildcard action"),
        ({"Effect": "Allow", "Action": "ec2:CopySnapshot", "Resource": "*"}, "supports resource-level"),
        ({"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": "arn:aws:kms:*:1:key/*"}, "GrantIsForAWSResource"),
        (
            {"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": "k", "Condition": {"Bool": {"kms:GrantIsForAWSResource": "false"}}},
            "GrantIsForAWSResource",
        ),
        ({"Effect": "Allow", "Action": "ec2:DeleteSnapshot", "Resource": "arn:aws:ec2:*::snapshot/*"}, "managed-by"),
        ({"Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "arn:aws:ec2:*:1:instance/*"}, "managed-by"),
        ({"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "arn:aws:ec2:*:1:instance/*"}, "RequestTag"),
        ({"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*"}, "RequestTag"),
        ({"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "arn:aws:ec2:*::image/*"}, "from images"),
        (
            {
                "Effect": "Allow",
                "Action": "ec2:DeregisterImage",
                "Resource": "arn:aws:ec2:*::image/*",
                "Condition": {"StringEquals": {MANAGED_BY: "someone-else"}},
            },
            "managed-by",
        ),
    ],
)
def test_the_iam_checks_catch_each_kind_of_problem(stmt, problem):
    found = iam_problems([("example", stmt)])
    assert any(problem in p for p in found), found


def test_the_iam_checks_accept_the_conditioned_forms():
    good = [
        {"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": "k", "Condition": {"Bool": {"kms:GrantIsForAWSResource": True}}},
        {"Effect": "Allow", "Action": "ec2:DeleteSnapshot", "Resource": "s", "Condition": {"StringEquals": {MANAGED_BY: "ferry"}}},
        {
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": ["arn:aws:ec2:*:1:instance/*", "arn:aws:ec2:*:1:volume/*"],
            "Condition": {"StringEquals": {REQUEST_MANAGED_BY: "ferry"}},
        },
        {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "arn:aws:ec2:*:1:subnet/*"},
    ]
    assert iam_problems([("example", s) for s in good]) == []


# --- the contract with the code -------------------------------------------------------------

FUNCTIONS = {
    "PlanReplicationFunction": (
        "plan-replication",
        {"FERRY_POLICY": {"Ref": "ReplicationPolicy"}, "FERRY_WORK_BUCKET": {"Ref": "WorkBucket"}},
    ),
    "StartCopyFunction": ("start-copy", {}),
    "CheckCopyFunction": ("check-copy", {}),
    "VerifyEncryptionFunction": ("verify-encryption", {}),
    "TagLineageFunction": ("tag-lineage", {"FERRY_EVENT_BUS": {"Ref": "EventBusName"}}),
    "EnableFsrFunction": ("enable-fsr", {}),
    "WireDestinationFunction": ("wire-destination", {}),
    "BootCheckFunction": ("boot-check", {}),
    "RetireReplicasFunction": ("retire-replicas", {"FERRY_EVENT_BUS": {"Ref": "EventBusName"}}),
}


def test_functions_binaries_and_environment(template):
    resources = template["Resources"]
    functions = {k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert functions == set(FUNCTIONS)
    glob = template["Globals"]["Function"]
    assert (glob["Runtime"], glob["Handler"], glob["CodeUri"]) == ("provided.al2023", "bootstrap", "..")
    assert glob["Architectures"] == [{"Ref": "Architecture"}]
    for logical, (binary, env) in FUNCTIONS.items():
        resource = resources[logical]
        assert resource["Metadata"] == {"BuildMethod": "rust-cargolambda", "BuildProperties": {"Binary": binary}}
        assert resource["Properties"].get("Environment", {}).get("Variables", {}) == env
        group = resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        manifest = REPO / "functions" / binary / "Cargo.toml"
        assert manifest.is_file(), f"no crate functions/{binary}"
        assert tomllib.loads(manifest.read_text())["package"]["name"] == binary


# The run (ferry.asl.json) and one replication (replication.asl.json), each with exactly the
# substitutions its definition uses.
STATE_MACHINES = {
    "ReplicationStateMachine": "../statemachine/ferry.asl.json",
    "ReplicationWorkflow": "../statemachine/replication.asl.json",
}


def test_state_machine_substitutions(template):
    resources = template["Resources"]
    machines = {k for k, v in resources.items() if v["Type"] == "AWS::Serverless::StateMachine"}
    assert machines == set(STATE_MACHINES)
    function_arns = {f"{logical}Arn": {"Fn::GetAtt": [logical, "Arn"]} for logical in FUNCTIONS}
    for logical, uri in STATE_MACHINES.items():
        machine = resources[logical]["Properties"]
        assert machine["Type"] == "STANDARD"
        assert machine["DefinitionUri"] == uri
        text = (REPO / "infra" / uri).resolve().read_text()
        placeholders = set(re.findall(r"\$\{(\w+)\}", text))
        substitutions = machine["DefinitionSubstitutions"]
        assert set(substitutions) == placeholders, logical
        for key, value in substitutions.items():
            if key in function_arns:
                assert value == function_arns[key], key
        assert substitutions["EventBusName"] == {"Ref": "EventBusName"}
    run = resources["ReplicationStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert run["ReplicationStateMachineArn"] == {"Ref": "ReplicationWorkflow"}


def test_default_policy_is_the_example(template):
    default = json.loads(template["Parameters"]["ReplicationPolicy"]["Default"])
    assert default == json.loads(POLICY_EXAMPLE.read_text())


def test_permissions_tell_direct_calls_from_those_aws_makes_on_the_callers_behalf(template):
    allowed = permissions(template)
    assert set(allowed) == {binary for binary, _ in FUNCTIONS.values()} | {STATE_MACHINE}
    start_copy = allowed["start-copy"]
    assert {"ec2:CopyImage", "ec2:CopySnapshot", "kms:DescribeKey"} <= set(start_copy["direct"])
    assert {"kms:Decrypt", "kms:ReEncryptTo", "kms:CreateGrant", "ec2:CreateTags"} <= set(start_copy["onBehalf"])
    assert not set(start_copy["direct"]) & set(start_copy["onBehalf"])
    assert allowed["tag-lineage"] == {"direct": ["ec2:CreateTags", "ec2:DescribeImages", "ec2:DescribeSnapshots", "events:PutEvents"], "onBehalf": []}
    assert allowed["wire-destination"] == {
        "direct": [
            "ec2:CreateLaunchTemplateVersion",
            "ec2:DescribeImages",
            "ec2:DescribeLaunchTemplateVersions",
            "ec2:DescribeLaunchTemplates",
            "ec2:ModifyLaunchTemplate",
            "ssm:GetParameter",
            "ssm:PutParameter",
        ],
        "onBehalf": [],
    }


def test_wire_destination_versions_templates_and_writes_parameters_of_this_account_only(template):
    policy = template["Resources"]["WireDestinationFunction"]["Properties"]["Policies"][0]
    by_action = {a: stmt for stmt in policy["Statement"] for a in as_list(stmt["Action"])}
    for action in ("ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"):
        assert by_action[action]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:launch-template/*"}
    for action in ("ssm:GetParameter", "ssm:PutParameter"):
        assert by_action[action]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:ssm:*:${AWS::AccountId}:parameter${WiredParameterPath}"}
    assert template["Parameters"]["WiredParameterPath"]["Default"] == "/*"
    assert "ec2:CreateLaunchTemplate" not in by_action and "ec2:DeleteLaunchTemplate" not in by_action


def test_boot_check_launches_only_tagged_instances_from_ferry_replicas_and_terminates_only_its_own(template):
    policy = template["Resources"]["BootCheckFunction"]["Properties"]["Policies"][0]
    statements = policy["Statement"]
    launches = [stmt for stmt in statements if "ec2:RunInstances" in as_list(stmt["Action"])]
    covered = " ".join(r for stmt in launches for r in resource_texts(stmt))
    for kind in (*CREATED_BY_RUN_INSTANCES, "image/*", "subnet/*", "security-group/*"):
        assert kind in covered, kind
    assert iam_problems([("boot-check", stmt) for stmt in statements]) == []
    allowed = permissions(template)["boot-check"]
    assert allowed["direct"] == [
        "ec2:DescribeImages",
        "ec2:DescribeInstanceStatus",
        "ec2:DescribeInstances",
        "ec2:DescribeVolumes",
        "ec2:RunInstances",
        "ec2:TerminateInstances",
    ]
    assert set(allowed["onBehalf"]) == {"ec2:CreateTags", "kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext"}


def test_retire_replicas_deprecates_deregisters_and_deletes_only_ferry_owned_resources(template):
    policy = template["Resources"]["RetireReplicasFunction"]["Properties"]["Policies"][0]
    for stmt in policy["Statement"]:
        actions = as_list(stmt["Action"])
        if any(a in actions for a in ("ec2:EnableImageDeprecation", "ec2:CreateTags", "ec2:DeregisterImage", "ec2:DeleteSnapshot", "ec2:DisableFastSnapshotRestores")):
            assert condition_value(stmt, "StringEquals", MANAGED_BY) == ["ferry"], stmt
    assert permissions(template)["retire-replicas"]["direct"] == [
        "ec2:CreateTags",
        "ec2:DeleteSnapshot",
        "ec2:DeregisterImage",
        "ec2:DescribeFastSnapshotRestores",
        "ec2:DescribeImages",
        "ec2:DescribeInstances",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:DescribeLaunchTemplates",
        "ec2:DescribeSnapshots",
        "ec2:DisableFastSnapshotRestores",
        "ec2:EnableImageDeprecation",
        "events:PutEvents",
        "ssm:GetParameter",
    ]
