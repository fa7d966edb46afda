"""The GitHub workflows: schema-valid, zizmor-clean, and shaped the way the runbook says.

Both tools run from .venv, offline: check-jsonschema with its vendored GitHub
workflow schema, zizmor with only its offline audits. zizmor runs as the
"auditor" persona (its strictest) with inline ignores disabled, and must find
nothing at all; two deliberately bad workflows prove neither tool passes
everything.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
WORKFLOWS = ROOT / ".github" / "workflows"
PULL_REQUEST = WORKFLOWS / "pull-request.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
PHASE2 = WORKFLOWS / "phase2-monitoring.yml"
GRAPH_COMMENT = WORKFLOWS / "graph-comment.yml"
ALL_WORKFLOWS = (PULL_REQUEST, DEPLOY, PHASE2, GRAPH_COMMENT)
STACKS = ("staging", "production")

# owner/repo[/path]@<40 hex> # vMAJOR.MINOR.PATCH
PINNED_USES = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+$")


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job["steps"]


def step_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if s.get("uses", "").startswith(f"{action}@")]


def run_tool(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=False, cwd=ROOT
    )


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    return run_tool(
        VENV_BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files
    )


def zizmor_findings(*files: Path) -> tuple[int, list[dict[str, Any]]]:
    done = run_tool(
        VENV_BIN / "zizmor",
        "--offline",
        "--persona",
        "auditor",
        "--no-ignores",
        "--no-config",
        "--format",
        "json",
        *files,
    )
    return done.returncode, json.loads(done.stdout)


def test_every_workflow_matches_the_github_workflow_schema() -> None:
    done = check_jsonschema(*ALL_WORKFLOWS)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_zizmor_finds_nothing_in_any_workflow() -> None:
    exit_code, findings = zizmor_findings(*ALL_WORKFLOWS)

    summary = [(f["ident"], f["determinations"]["severity"]) for f in findings]
    assert summary == []
    assert exit_code == 0


BAD_WORKFLOW = """\
name: Bad
on:
  pull_request_target:
jobs:
  greet:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def test_the_tools_reject_what_they_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    invalid = tmp_path / "invalid.yml"
    invalid.write_text("name: Invalid\non: push\njobs:\n  build:\n    steps: []\n")

    exit_code, findings = zizmor_findings(bad)
    high = {f["ident"] for f in findings if f["determinations"]["severity"] == "High"}

    assert exit_code != 0
    assert {"dangerous-triggers", "template-injection", "unpinned-uses"} <= high
    assert check_jsonschema(invalid).returncode == 1


