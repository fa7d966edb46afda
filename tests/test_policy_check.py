"""`make policy`: the pack over both stacks' programs, its table, exit status and SARIF.

The SARIF is checked against the OASIS SARIF 2.1.0 schema vendored in
policy_check/ (no network), and for what code scanning shows a reviewer: the
rule (description, remediation, severity) and the line that names the resource.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from policies.rules import ALL_POLICIES
from policy_check.__main__ import main
from policy_check.sarif import SCHEMA_PATH
from policy_check.sources import declaration, declared_at
from tests.pulumi_program import ROOT, STACKS, Deployment, committed_deployment

POLICIES = {policy.name: policy for policy in ALL_POLICIES}
ROW_COLUMNS = 6  # POLICY, SEVERITY, ENFORCEMENT, RESOURCE, DECLARED AT, MESSAGE


@pytest.fixture(scope="module")
def deployments() -> dict[str, Deployment]:
    return {stack: committed_deployment(stack) for stack in STACKS}


def run_main(argv: list[str], deployments: dict[str, Deployment]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, program=deployments.__getitem__, out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def committed(deployments, tmp_path_factory) -> tuple[int, str, Path]:
    output = tmp_path_factory.mktemp("policy")
    code, text = run_main(["--output-dir", str(output)], deployments)
    return code, text, output


def sarif_of(output: Path, stack: str) -> dict[str, Any]:
    return json.loads((output / f"{stack}.sarif").read_text())


def schema_errors(log: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(json.loads(SCHEMA_PATH.read_text()))
    return [error.message for error in validator.iter_errors(log)]


def table_rows(text: str) -> list[list[str]]:
    """The findings rows of every table in the output (columns are 2+ spaces apart)."""
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("  ") if cell.strip()]
        if len(cells) >= ROW_COLUMNS and cells[0] != "POLICY" and cells[0] in POLICIES:
            rows.append(cells)
    return rows


def snippet(location: dict[str, Any]) -> str:
    """The source text a result's region covers."""
    physical = location["physicalLocation"]
    region = physical["region"]
    lines = (ROOT / physical["artifactLocation"]["uri"]).read_text().splitlines()
    assert region["startLine"] == region["endLine"]
    return lines[region["startLine"] - 1][region["startColumn"] - 1 : region["endColumn"] - 1]


def result_for(log: dict[str, Any], policy: str, urn_suffix: str) -> dict[str, Any]:
    (result,) = [
        r
        for r in log["runs"][0]["results"]
        if r["ruleId"] == policy
        and r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].endswith(urn_suffix)
    ]
    return result


# --- The committed code ------------------------------------------------------------------


def test_the_committed_code_passes_and_each_stack_prints_its_findings(committed):
    code, text, output = committed

    assert code == 0
    assert text.splitlines()[-1].startswith("OK: no mandatory violation in staging, production (")
    for stack in STACKS:
        results = sarif_of(output, stack)["runs"][0]["results"]
        assert f"{stack}: " in text
        assert f"SARIF: {output / f'{stack}.sarif'}" in text
        if not results:
            assert f"{stack}: no findings; SARIF" in text
    # The table shows exactly the SARIF's results: policy, severity, level, resource.
    printed = sorted((row[0], row[1], row[2], row[3].split(" (")[0]) for row in table_rows(text))
    in_sarif = sorted(
        (
            r["ruleId"],
            r["properties"]["severity"],
            r["properties"]["enforcementLevel"],
            r["locations"][0]["logicalLocations"][0]["name"],
        )
        for stack in STACKS
        for r in sarif_of(output, stack)["runs"][0]["results"]
    )
    assert printed == in_sarif
    assert printed, "staging's advisory findings are expected in the table"
    assert {row[2] for row in table_rows(text)} == {"advisory"}


def test_a_row_names_the_resource_where_it_is_declared_and_the_fix(committed):
    _, text, _ = committed
    row = next(
        r
        for r in table_rows(text)
        if r[0] == "dynamodb-table-deletion-protection"
        and r[3].startswith("analytics-data-metrics")
    )
    assert row[1:4] == ["medium", "advisory", "analytics-data-metrics (Table)"]
    assert row[4].startswith("components/data.py:")
    assert row[5] == (
        "deletion protection is off: one call deletes the table and its data."
        " Fix: set deletionProtectionEnabled True"
    )


# --- SARIF ---------------------------------------------------------------------------------


