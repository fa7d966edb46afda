"""The resource graph: committed and current, deterministic, and guarding stateful data.

The real program runs once per stack for the whole session. The replacement
guard is exercised end to end on small programs (the real AnalyticsData
component and a table) run through the same mocks, so aliases reach the guard
exactly as the Pulumi SDK sends them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from components.phase2_monitor import schedule_window
from graphs import ACKNOWLEDGEMENTS, STACKS, graph_path
from graphs import comment as graph_comment
from graphs.base import Base, acknowledgements, find_base, read_acknowledgements
from graphs.build import SECRET, graph_of, render
from graphs.compare import compare
from graphs.diff import MARKER
from graphs.diff import main as diff_main
from tests.pulumi_program import (
    PROGRAM_NOW,
    Deployment,
    Resource,
    committed_deployment,
    run_program,
    stack_config,
)

PROJECT_URN = "urn:pulumi:production::securebase-analytics::"
TABLE = "aws:dynamodb/table:Table"


@pytest.fixture(scope="session")
def program_graphs() -> dict[str, dict[str, Any]]:
    return {stack: graph_of(committed_deployment(stack)) for stack in STACKS}


@pytest.fixture(scope="session")
def base() -> Base:
    return find_base()


# --- the committed graph ---------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_committed_graph_is_the_programs(stack: str, program_graphs: dict) -> None:
    path = graph_path(stack)
    committed = path.read_text() if path.is_file() else ""
    current = render(program_graphs[stack])
    if committed != current:
        diff = compare(json.loads(committed), program_graphs[stack]) if committed else None
        what = (
            f"{len(diff.added)} added, {len(diff.changed)} changed, {len(diff.removed)} removed"
            if diff
            else "missing"
        )
        pytest.fail(
            f"graphs/{stack}.json is stale ({what}): run `make graph` and commit the result",
            pytrace=False,
        )


@pytest.mark.parametrize("stack", STACKS)
def test_no_stateful_resource_is_deleted_or_replaced_unacknowledged(
    stack: str, program_graphs: dict, base: Base
) -> None:
    old = base.graphs[stack]
    if old is None:
        pytest.skip(f"no graphs/{stack}.json at {base.where}")
    diff = compare(old, program_graphs[stack], acknowledgements(base))

    lines = [f"- {v.type} {v.urn} would be {v.what}: {v.why}" for v in diff.unacknowledged]
    if lines:
        pytest.fail(
            f"compared with {base.where}, stateful data of {stack} would be lost:\n"
            + "\n".join(lines)
            + "\nIf that is meant, add each URN with the reason to"
            f" graphs/{ACKNOWLEDGEMENTS.name}; otherwise add an alias or undo the change.",
            pytrace=False,
        )


def test_the_graph_runs_the_program_at_a_fixed_moment(program_graphs: dict) -> None:
    # The Phase 2 schedule's dates are what the window gives at PROGRAM_NOW, whatever today is.
    config = stack_config("production")
    expected = schedule_window(
        dt.date.fromisoformat(config["securebase-analytics:phase2WindowStart"]),
        int(config["securebase-analytics:phase2WindowDays"]),
        PROGRAM_NOW,
    )
    (schedule,) = (
        r
        for r in program_graphs["production"]["resources"]
        if r["name"] == "phase2-monitor-schedule"
    )

    assert program_graphs["production"]["programTime"] == "2026-11-23T14:00:00Z"
    assert schedule["inputs"].get("startDate") == expected.start_date
    assert schedule["inputs"].get("endDate") == expected.end_date
    assert schedule["inputs"]["state"] == ("ENABLED" if expected.enabled else "DISABLED")


def test_every_resource_is_recorded_with_its_options(program_graphs: dict) -> None:
    resources = {r["name"]: r for r in program_graphs["production"]["resources"]}
    table = resources["analytics-data-metrics"]
    function = resources["analytics-api-query"]

    assert [r["urn"] for r in program_graphs["production"]["resources"]] == sorted(
        r["urn"] for r in program_graphs["production"]["resources"]
    )
    assert table["urn"] == (
        PROJECT_URN
        + "securebase:analytics:AnalyticsData$aws:dynamodb/table:Table::analytics-data-metrics"
    )
    assert table["parent"] == PROJECT_URN + "securebase:analytics:AnalyticsData::analytics-data"
    assert table["provider"] == PROJECT_URN + "pulumi:providers:aws::aws"
    assert (table["protect"], table["retainOnDelete"], table["deleteBeforeReplace"]) == (
        True,
        False,
        False,
    )
    assert table["inputs"]["hashKey"] == "pk"
    assert function["protect"] is False
    assert function["inputs"]["code"]["archive"].startswith("sha256:")
    assert "/" not in function["inputs"]["code"]["archive"].removeprefix("sha256:")


# --- normalisation and determinism ---------------------------------------------


def _recorded(name: str, wire_inputs: dict[str, Any], **options: Any) -> Resource:
    return Resource(
        type=TABLE,
        name=name,
        urn=f"urn:pulumi:staging::securebase-analytics::{TABLE}::{name}",
        inputs={},
        outputs={},
        parent="urn:pulumi:staging::securebase-analytics::pulumi:pulumi:Stack::s",
        provider="urn:pulumi:staging::securebase-analytics::pulumi:providers:aws::aws::some-id",
        protect=False,
        dependencies=options.pop("dependencies", []),
        custom=True,
        wire_inputs=wire_inputs,
        **options,
    )


SIG = "4dabf18193072939515e22adb298388d"


def test_secrets_assets_and_archives_are_stable_markers(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "code.zip", tmp_path / "b" / "code.zip"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes(b"PK same bytes")
    secret = {SIG: "1b47061264138c4ac30d75fd1eb44270", "value": "hunter2"}

    def graph(archive: Path) -> dict[str, Any]:
        resource = _recorded(
            "t",
            {
                "code": {SIG: "0def7320c3a5731c473e5ecbe6d01bc7", "path": str(archive)},
                "text": {SIG: "c44067f5952c0a294b673a41bacd8c17", "text": "hello"},
                "webhook": secret,
                "headers": [{"token": secret}],
                "ref": {SIG: "5cf8f73096256a8f31e491e813e4eb8e", "urn": "urn:x", "id": "i-1"},
            },
        )
        return graph_of(Deployment("staging", [resource], {}))["resources"][0]

    inputs = graph(first)["inputs"]

    assert graph(second) == graph(first)
    assert inputs["webhook"] == SECRET
    assert inputs["headers"] == [{"token": SECRET}]
    assert "hunter2" not in json.dumps(inputs)
    assert inputs["code"] == {"archive": "sha256:" + hashlib.sha256(b"PK same bytes").hexdigest()}
    assert inputs["text"] == {
        "asset": "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    }
    assert inputs["ref"] == {"resource": "urn:x"}
    second.write_bytes(b"PK other bytes")
    assert graph(second)["inputs"]["code"] != inputs["code"]


def test_registration_order_and_provider_ids_do_not_change_the_bytes() -> None:
    a = _recorded("a", {"name": "a"}, dependencies=["urn:z", "urn:y"])
    b = _recorded("b", {"name": "b"})
    b_elsewhere = _recorded("b", {"name": "b"})
    b_elsewhere.provider = b_elsewhere.provider.replace("some-id", "another-id")

    one = render(graph_of(Deployment("staging", [a, b], {})))
    other = render(graph_of(Deployment("staging", [b_elsewhere, a], {})))

    assert one == other
    assert json.loads(one)["resources"][0]["dependencies"] == ["urn:y", "urn:z"]


# --- the replacement guard, end to end -----------------------------------------

PROGRAM = """\
import pulumi
import pulumi_aws as aws

