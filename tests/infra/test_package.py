"""First deploy: sam build runs without a prompt, and the built template deploys only the
architecture scripts/package built (scripts/pin_architecture.py)."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA_PYTHON = REPO / ".venv-infra" / "bin" / "python"
SAM_HELPERS = "from samcli.yamlhelper import yaml_parse, yaml_dump"


def infra_python(code: str, *args: str) -> subprocess.CompletedProcess:
    if not INFRA_PYTHON.exists():
        pytest.fail(f"{INFRA_PYTHON} is missing: run scripts/setup-infra")
    return subprocess.run([str(INFRA_PYTHON), "-c", code, *args], capture_output=True, text=True, cwd=REPO)


def built_template(tmp_path: Path) -> Path:
    """infra/template.yaml as `sam build` writes it (SAM CLI's own YAML dump)."""
    out = tmp_path / "template.yaml"
    done = infra_python(
        f"import sys; {SAM_HELPERS}; open(sys.argv[2], 'w').write(yaml_dump(yaml_parse(open(sys.argv[1]).read())))",
        str(REPO / "infra" / "template.yaml"),
        str(out),
    )
    assert done.returncode == 0, done.stderr
    return out


def architecture_parameter(path: Path) -> dict:
    done = infra_python(
        f"import json, sys; {SAM_HELPERS}; print(json.dumps(yaml_parse(open(sys.argv[1]).read())['Parameters']['Architecture']))",
        str(path),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def pin(path: Path, architecture: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(INFRA_PYTHON), str(REPO / "scripts" / "pin_architecture.py"), str(path), architecture],
        capture_output=True,
        text=True,
    )


def test_sam_build_and_sync_opt_in_to_the_cargo_lambda_beta_feature():
    # AWS SAM: rust-cargolambda is a beta feature; without the opt-in, sam build stops at a
    # [y/N] prompt (or aborts without a terminal). samconfig.toml is one documented opt-in.
    config = tomllib.loads((REPO / "samconfig.toml").read_text())["default"]
    assert config["build"]["parameters"]["beta_features"] is True
    assert config["sync"]["parameters"]["beta_features"] is True


def test_the_source_template_still_offers_both_architectures():
    assert architecture_parameter(REPO / "infra" / "template.yaml")["AllowedValues"] == ["arm64", "x86_64"]


@pytest.mark.parametrize("architecture", ["x86_64", "arm64"])
def test_the_built_template_allows_and_defaults_to_the_built_architecture_only(tmp_path, architecture):
    template = built_template(tmp_path)
    done = pin(template, architecture)
    assert done.returncode == 0, done.stderr
    parameter = architecture_parameter(template)
    assert parameter["AllowedValues"] == [architecture]
    assert parameter["Default"] == architecture
    # CloudFormation shows the ConstraintDescription when a deploy passes another value.
    assert f"binaries are {architecture}" in parameter["ConstraintDescription"]
    assert "rebuild" in parameter["ConstraintDescription"]
    # Everything else is as sam build wrote it: the functions still take !Ref Architecture.
    assert "Ref: Architecture" in template.read_text()


def test_an_unknown_architecture_or_template_is_refused_and_nothing_is_written(tmp_path):
    template = built_template(tmp_path)
    before = template.read_text()
    done = pin(template, "aarch64")
    assert done.returncode == 2 and "not one of arm64, x86_64" in done.stderr
    assert template.read_text() == before
    missing = pin(tmp_path / "nope.yaml", "x86_64")
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr


def test_scripts_package_pins_the_architecture_it_built():
    script = (REPO / "scripts" / "package").read_text()
    build = script.index("sam build")
    pinned = script.index("pin_architecture.py")
    assert build < pinned, "the pin runs on the template sam build wrote"
    assert '"$architecture"' in script[pinned:]
