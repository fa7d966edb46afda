"""The pack as the CLI loads it: layout, metadata, and the per-environment config files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel, Severity

from policies.rules import ALL_POLICIES
from policy_check.engine import CONFIG_DIR, reconcile, stack_config_file
from tests.pulumi_program import ROOT, STACKS, stack_config

PACK = ROOT / "policies"
NAMES = {policy.name for policy in ALL_POLICIES}
# Production-only guarantees: advisory in staging. Every other policy is
# mandatory in every stack.
PRODUCTION_ONLY = {
    "s3-bucket-no-force-destroy",
    "s3-bucket-kms-encryption",
    "dynamodb-table-deletion-protection",
    "data-resources-protected",
}


def _levels(stack: str) -> dict[str, EnforcementLevel]:
    reconciled = reconcile(ALL_POLICIES, stack_config_file(stack))
    return {name: level for name, (level, _) in reconciled.items() if name in NAMES}


def _settings(stack: str, policy: str) -> dict:
    return reconcile(ALL_POLICIES, stack_config_file(stack))[policy][1]


@pytest.fixture(scope="module")
def served_pack():
    """The pack started exactly as `pulumi preview --policy-pack policies` starts it."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", "."],
        cwd=PACK,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        if not line.isdigit():
            pytest.fail(f"the pack did not start: {line} {process.stderr.read()}")
        port = int(line)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_cli_loads_the_pack_and_it_serves_every_policy(served_pack):
    info = served_pack.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "securebase-analytics"
    assert info.supportsConfig
    assert [policy.name for policy in info.policies] == [p.name for p in ALL_POLICIES]
    lifecycle = next(p for p in info.policies if p.name == "s3-bucket-lifecycle")
    assert set(lifecycle.configSchema.properties) == {
        "maxExpirationDays",
        "maxNoncurrentVersionDays",
        "maxAbortIncompleteUploadDays",
    }
    assert all(p.remediation_steps and p.severity for p in info.policies)


def test_the_pack_is_a_python_pack_with_its_own_pinned_environment():
    manifest = yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": "venv"},
    }
    lock = (ROOT / "uv.lock").read_text()
    wanted = [
        line
        for line in (PACK / "requirements.in").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert sorted(wanted) == ["pulumi-policy==1.21.0", "pulumi==3.272.0"]
    # requirements.txt: every distribution pinned with hashes, at uv.lock's version.
    compiled = (PACK / "requirements.txt").read_text()
    pins = re.findall(r"^([a-z0-9_.-]+)==(\S+) \\$", compiled, flags=re.MULTILINE)
    assert set(wanted) <= {f"{name}=={version}" for name, version in pins}
    for name, version in pins:
        assert f'name = "{name}"\nversion = "{version}"' in lock, name
        assert re.search(
            rf"^{re.escape(name)}=={re.escape(version)} \\\n +--hash=sha256:[0-9a-f]{{64}}",
            compiled,
            flags=re.MULTILINE,
        ), name


def test_main_only_constructs_the_pack():
    source = (PACK / "__main__.py").read_text()
    assert source.count("PolicyPack(") == 1
    assert "def " not in source and "class " not in source


def test_every_policy_is_named_described_rated_and_remediable():
    assert len(NAMES) == len(ALL_POLICIES)
    for policy in ALL_POLICIES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", policy.name), policy.name
        assert policy.description.endswith("."), policy.name
        assert policy.remediation_steps, policy.name
        assert isinstance(policy.severity, Severity), policy.name
        # The config files decide the level; the pack default (mandatory) applies otherwise.
        assert policy.enforcement_level is None, policy.name


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_config_files_name_only_real_policies_and_settings(path: Path):
    config = stack_config_file(path.stem)
    by_name = {policy.name: policy for policy in ALL_POLICIES}
    for name, value in config.items():
        if name == "all":
            continue
        assert name in by_name, f"{path.name}: no policy named {name!r}"
        settings = set(value) - {"enforcementLevel"} if isinstance(value, dict) else set()
        schema = by_name[name].config_schema
        assert settings <= set(schema.properties if schema else ()), (path.name, name, settings)
    assert {p.stem for p in CONFIG_DIR.glob("*.json")} == set(STACKS)


def test_production_makes_every_policy_mandatory():
    advisory = {
        n for n, level in _levels("production").items() if level != EnforcementLevel.MANDATORY
    }
    assert advisory == set()


def test_staging_runs_the_same_rules_with_production_only_guarantees_advisory():
    levels = _levels("staging")
    assert set(levels) == NAMES
    advisory = {n for n, level in levels.items() if level != EnforcementLevel.MANDATORY}
    assert advisory == PRODUCTION_ONLY
    assert EnforcementLevel.DISABLED not in levels.values()


@pytest.mark.parametrize("stack", STACKS)
def test_limits_match_the_stack_config(stack):
    settings = stack_config(stack)
    assert _settings(stack, "logs-group-retention")["retentionDays"] == int(
        settings["securebase-analytics:logRetentionDays"]
    )
    assert _settings(stack, "s3-bucket-lifecycle")["maxExpirationDays"] >= int(
        settings["securebase-analytics:reportRetentionDays"]
    )
    assert _settings(stack, "required-tags")["expectedTagValues"]["Environment"] == stack
    assert _settings(stack, "dynamodb-table-point-in-time-recovery")["cacheTableNamePatterns"] == [
        f"securebase-{stack}-report-cache"
    ]