from components.data import AnalyticsData, AnalyticsDataArgs

AnalyticsData(
    {name!r},
    AnalyticsDataArgs(
        name_prefix="securebase-production",
        account_id="123456789012",
        report_retention_days=90,
        access_log_retention_days=30,
        is_production=True,
    ),
    opts=pulumi.ResourceOptions(aliases={aliases}),
)
aws.dynamodb.Table(
    "orders",
    name="securebase-production-orders",
    billing_mode={billing!r},
    hash_key={hash_key!r},
    attributes=[aws.dynamodb.TableAttributeArgs(name={hash_key!r}, type="S")],
)
if {topic}:
    aws.sns.Topic(
        "notices",
        name="securebase-production-notices",
        display_name=pulumi.Output.secret("internal notices"),
    )
"""


def small_program(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    values = {
        "name": "analytics-data",
        "aliases": "None",
        "hash_key": "order_id",
        "billing": "PAY_PER_REQUEST",
        "topic": True,
    }
    values.update(changes)
    path = tmp_path / "program.py"
    path.write_text(PROGRAM.format(**values))
    return graph_of(run_program("production", program=path))


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return small_program(tmp_path_factory.mktemp("before"))


def test_a_secret_the_program_passes_is_only_a_marker(before: dict) -> None:
    (topic,) = (r for r in before["resources"] if r["name"] == "notices")

    assert topic["inputs"]["displayName"] == SECRET
    assert "internal notices" not in render(before)


def test_a_renamed_component_without_an_alias_is_refused(before: dict, tmp_path: Path) -> None:
    diff = compare(before, small_program(tmp_path, name="data"))
    deleted = {v.urn.rsplit("::", 1)[1] for v in diff.violations if v.what == "deleted"}

    assert {
        "analytics-data-metrics",
        "analytics-data-reports",
        "analytics-data-report-schedules",
        "analytics-data-report-cache",
        "analytics-data-data-key",
        "analytics-data-access-logs",
    } <= deleted
    assert diff.unacknowledged == diff.violations


def test_the_same_rename_with_an_alias_keeps_every_urn(before: dict, tmp_path: Path) -> None:
    after = small_program(tmp_path, name="data", aliases='[pulumi.Alias(name="analytics-data")]')
    diff = compare(before, after)
    renamed = {c.old["name"]: c.new["name"] for c in diff.changed if c.renamed}

    assert diff.violations == []
    assert diff.added == diff.removed == []
    # Children and grandchildren follow their parent's alias, old name prefix included.
    assert renamed["analytics-data-metrics"] == "data-metrics"
    assert renamed["analytics-data-reports-versioning"] == "data-reports-versioning"
    assert all(c.forced == () for c in diff.changed)
    # Only what refers to the KMS key's id changes: the mocks derive an id from
    # the logical name, where AWS keeps the key's id.
    assert {c.new["name"] for c in diff.changed if c.inputs} == {
        "data-data-key-alias",
        "data-reports-encryption",
    }


def test_a_changed_table_hash_key_is_refused(before: dict, tmp_path: Path) -> None:
    diff = compare(before, small_program(tmp_path, hash_key="tenant_id"))

    (violation,) = diff.violations
    assert violation.urn == PROJECT_URN + f"{TABLE}::orders"
    assert violation.what == "replaced"
    assert "hashKey changes from 'order_id' to 'tenant_id'" in violation.why
    assert "dynamodb/table.go" in violation.why
    assert violation.acknowledged is None


def test_an_acknowledged_hash_key_change_passes(before: dict, tmp_path: Path) -> None:
    urn = PROJECT_URN + f"{TABLE}::orders"
    diff = compare(before, small_program(tmp_path, hash_key="tenant_id"), {urn: "empty so far"})

    assert diff.unacknowledged == []
    assert [(v.urn, v.acknowledged) for v in diff.violations] == [(urn, "empty so far")]


def test_a_changed_key_type_or_a_deleted_stateless_resource_is_told_apart(
    before: dict, tmp_path: Path
) -> None:
    after = small_program(tmp_path, topic=False)
    orders = next(r for r in after["resources"] if r["name"] == "orders")
    orders["inputs"]["attributes"][0]["type"] = "N"
    diff = compare(before, after)

    assert [r["name"] for r in diff.removed] == ["notices"]
    assert [(v.urn.rsplit("::", 1)[1], v.what) for v in diff.violations] == [("orders", "replaced")]
    assert "hashKey type changes from 'S' to 'N'" in diff.violations[0].why


# --- acknowledgements and the base ---------------------------------------------


def test_an_acknowledgement_lets_through_only_the_change_that_adds_it(tmp_path: Path) -> None:
    path = tmp_path / ACKNOWLEDGEMENTS.name
    path.write_text(
        "acknowledgements:\n"
        "  - {urn: 'urn:pulumi:s::p::t::old', reason: merged long ago}\n"
        "  - {urn: 'urn:pulumi:s::p::t::new', reason: exported first}\n"
    )
    merged = Base("the base", {}, frozenset({("urn:pulumi:s::p::t::old", "merged long ago")}))

    assert acknowledgements(merged, path) == {"urn:pulumi:s::p::t::new": "exported first"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{urn: 'urn:pulumi:s::p::t::n'}", "entry 1 (urn:pulumi:s::p::t::n) needs a `reason`"),
        ("{urn: 'orders', reason: why}", "entry 1 needs a `urn` (urn:pulumi:...)"),
    ],
)
def test_an_acknowledgement_needs_an_urn_and_a_reason(entry: str, message: str) -> None:
    with pytest.raises(
        ValueError, match=r"^acks.yaml: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        read_acknowledgements(f"acknowledgements:\n  - {entry}\n", "acks.yaml")


GIT_IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false")


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *GIT_IDENTITY, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_the_base_is_the_merge_base_then_head(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GRAPH_BASE", raising=False)
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    git(tmp_path, "init", "-q", "-b", "main")
    (graphs / "staging.json").write_text('{"stack": "staging", "resources": [], "v": 1}')
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "v1")
    git(tmp_path, "checkout", "-qb", "feature")
    (graphs / "staging.json").write_text('{"stack": "staging", "resources": [], "v": 2}')
    git(tmp_path, "commit", "-qam", "v2")

    on_branch = find_base(("staging",), root=tmp_path)
    git(tmp_path, "checkout", "-q", "main")
    git(tmp_path, "branch", "-qD", "feature")
    git(tmp_path, "branch", "-qm", "main", "trunk")  # no main: HEAD's committed graph
    on_head = find_base(("staging",), root=tmp_path)
    monkeypatch.setenv("GRAPH_BASE", "trunk")
    with_override = find_base(("staging",), root=tmp_path)

    assert on_branch.graphs["staging"]["v"] == 1
    assert "(the merge base with main)" in on_branch.where
    assert (on_head.where, on_head.graphs["staging"]["v"]) == ("the graphs committed at HEAD", 1)
    assert "(the merge base with trunk)" in with_override.where


# --- the pull request comment ---------------------------------------------------


def write_dir(directory: Path, graph: dict[str, Any], acks: str = "") -> Path:
    directory.mkdir()
    graph_path("production", directory).write_text(render(graph))
    if acks:
        (directory / ACKNOWLEDGEMENTS.name).write_text(acks)
    return directory


def test_the_diff_script_renders_two_graphs_as_markdown(before: dict, tmp_path: Path) -> None:
    after = small_program(tmp_path, hash_key="tenant_id", billing="PROVISIONED", topic=False)
    after["resources"] = [r for r in after["resources"] if r["name"] != "analytics-data-data-key"]
    old = write_dir(tmp_path / "old", before)
    new = write_dir(
        tmp_path / "new",
        after,
        f"acknowledgements:\n  - urn: {PROJECT_URN}{TABLE}::orders\n    reason: nothing stored yet\n",
    )
    output = tmp_path / "diff.md"

    assert (
        diff_main(
            [
                "--base-dir",
                str(old),
                "--head-dir",
                str(new),
                "--stack",
                "production",
                "--output",
                str(output),
            ]
        )
        == 0
    )
    markdown = output.read_text()

    assert markdown.startswith(MARKER + "\n## Resource graph\n")
    assert "### production: 0 to create, 1 to change (1 replaced), 2 to delete" in markdown
    assert "| ± | `orders` | `aws:dynamodb/table:Table` | **replace**: `hashKey` |" in markdown
    assert "| - | `notices` | `aws:sns/topic:Topic` | **delete** |" in markdown
    assert "| - | `analytics-data-data-key` | `aws:kms/key:Key` | **delete** |" in markdown
    assert "> **Stateful data would be lost.**" in markdown
    assert "`analytics-data-data-key` would be **deleted**" in markdown
    assert "- `orders` replaced: nothing stored yet" in markdown
    assert "`orders` would be" not in markdown  # acknowledged, so not among the losses


def test_an_added_resource_and_changed_inputs_are_listed(before: dict, tmp_path: Path) -> None:
    after = json.loads(json.dumps(before))
    orders = next(r for r in after["resources"] if r["name"] == "orders")
    orders["inputs"]["billingMode"] = "PROVISIONED"
    orders["inputs"]["tags"] = {"Owner": "finance"}
    extra = dict(orders, urn=orders["urn"] + "-archive", name="orders-archive")
    after["resources"].append(extra)
    out = tmp_path / "diff.md"

    diff_main(
        [
            "--base-dir",
            str(write_dir(tmp_path / "a", before)),
            "--head-dir",
            str(write_dir(tmp_path / "b", after)),
            "--stack",
            "production",
            "--output",
            str(out),
        ]
    )
    markdown = out.read_text()

    assert "### production: 1 to create, 1 to change (0 replaced), 0 to delete" in markdown
    assert "| + | `orders-archive` | `aws:dynamodb/table:Table` | create |" in markdown
    assert (
        "| ~ | `orders` | `aws:dynamodb/table:Table` | update: `billingMode`, `tags` |" in markdown
    )
    assert "CAUTION" not in markdown


class FakeGitHub(BaseHTTPRequestHandler):
    """The three issue-comment endpoints graphs.comment uses, in memory."""

    comments: list[dict[str, Any]]

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        assert self.headers["Authorization"] == "Bearer t0ken"
        path, _, query = self.path.partition("?")
        params = dict(p.split("=") for p in query.split("&"))
        assert path == "/repos/acme/analytics/issues/7/comments"
        size, page = int(params["per_page"]), int(params["page"])
        self._answer(200, self.comments[(page - 1) * size : page * size])

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        comment = {
            "id": len(self.comments) + 1,
            "body": body["body"],
            "user": {"login": "github-actions[bot]"},
            "html_url": f"https://github.test/c/{len(self.comments) + 1}",
        }
        self.comments.append(comment)
        self._answer(201, comment)

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        comment_id = int(self.path.rsplit("/", 1)[1])
        comment = next(c for c in self.comments if c["id"] == comment_id)
        comment["body"] = body["body"]
        self._answer(200, comment)


@pytest.fixture
def fake_github() -> Iterator[tuple[graph_comment.GitHub, list[dict[str, Any]]]]:
    comments: list[dict[str, Any]] = [
        {"id": 1000 + i, "body": f"review {i}", "user": {"login": "someone"}, "html_url": ""}
        for i in range(120)
    ]
    # A person quoting the marker does not get their comment overwritten.
    comments.append(
        {"id": 2000, "body": MARKER + " quoted", "user": {"login": "someone"}, "html_url": ""}
    )
    handler = type("Handler", (FakeGitHub,), {"comments": comments})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield (
            graph_comment.GitHub(
                f"http://127.0.0.1:{server.server_port}", "t0ken", "acme/analytics"
            ),
            comments,
        )
    finally:
        server.shutdown()
        server.server_close()


def test_one_comment_is_posted_then_updated_in_place(fake_github) -> None:
    github, comments = fake_github
    first, second = MARKER + "\nfirst", MARKER + "\nsecond"

    created = graph_comment.upsert(github, 7, first)
    updated = graph_comment.upsert(github, 7, second)
    unchanged = graph_comment.upsert(github, 7, second)

    ours = [c for c in comments if c["user"]["login"] == "github-actions[bot]"]
    assert [c["body"] for c in ours] == [second]
    assert created.startswith("created ") and updated.startswith("updated ")
    assert unchanged.startswith("unchanged ")
    assert comments[120]["body"] == MARKER + " quoted"
    assert len(comments) == 122