def test_every_action_is_pinned_to_a_commit_with_its_release_in_a_comment() -> None:
    pins: dict[str, set[str]] = {}
    for path in ALL_WORKFLOWS:
        for line in path.read_text().splitlines():
            if "uses:" not in line:
                continue
            match = PINNED_USES.match(line)
            assert match, f"{path.name}: not pinned to a commit SHA with a version comment: {line}"
            pins.setdefault(match[1], set()).add(match[2])
    # One reviewed commit per action across the workflows.
    assert {action: len(shas) for action, shas in pins.items()} == {
        "actions/checkout": 1,
        "actions/setup-python": 1,
        "aws-actions/configure-aws-credentials": 1,
        "github/codeql-action/upload-sarif": 1,
        "pulumi/actions": 1,
    }


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_empty_by_default_and_declared_per_job(path: Path) -> None:
    workflow = load(path)

    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert "contents" in job["permissions"], name
        assert job["permissions"]["contents"] == "read", name
        assert set(job["permissions"].values()) <= {"read", "write"}, name
        assert all(
            scope in ("contents", "id-token", "pull-requests", "security-events")
            for scope in job["permissions"]
        ), name


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_aws_access_is_oidc_only(path: Path) -> None:
    text = path.read_text()
    workflow = load(path)

    assert "AWS_ACCESS_KEY_ID" not in text
    assert "AWS_SECRET_ACCESS_KEY" not in text
    assert "aws-access-key-id" not in text
    for name, job in workflow["jobs"].items():
        for step in step_using(job, "aws-actions/configure-aws-credentials"):
            assert set(step["with"]) == {"role-to-assume", "role-session-name", "aws-region"}
            assert re.fullmatch(
                r"\$\{\{ vars\.AWS_\w+_ROLE_ARN \}\}", step["with"]["role-to-assume"]
            )
            assert job["permissions"]["id-token"] == "write", name


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_is_expanded_inside_a_shell_script(path: Path) -> None:
    # Values reach `run:` through `env:`, never through ${{ }} (template injection).
    for job in load(path)["jobs"].values():
        for step in steps(job):
            assert "${{" not in step.get("run", ""), step["run"]


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_checkouts_keep_no_credentials_and_python_is_3_11(path: Path) -> None:
    for job in load(path)["jobs"].values():
        for checkout in step_using(job, "actions/checkout"):
            assert checkout["with"]["persist-credentials"] is False
            assert set(checkout["with"]) <= {
                "persist-credentials",
                "fetch-depth",
                "ref",
                "path",
                "sparse-checkout",
            }
        assert step_using(job, "actions/setup-python")[0]["with"] == {"python-version": "3.11"}


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_the_pulumi_cli_matches_the_locked_sdk(path: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sdk = next(
        d.split("==")[1] for d in project["project"]["dependencies"] if d.startswith("pulumi==")
    )
    workflow = load(path)
    pulumi_steps = [
        s for job in workflow["jobs"].values() for s in step_using(job, "pulumi/actions")
    ]

    if pulumi_steps:
        assert workflow["env"]["PULUMI_VERSION"] == sdk
    for step in pulumi_steps:
        assert step["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}"
    assert path == GRAPH_COMMENT or pulumi_steps


@pytest.mark.parametrize("path", [PULL_REQUEST, DEPLOY], ids=lambda p: p.name)
def test_the_policy_packs_environment_is_built_before_pulumi_runs_it(path: Path) -> None:
    """The CLI runs the pack from policies/venv; nothing may rely on the CLI creating it."""
    for job in load(path)["jobs"].values():
        runs = [step.get("run", "") for step in steps(job)]
        uses = [step.get("uses", "") for step in steps(job)]
        if not any(step.get("with", {}).get("policyPacks") for step in steps(job)):
            continue
        built = next(i for i, run in enumerate(runs) if "make venv policy-venv" in run)
        pulumi = next(i for i, action in enumerate(uses) if action.startswith("pulumi/actions@"))
        assert built < pulumi


def test_pull_requests_run_make_test_then_preview_both_stacks_with_the_policy_pack() -> None:
    workflow = load(PULL_REQUEST)
    test_job, preview = workflow["jobs"]["test"], workflow["jobs"]["preview"]
    (pulumi,) = step_using(preview, "pulumi/actions")

    assert set(workflow["on"]) == {"pull_request"}
    assert workflow["concurrency"] == {
        "group": "pull-request-${{ github.ref }}",
        "cancel-in-progress": True,
    }
    assert [s["run"] for s in steps(test_job) if "run" in s] == ["make test"]
    assert preview["needs"] == "test"
    assert preview["strategy"]["matrix"]["stack"] == list(STACKS)
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
    assert pulumi["with"]["policyPacks"] == "policies"
    assert pulumi["with"]["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"
    assert pulumi["with"]["comment-on-pr"] is True
    assert pulumi["env"] == {"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}
    # The replacement guard in make test reads the merge base's graphs.
    assert step_using(test_job, "actions/checkout")[0]["with"]["fetch-depth"] == 0
    # Only the jobs that comment may write to pull requests.
    assert preview["permissions"]["pull-requests"] == "write"
    assert "pull-requests" not in test_job["permissions"]
    assert "id-token" not in test_job["permissions"]


def test_pull_requests_run_the_policy_pack_and_upload_its_findings_to_code_scanning() -> None:
    jobs = load(PULL_REQUEST)["jobs"]
    policy = jobs["policy"]
    (upload,) = step_using(policy, "github/codeql-action/upload-sarif")
    condition = " ".join(upload["if"].split())

    assert [s["run"] for s in steps(policy) if "run" in s] == ["make policy"]
    assert steps(policy).index(upload) == len(steps(policy)) - 1
    assert upload["with"] == {"sarif_file": ".build/policy"}
    # After a mandatory violation too (make policy fails), never for forks,
    # whose token cannot write security events.
    assert condition.startswith("!cancelled() && ")
    assert "hashFiles('.build/policy/*.sarif') != ''" in condition
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    # Only the job that uploads may write security events.
    assert policy["permissions"] == {"contents": "read", "security-events": "write"}
    for name, job in jobs.items():
        assert name == "policy" or "security-events" not in job["permissions"], name


def test_every_pull_request_gets_the_graph_difference_without_credentials() -> None:
    graph = load(PULL_REQUEST)["jobs"]["graph"]
    runs = [s for s in steps(graph) if "run" in s]
    compare, post = runs[-2], runs[-1]

    # Not behind the tests nor the fork condition: forks get the difference too.
    assert "needs" not in graph and "if" not in graph and "environment" not in graph
    assert graph["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert step_using(graph, "actions/checkout")[0]["with"]["fetch-depth"] == 0
    assert not step_using(graph, "aws-actions/configure-aws-credentials")
    assert "secrets." not in json.dumps(graph)
    assert compare["run"].startswith(
        '.venv/bin/python -m graphs.diff --against "origin/$BASE_REF" --output "$RUNNER_TEMP/graph-diff.md"\n'
    )
    assert 'cat "$RUNNER_TEMP/graph-diff.md" >> "$GITHUB_STEP_SUMMARY"' in compare["run"]
    assert compare["env"] == {"BASE_REF": "${{ github.base_ref }}"}
    # A fork's token is read-only: only same-repository pull requests post from here.
    assert post["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert (
        post["run"] == '.venv/bin/python -m graphs.comment --body-file "$RUNNER_TEMP/graph-diff.md"'
    )
    assert post["env"] == {
        "GITHUB_TOKEN": "${{ github.token }}",
        "PULL_REQUEST": "${{ github.event.pull_request.number }}",
    }


def test_a_maintainer_posts_the_graph_comment_for_a_fork_without_running_its_code() -> None:
    workflow = load(GRAPH_COMMENT)
    (job,) = workflow["jobs"].values()
    main_checkout, pull_request_checkout = step_using(job, "actions/checkout")
    scripts = "\n".join(s.get("run", "") for s in steps(job))

    assert set(workflow["on"]) == {"workflow_dispatch"}
    assert workflow["on"]["workflow_dispatch"]["inputs"]["pull-request"]["type"] == "number"
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert "ref" not in main_checkout["with"]
    # Only the pull request's graphs/ (JSON and YAML), beside main's code.
    assert pull_request_checkout["with"] == {
        "persist-credentials": False,
        "ref": "refs/pull/${{ inputs.pull-request }}/head",
        "path": "pull-request",
        "sparse-checkout": "graphs",
    }
    # pull-request/ is read once, as the new graphs; everything runs from main's checkout.
    assert scripts.count("pull-request/") == 1
    assert all("working-directory" not in step for step in steps(job))
    assert (
        ".venv/bin/python -m graphs.diff --base-dir graphs --head-dir pull-request/graphs"
        in scripts
    )
    assert steps(job)[-1]["env"] == {
        "GITHUB_TOKEN": "${{ github.token }}",
        "PULL_REQUEST": "${{ inputs.pull-request }}",
    }


def test_main_deploys_staging_then_production_behind_its_environment() -> None:
    workflow = load(DEPLOY)
    jobs = workflow["jobs"]

    assert workflow["on"] == {"push": {"branches": ["main"]}}
    assert list(jobs) == list(STACKS)
    assert "needs" not in jobs["staging"]
    assert jobs["production"]["needs"] == "staging"
    for stack in STACKS:
        job = jobs[stack]
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"deploy-{stack}", "cancel-in-progress": False}
        assert "pull-requests" not in job["permissions"]
        (pulumi,) = step_using(job, "pulumi/actions")
        assert pulumi["with"]["command"] == "up"
        assert pulumi["with"]["stack-name"] == stack
        assert pulumi["with"]["policyPacks"] == "policies"
        assert pulumi["with"]["policyPackConfigs"] == f"policies/config/{stack}.json"
        # pulumi up, then the outputs, then the validator against them.
        order = [s.get("uses", s.get("run", "")) for s in steps(job)]
        up = order.index(pulumi["uses"])
        read, check = order[up + 1], order[up + 2]
        assert read.startswith(
            f"pulumi stack output --json --show-secrets=false --stack {stack} > "
        )
        assert check.startswith(
            f".venv/bin/python -m ops.validate_deployment --stack {stack} --outputs "
        )
        # The validator mints its smoke token: no stored token, no secret in its step.
        validator = steps(job)[up + 2]
        assert " --mint-token " in f"{check} "
        assert "--token" not in check.replace("--mint-token", "")
        assert "env" not in validator
        assert "SMOKE_TEST_TOKEN" not in DEPLOY.read_text()


def test_phase2_monitoring_runs_every_6_hours_and_on_demand_without_deploying() -> None:
    workflow = load(PHASE2)
    (job,) = workflow["jobs"].values()
    scripts = "\n".join(s.get("run", "") for s in steps(job))
    (pulumi,) = step_using(job, "pulumi/actions")

    assert workflow["on"]["schedule"] == [{"cron": "0 */6 * * *"}]
    assert workflow["on"]["workflow_dispatch"]["inputs"]["hours"]["type"] == "number"
    assert workflow["concurrency"]["cancel-in-progress"] is False
    # The monitor environment has no reviewers, so scheduled runs never wait.
    assert job["environment"] == "phase2-monitoring"
    assert "command" not in pulumi["with"]  # installs the CLI only
    assert (
        "pulumi stack output monitor_config --json --show-secrets=false --stack production > "
        in scripts
    )
    assert "pulumi up" not in scripts
    assert (
        'args=(--config "$RUNNER_TEMP/monitor.json" --format markdown --fail-on-violation)'
        in scripts
    )
    assert 'args+=(--hours "$REQUESTED_HOURS")' in scripts
    assert (
        '.venv/bin/python -m handlers.phase2_monitor "${args[@]}" | tee -a "$GITHUB_STEP_SUMMARY"'
        in scripts
    )
    assert steps(job)[-1]["env"] == {"REQUESTED_HOURS": "${{ inputs.hours }}"}
    # pipefail (GitHub's `shell: bash`) keeps the monitor's exit status through tee.
    assert workflow["defaults"]["run"]["shell"] == "bash"


def test_what_the_workflows_run_exists() -> None:
    # The policy pack and the per-stack configs every preview and update passes.
    assert (ROOT / "policies" / "PulumiPolicy.yaml").is_file()
    for stack in STACKS:
        config = json.loads((ROOT / "policies" / "config" / f"{stack}.json").read_text())
        assert isinstance(config, dict)
    # The validator, the monitor, `make policy` and the graph tools the workflows call as modules.
    assert (ROOT / "ops" / "validate_deployment.py").is_file()
    assert (ROOT / "handlers" / "phase2_monitor.py").is_file()
    assert (ROOT / "policy_check" / "__main__.py").is_file()
    assert (ROOT / "graphs" / "diff.py").is_file()
    assert (ROOT / "graphs" / "comment.py").is_file()