def test_the_vendored_schema_is_the_oasis_sarif_2_1_0_schema():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["id"] == (
        "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    )
    assert hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest() == (
        "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_each_stacks_sarif_validates_against_the_schema(committed, stack):
    log = sarif_of(committed[2], stack)

    assert schema_errors(log) == []
    assert log["version"] == "2.1.0"
    # One code scanning category per stack, so both analyses stay side by side.
    assert log["runs"][0]["automationDetails"] == {"id": f"securebase-analytics-policy/{stack}/"}


def test_the_schema_rejects_a_log_code_scanning_would_refuse(committed):
    log = copy.deepcopy(sarif_of(committed[2], "staging"))
    del log["runs"][0]["results"][0]["message"]
    log["runs"][0]["results"][1]["level"] = "fatal"

    assert len(schema_errors(log)) == 2


@pytest.mark.parametrize("stack", STACKS)
def test_every_policy_is_a_rule_with_its_description_remediation_severity_and_level(
    committed, stack
):
    rules = sarif_of(committed[2], stack)["runs"][0]["tool"]["driver"]["rules"]
    config = json.loads((ROOT / "policies" / "config" / f"{stack}.json").read_text())

    assert [rule["id"] for rule in rules] == [policy.name for policy in ALL_POLICIES]
    for rule in rules:
        policy = POLICIES[rule["id"]]
        assert rule["shortDescription"]["text"] == policy.description
        assert rule["help"]["text"] == f"Remediation: {policy.remediation_steps}"
        assert rule["properties"]["severity"] == policy.severity.value
        configured = config.get(rule["id"], {})
        advisory = isinstance(configured, dict) and configured.get("enforcementLevel") == "advisory"
        assert rule["defaultConfiguration"]["level"] == ("warning" if advisory else "error")


def test_every_result_refers_to_its_rule_and_points_at_the_resources_logical_name(committed):
    log = sarif_of(committed[2], "staging")
    rules = log["runs"][0]["tool"]["driver"]["rules"]

    for result in log["runs"][0]["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == "warning"  # advisory in staging
        (location,) = result["locations"]
        name = location["logicalLocations"][0]["name"]
        assert result["message"]["text"].split(": ")[0].endswith(f"'{name}'")
        assert location["physicalLocation"]["artifactLocation"]["uriBaseId"] == "%SRCROOT%"

    table = result_for(log, "dynamodb-table-deletion-protection", "::analytics-data-metrics")
    bucket = result_for(log, "data-resources-protected", "Bucket::analytics-data-reports")
    encryption = result_for(log, "s3-bucket-kms-encryption", "::analytics-data-reports-encryption")
    # Helpers that pass the name on (`_table(resource_name)`, `SecureBucket(name)`)
    # point at their caller, where the name is built.
    assert table["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "components/data.py"
    )
    assert snippet(table["locations"][0]) == 'f"{name}-{spec.name}"'
    assert bucket["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "components/data.py"
    )
    assert snippet(bucket["locations"][0]) == 'f"{name}-reports"'
    assert encryption["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "components/secure_bucket.py"
    )
    assert snippet(encryption["locations"][0]) == 'f"{name}-encryption"'
    # Four tables come from one line: each result is still its own alert.
    fingerprints = [
        r["partialFingerprints"]["policyResource/v1"] for r in log["runs"][0]["results"]
    ]
    assert len(set(fingerprints)) == len(fingerprints)


# --- Where resources are declared ------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_is_placed_in_the_programs_own_code(deployments, stack):
    deployment = deployments[stack]
    literal_names = 0
    for resource in deployment.resources:
        region = declaration(deployment, resource)
        assert region is not None, resource.urn
        assert region.path == "__main__.py" or region.path.startswith("components/"), region
        text = snippet(
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": region.path},
                    "region": {
                        "startLine": region.start_line,
                        "startColumn": region.start_column,
                        "endLine": region.end_line,
                        "endColumn": region.end_column,
                    },
                }
            }
        )
        expression = ast.parse(text, mode="eval").body
        if isinstance(expression, ast.Constant):
            assert expression.value == resource.name
            literal_names += 1
    assert literal_names >= 5  # the provider and the four components


def _write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HELPER = """\
def make(resource_name, size):
    return Thing(
        resource_name,
        size=size,
    )


def named(prefix):
    return Thing(f"{prefix}-named")
"""
PROGRAM = """\
from components.helper import make, named

first = make("first-" + "thing", 3)
second = named("second")
third = {"é": make("thîrd", 1)}
"""


def test_a_helper_that_passes_the_name_on_yields_to_its_caller(tmp_path):
    helper = _write(tmp_path, "components/helper.py", HELPER)
    program = _write(tmp_path, "__main__.py", PROGRAM)
    library = _write(tmp_path, ".venv/lib/thing.py", "class Thing:\n    pass\n")

    def text_at(region) -> str:
        assert region.start_line == region.end_line
        line = (tmp_path / region.path).read_text().splitlines()[region.start_line - 1]
        return line[region.start_column - 1 : region.end_column - 1]

    passed_on = declared_at([(library, 2), (helper, 2), (program, 3)], tmp_path)
    built_here = declared_at([(library, 2), (helper, 9), (program, 4)], tmp_path)
    after_accents = declared_at([(library, 2), (helper, 2), (program, 5)], tmp_path)
    # No caller in the program: the helper is the best there is.
    alone = declared_at([(library, 2), (helper, 2)], tmp_path)

    assert (passed_on.path, passed_on.start_line) == ("__main__.py", 3)
    assert text_at(passed_on) == '"first-" + "thing"'
    assert (built_here.path, built_here.start_line) == ("components/helper.py", 9)
    assert text_at(built_here) == 'f"{prefix}-named"'
    # Columns count characters, not UTF-8 bytes.
    assert text_at(after_accents) == '"thîrd"'
    assert (alone.path, alone.start_line) == ("components/helper.py", 3)
    assert text_at(alone) == "resource_name"
    assert declared_at([(library, 2)], tmp_path) is None


# --- Failing on a mandatory violation ----------------------------------------------------


def _unprotected(deployment: Deployment) -> Deployment:
    """Production with its tables no longer protected (as if `protect` were dropped)."""
    return dataclasses.replace(
        deployment,
        resources=[
            dataclasses.replace(r, protect=False) if r.type == "aws:dynamodb/table:Table" else r
            for r in deployment.resources
        ],
    )


def test_a_program_with_a_mandatory_violation_fails(deployments, tmp_path):
    changed = {"production": _unprotected(deployments["production"])}

    code, text = run_main(["--stack", "production", "--output-dir", str(tmp_path)], changed)

    assert code == 1
    rows = [row for row in table_rows(text) if row[0] == "data-resources-protected"]
    assert sorted(row[3] for row in rows) == [
        "analytics-data-metrics (Table)",
        "analytics-data-report-cache (Table)",
        "analytics-data-report-emails (Table)",
        "analytics-data-report-schedules (Table)",
        "analytics-data-reports (Table)",
    ]
    assert {row[2] for row in rows} == {"mandatory"}
    assert text.splitlines()[-1].startswith("FAILED: mandatory policy violations (production: 5)")
    results = sarif_of(tmp_path, "production")["runs"][0]["results"]
    assert {r["level"] for r in results} == {"error"}
    assert schema_errors(sarif_of(tmp_path, "production")) == []


def test_a_stricter_policy_config_turns_advisories_into_a_failure(deployments, tmp_path):
    # Staging under production's enforcement: every policy mandatory.
    config = json.loads((ROOT / "policies" / "config" / "staging.json").read_text())
    strict = {
        name: {k: v for k, v in value.items() if k != "enforcementLevel"}
        if isinstance(value, dict)
        else value
        for name, value in config.items()
    }
    _write(tmp_path, "config/staging.json", json.dumps(strict))

    code, text = run_main(
        [
            "--stack",
            "staging",
            "--config-dir",
            str(tmp_path / "config"),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        deployments,
    )

    assert code == 1
    assert {row[2] for row in table_rows(text)} == {"mandatory"}
    assert re.search(r"^staging: \d+ findings: \d+ mandatory, 0 advisory; SARIF: ", text, re.M)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "is not JSON"),
        ("[]", "a policy config is a JSON object"),
        ('{"all": "sometimes"}', "'sometimes' is not a valid EnforcementLevel"),
        ('{"s3-bucket-lifecycle": {"maxExpirationDays": "ninety"}}', "'ninety' is not of type"),
    ],
)
def test_a_missing_or_invalid_policy_config_exits_2_naming_the_file(
    tmp_path, capsys, content, message
):
    if content is not None:
        _write(tmp_path, "staging.json", content)

    code = main(
        ["--stack", "staging", "--config-dir", str(tmp_path), "--output-dir", str(tmp_path)],
        program=lambda stack: pytest.fail("no program runs on a bad config"),
    )

    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("error: ")
    assert error.count("\n") == 1
    assert str(tmp_path / "staging.json") in error
    assert message in error
    assert not list(tmp_path.glob("*.sarif"))


def test_the_command_runs_the_real_program(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "policy_check", "--stack", "production", "--output-dir", tmp_path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert re.match(r"production: \d+ resources, \d+ policies \(policies/config/", done.stdout)
    assert "production: no findings; SARIF: " in done.stdout
    assert schema_errors(sarif_of(tmp_path, "production")) == []
