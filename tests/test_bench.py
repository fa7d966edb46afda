"""`make bench`: its arithmetic, its table and JSON, and small runs of its cheap cases.

The full bench takes minutes and never runs here. What runs: the pure logic
(targets, the minimum request formula, percentiles, the row arithmetic of the
report cases), the aggregator case at 30 tenants with every request count
checked exactly, the query and monitor cases through `python -m bench`'s own
entry point, and one tiny report render.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import aggregator, imports, local_api, reports, results, run
from bench.aws_model import LaneExecutor, Timeline, invocations_schedule
from bench.results import Check, Figure, Target
from components.settings import AggregatorSettings

# The keys the issue requires, verbatim.
AGGREGATOR_SIZES = ("t1000", "t10000", "t100000")
ISSUE_KEYS = {
    "aggregator.calls_vs_minimum",
    "aggregator.ce_calls_when_not_due",
    *(
        f"aggregator.{size}.{figure}"
        for size in AGGREGATOR_SIZES
        for figure in (
            "calls_vs_minimum",
            "shards",
            "modeled_wall_seconds",
            "modeled_wall_seconds_costs_not_due",
            "largest_timeout_share",
        )
    ),
    "query.dynamodb_requests_cold_365d",
    "query.dynamodb_requests_warm",
    *(
        f"reports.{case}.{figure}"
        for case in ("csv_10000", "csv_100000", "xlsx_10000", "xlsx_100000", "pdf_20000")
        for figure in ("rows_per_s", "peak_rss_mb")
    ),
    *(
        f"imports.{handler}.ratio_to_boto3"
        for handler in (
            "authorizer",
            "query",
            "reporter",
            "report_engine",
            "aggregator",
            "phase2_monitor",
        )
    ),
    *(
        f"artifacts.{function}_bytes"
        for function in (
            "authorizer",
            "query",
            "reporter",
            "report_engine",
            "aggregator",
            "aggregator_shard",
            "email_consent",
            "phase2_monitor",
            "layer",
        )
    ),
    *(
        f"local_api.{mode}.{figure}"
        for mode in ("keep_alive", "new_connection")
        for figure in ("p50_ms", "p95_ms", "errors")
    ),
    "monitor.get_metric_data_calls",
    "pulumi.program_seconds.staging",
    "pulumi.program_seconds.production",
    "pulumi.resources.staging",
    "pulumi.resources.production",
}


def test_the_table_covers_every_key_of_the_issue_with_its_target():
    keys = {figure.key for figure in results.FIGURES}
    assert keys == ISSUE_KEYS | {"artifacts.auth_layer_bytes"}
    targets = {figure.key: str(figure.target) for figure in results.FIGURES if figure.target}
    assert targets == {
        "aggregator.calls_vs_minimum": "≤ 1.02",
        "aggregator.ce_calls_when_not_due": "= 0",
        **{f"aggregator.{size}.calls_vs_minimum": "≤ 1.02" for size in AGGREGATOR_SIZES},
        **{f"aggregator.{size}.largest_timeout_share": "≤ 0.333" for size in AGGREGATOR_SIZES},
        "aggregator.t100000.modeled_wall_seconds": "< 300",
        "query.dynamodb_requests_cold_365d": "≤ 4",
        "query.dynamodb_requests_warm": "= 1",
        "reports.xlsx_10000.rows_per_s": "≥ 3,000",
        "reports.xlsx_100000.rows_per_s": "≥ 3,000",
        **{
            f"reports.{case}.peak_rss_mb": "< 256"
            for case in ("csv_10000", "csv_100000", "xlsx_10000", "xlsx_100000", "pdf_20000")
        },
        **{
            f"imports.{handler}.ratio_to_boto3": "≤ 1.5"
            for handler in ("authorizer", "query", "reporter", "report_engine")
        },
        "artifacts.layer_bytes": "< 8,300,000",
        "local_api.keep_alive.p95_ms": "< 100",
        "local_api.keep_alive.errors": "= 0",
        "local_api.new_connection.p95_ms": "< 150",
        "local_api.new_connection.errors": "= 0",
        "monitor.get_metric_data_calls": "= 1",
    }


@pytest.mark.parametrize(
    ("target", "value", "met"),
    [
        (Target("<=", 1.1), 1.1, True),
        (Target("<=", 1.1), 1.1001, False),
        (Target("<", 256), 255.9, True),
        (Target("<", 256), 256, False),
        (Target(">=", 3000), 3000, True),
        (Target(">=", 3000), 2999, False),
        (Target("==", 0), 0, True),
        (Target("==", 1), 2, False),
        (Target("==", 1), results.MISSING, False),
        (Target("==", 1), None, False),
    ],
)
def test_targets_compare_as_the_issue_says(target, value, met):
    assert target.met(value) is met


def test_lookup_follows_dotted_keys_and_reports_what_is_missing():
    document = {"a": {"b": {"c": 3}}, "x": 1}
    assert results.lookup(document, "a.b.c") == 3
    assert results.lookup(document, "a.b.d") == results.MISSING
    assert results.lookup(document, "x.y") == results.MISSING


@pytest.mark.parametrize(
    ("value", "shown"),
    [(6673472, "6,673,472"), (1.0061, "1.006"), (2.5, "2.5"), (3.0, "3"), ("missing", "missing")],
)
def test_values_are_shown_readably(value, shown):
    assert results.format_value(value) == shown


def test_the_printed_table_says_which_targets_are_missed_and_what_is_missing():
    figures = (
        Figure("aggregator.calls_vs_minimum", Target("<=", 1.1)),
        Figure("local_api.errors", Target("==", 0)),
        Figure("local_api.p50_ms"),
        Figure("monitor.get_metric_data_calls", Target("==", 1)),
    )
    document = {
        "aggregator": {"calls_vs_minimum": 1.0061},
        "local_api": {"errors": 3, "p50_ms": 12.5},
    }

    table = results.table(results.checks(document, figures))

    assert table.splitlines() == [
        "key                              value  target  met",
        "-----------------------------  -------  ------  ---",
        "aggregator.calls_vs_minimum      1.006  ≤ 1.1   yes",
        "local_api.errors                     3  = 0     NO",
        "local_api.p50_ms                  12.5",
        "monitor.get_metric_data_calls  missing  = 1     NO",
    ]
    assert results.targets_section(results.checks(document, figures)) == {
        "aggregator.calls_vs_minimum": {"target": "≤ 1.1", "met": True},
        "local_api.errors": {"target": "= 0", "met": False},
        "monitor.get_metric_data_calls": {"target": "= 1", "met": False},
    }


def test_the_markdown_table_marks_missed_targets():
    checks = [
        Check("artifacts.layer_bytes", 9_000_000, Target("<", 8_300_000)),
        Check("pulumi.resources.staging", 151, None),
    ]
    assert results.markdown_table(checks).splitlines() == [
        "| figure | value | target | met |",
        "|---|---:|---|---|",
        "| `artifacts.layer_bytes` | 9,000,000 | < 8,300,000 | **no** |",
        "| `pulumi.resources.staging` | 151 |  |  |",
    ]


def test_results_are_replaced_whole(tmp_path):
    target = tmp_path / "results" / "latest.json"
    results.write_atomically(target, {"a": 1})
    results.write_atomically(target, {"b": 2})
    assert json.loads(target.read_text()) == {"b": 2}
    assert [path.name for path in target.parent.iterdir()] == ["latest.json"]


# The aggregator case


def test_the_minimum_for_1000_tenants_follows_the_issue_formula():
    assert aggregator.minimum_requests(
        tenants=1000, days_processed=1, items_written=8001, cost_pages=0, findings_pages=0
    ) == {
        "cloudwatch.GetMetricData": 8,  # 4,000 queries, 500 per request
        "dynamodb.BatchWriteItem": 321,  # ceil(8,001 / 25)
        "cost-explorer.GetCostAndUsage": 0,
        "securityhub.GetFindings": 0,
    }
    assert aggregator.Scenario(tenants=1000, suspended=50, findings=1000).findings_pages == 10
    assert aggregator.Scenario(tenants=3, suspended=0, findings=0).findings_pages == 1


@given(tenants=st.integers(1, 3000), days=st.integers(1, 3), items=st.integers(1, 50_000))
def test_the_minimum_never_undercuts_what_the_apis_allow(tenants, days, items):
    minimum = aggregator.minimum_requests(
        tenants=tenants, days_processed=days, items_written=items, cost_pages=0, findings_pages=0
    )
    assert minimum["cloudwatch.GetMetricData"] * 500 >= 4 * tenants * days
    assert (minimum["cloudwatch.GetMetricData"] - days) * 500 < 4 * tenants * days
    assert (
        minimum["dynamodb.BatchWriteItem"] * 25
        >= items
        > (minimum["dynamodb.BatchWriteItem"] - 1) * 25
    )


def test_cost_pages_split_the_days_and_chain_with_tokens():
    days = [aggregator.FIRST_RUN.date()]
    pages = aggregator.cost_pages(2, days * 4, "SERVICE")
    assert [page.get("NextPageToken") for page in pages] == ["service-page-2", None]
    assert [len(page["ResultsByTime"]) for page in pages] == [2, 2]
    assert len(pages[0]["ResultsByTime"][0]["Groups"]) == 2 * len(aggregator.SERVICES)


def small_scaling(threshold: int) -> AggregatorSettings:
    return AggregatorSettings(
        shard_threshold_tenants=threshold,
        tenants_per_shard=125,
        shard_concurrency=2,
        shard_max_attempts=3,
        write_concurrency=4,
    )


def test_the_aggregator_case_counts_every_request_of_one_invocation():
    section = aggregator.measure(sizes=(30,), scaling=small_scaling(5000), progress=lambda _: None)

    result = section["t30"]
    due, not_due = result["runs"]["costs_due"], result["runs"]["costs_not_due"]
    # 30 tenants x 4 metrics: hourly samples and rollups; 4 days of costs; 30 snapshots; 3 bookkeeping.
    assert due["items_written"] == 240 + 120 + 30 + 3
    assert due["requests"] == {
        "cloudwatch.GetMetricData": 1,
        "cost-explorer.GetCostAndUsage": 4,
        "dynamodb.BatchWriteItem": 17,  # 16 for the data, 1 for the bookkeeping
        "dynamodb.Query": 1,
        "dynamodb.Scan": 1,
        "securityhub.GetFindings": 1,
    }
    assert due["minimum"] == {
        "cloudwatch.GetMetricData": 1,
        "dynamodb.BatchWriteItem": 16,
        "cost-explorer.GetCostAndUsage": 4,
        "securityhub.GetFindings": 1,
    }
    assert (due["requests_total"], due["minimum_total"], due["ratio"]) == (25, 22, 1.1364)
    assert not_due["items_written"] == 240 + 1
    assert not_due["requests"] == {
        "cloudwatch.GetMetricData": 1,
        "dynamodb.BatchWriteItem": 11,
        "dynamodb.Query": 1,
        "dynamodb.Scan": 1,
    }
    assert (result["shards"], result["ce_calls_when_not_due"]) == (0, 0)
    assert result["calls_vs_minimum"] == max(due["ratio"], not_due["ratio"]) == 1.2727
    # Modeled: 1 s per GetMetricData, 17 writes on 4 lanes, 1/3 s per findings page...
    assert due["modeled_seconds"]["wall"] == due["modeled_seconds"]["coordinator"] > 1
    assert due["largest_timeout_share"] == round(due["modeled_seconds"]["coordinator"] / 900, 3)


def test_the_aggregator_case_counts_the_shards_and_schedules_them():
    section = aggregator.measure(sizes=(30,), scaling=small_scaling(1), progress=lambda _: None)

    result = section["t30"]
    due, not_due = result["runs"].values()
    # The account-level reads once, in the coordinator; the usage in one shard.
    assert due["requests"] == {
        "cloudwatch.GetMetricData": 1,
        "cost-explorer.GetCostAndUsage": 4,
        "dynamodb.BatchWriteItem": 15,  # 5 costs and slot 0's snapshots, 10 usage
        "dynamodb.PutItem": 2,  # the run's record, the compliance plan
        "dynamodb.Query": 1,
        "dynamodb.Scan": 1,
        # the coordinator's and the shard's reports, 3 markers and the run's status
        "dynamodb.UpdateItem": 6,
        "securityhub.GetFindings": 1,
        "sqs.SendMessageBatch": 1,
    }
    assert (due["shards"], due["status"], not_due["status"]) == (1, "ok", "ok")
    # 2 reports, last-hour, the compliance slot's marker, status
    assert not_due["requests"]["dynamodb.UpdateItem"] == 5
    # Compliance staggered over the six runs: each reads its slot, every tenant once.
    assert [run["compliance_slots"] for run in result["hourly_runs"]] == [[n] for n in range(6)]
    assert result["get_findings_per_interval"] == {
        "requests": 6,
        "one_whole_read": 1,
        "per_run": [1] * 6,
        "findings_read": 30,
        "findings": 30,
    }
    assert all(run["minimum"]["securityhub.GetFindings"] == 1 for run in (due, not_due))
    modeled = not_due["modeled_seconds"]
    # The shard starts once its message is sent, and pays a cold start.
    assert modeled["shards_done"] >= modeled["coordinator"] + 3
    assert modeled["wall"] == modeled["shards_done"]
    assert not_due["largest_timeout_share"] == round(modeled["slowest_shard"] / 120, 3)


def test_a_schedule_caps_concurrency_scales_up_and_pays_one_cold_start_per_lane():
    spans = invocations_schedule([1.0] * 7, [10.0] * 7, concurrency=6)
    starts = [start for start, _ in spans]
    assert starts[:5] == [1.0] * 5  # 5 at once, then 5 more a second
    assert starts[5] == pytest.approx(1.2)
    assert spans[0][1] == 1.0 + 3.0 + 10.0
    assert spans[6] == (spans[0][1], spans[0][1] + 10.0)  # a warm lane, when one frees


def test_writes_are_scheduled_on_lanes_and_a_full_pool_holds_back_the_caller():
    timeline = Timeline()
    pool = LaneExecutor(timeline, workers=2)
    for _ in range(3):
        pool.submit(timeline.spend, 1.0)
    assert timeline.now == 1.0  # the third waited for a lane
    pool.shutdown()
    assert timeline.now == 2.0


# Reports, imports and the local API: the pure parts


def test_report_cases_have_exactly_the_rows_their_keys_say():
    assert {case.key: case.services for case in reports.CASES} == {
        "csv_10000": 36,
        "csv_100000": 396,
        "xlsx_10000": 36,
        "xlsx_100000": 396,
        "pdf_20000": 76,
    }
    for case in reports.CASES:
        assert reports.DAYS * (4 + case.services) == case.rows
    with pytest.raises(ValueError, match="not 250 days"):
        _ = reports.ReportCase("csv", 10_001).services


def test_a_report_case_takes_the_median_time_and_the_worst_memory():
    case = reports.ReportCase("xlsx", 10_000)
    runs = [
        {"seconds": seconds, "rows": 10_000, "size_bytes": 5, "peak_rss_mb": rss}
        for seconds, rss in ((2.0, 30.0), (1.0, 31.5), (4.0, 29.0))
    ]
    summary = reports.summarise(case, runs)
    assert (summary["seconds_median"], summary["rows_per_s"], summary["peak_rss_mb"]) == (
        2.0,
        5000,
        31.5,
    )
    with pytest.raises(RuntimeError, match="wrote \\[9999\\] rows"):
        reports.summarise(case, [{**run, "rows": 9999} for run in runs])


def test_a_render_reports_its_rows_time_and_memory():
    measured = reports.render_once("csv", days=2, services=3)
    assert measured["rows"] == 2 * (4 + 3)
    assert measured["seconds"] > 0
    assert measured["size_bytes"] > 0
    assert 5 < measured["peak_rss_mb"] < 2048


def test_import_rounds_rotate_so_no_module_always_goes_first():
    keys = ("boto3", "a", "b")
    assert [imports.rotated(keys, index)[0] for index in range(4)] == ["boto3", "a", "b", "boto3"]
    assert imports.module_name("boto3") == "boto3"
    assert imports.module_name("report_engine") == "handlers.report_engine"


def test_percentiles_use_the_nearest_rank():
    values = [float(value) for value in range(1, 501)]
    assert local_api.percentile(values, 0.95) == 475.0
    assert local_api.percentile(values, 0.5) == 250.0
    assert local_api.percentile([7.0], 0.95) == 7.0


def test_the_request_plan_spreads_over_every_route_and_tenant():
    plan = local_api.request_plan(500)
    assert len(plan) == 500
    assert {tenant for tenant, _ in plan} == set(local_api.TENANTS)
    assert {path for _, path in plan} == set(local_api.PATHS)


def test_cpu_time_counts_what_a_process_spent():
    before = local_api.cpu_seconds(os.getpid())
    spent = time.process_time()
    while time.process_time() - spent < 0.3:
        pass
    assert local_api.cpu_seconds(os.getpid()) - before >= 0.2


def test_the_stack_processes_are_the_front_door_and_its_one_child():
    # Both wait for the end of the pipe they share as stdin.
    waits = "import sys; sys.stdin.read()"
    starts_one_child = (
        "import subprocess, sys;"
        f" print(subprocess.Popen([sys.executable, '-c', {waits!r}]).pid, flush=True); {waits}"
    )
    with subprocess.Popen(
        [sys.executable, "-c", starts_one_child],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as stack:
        assert stack.stdin is not None and stack.stdout is not None
        child = int(stack.stdout.readline())
        processes = local_api.stack_processes(stack.pid)
        stack.stdin.close()
    assert processes == {"front_door": stack.pid, "emulator": child}


# The entry point


def test_cheap_cases_run_end_to_end_and_write_their_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOG_LEVEL", "INFO")  # restored afterwards; the bench lowers it
    output = tmp_path / "partial.json"

    status = run.main(["--only", "query,monitor", "--output", str(output)])

    assert status == 0
    document = json.loads(output.read_text())
    assert list(document) == ["meta", "query", "monitor", "targets"]
    assert document["query"]["dynamodb_requests_cold_365d"] == 3
    assert document["query"]["requests_cold_365d"] == {
        "dynamodb.GetItem": 1,
        "dynamodb.PutItem": 1,
        "dynamodb.Query": 1,
    }
    assert document["query"]["requests_warm"] == {"dynamodb.GetItem": 1}
    assert document["monitor"]["get_metric_data_calls"] == 1
    assert document["monitor"]["violations"] == 0
    assert document["targets"] == {
        "query.dynamodb_requests_cold_365d": {"target": "≤ 4", "met": True},
        "query.dynamodb_requests_warm": {"target": "= 1", "met": True},
        "monitor.get_metric_data_calls": {"target": "= 1", "met": True},
    }
    assert document["meta"]["errors"] == {}
    assert document["meta"]["machine"]["cpu_count"] >= 1
    printed = capsys.readouterr().out
    assert re.search(r"\nquery\.dynamodb_requests_warm +1  = 1 +yes\n", printed)


def test_a_crashed_case_is_reported_the_others_still_run_and_the_status_is_1(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    measured = []

    def run_case(case: run.Case, repeats: int) -> dict:
        measured.append(case.name)
        if case.name == "artifacts":
            raise RuntimeError("pip could not reach the index")
        return {"get_metric_data_calls": 1}

    monkeypatch.setattr(run, "run_case", run_case)
    output = tmp_path / "results.json"

    status = run.main(["--only", "artifacts,monitor", "--output", str(output)])

    assert status == 1
    assert measured == ["artifacts", "monitor"]
    document = json.loads(output.read_text())
    assert document["meta"]["errors"] == {
        "artifacts": "RuntimeError: pip could not reach the index"
    }
    assert document["targets"]["artifacts.layer_bytes"] == {"target": "< 8,300,000", "met": False}
    printed = capsys.readouterr().out
    assert re.search(r"\nartifacts\.layer_bytes +missing  < 8,300,000  NO\n", printed)
    assert "crashed: artifacts" in printed


def test_a_partial_run_without_output_leaves_the_results_file_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    default = tmp_path / "latest.json"
    monkeypatch.setattr(run, "DEFAULT_OUTPUT", default)
    monkeypatch.setattr(run, "run_case", lambda case, repeats: {"get_metric_data_calls": 1})

    assert run.main(["--only", "monitor"]) == 0
    assert not default.exists()


def test_markdown_prints_the_table_of_a_results_file(tmp_path, capsys):
    output = tmp_path / "latest.json"
    results.write_atomically(output, {"monitor": {"get_metric_data_calls": 1}})

    assert run.main(["--markdown", "--output", str(output)]) == 0

    printed = capsys.readouterr().out.splitlines()
    assert "| `monitor.get_metric_data_calls` | 1 | = 1 | yes |" in printed
    assert "| `aggregator.calls_vs_minimum` | missing | ≤ 1.02 | **no** |" in printed


@pytest.mark.parametrize("argv", [["--repeats", "0"], ["--only", "everything"], ["--only", ","]])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_request:
        run.main(argv)
    assert exit_request.value.code == 2
    assert "python -m bench" in capsys.readouterr().err


def test_committed_results_hold_every_key_of_the_issue():
    committed = Path(run.DEFAULT_OUTPUT)
    document = json.loads(committed.read_text())
    assert {key for key in ISSUE_KEYS if results.lookup(document, key) == results.MISSING} == set()
    assert document["meta"]["repeats"] >= 5
    assert document["meta"]["errors"] == {}


def test_the_aggregator_case_scales_as_the_committed_production_stack() -> None:
    # A clone holds no production paging webhook (a secret the operator sets); the
    # aggregator case needs none of it and still reads production's committed sizing.
    scaling = aggregator.production_scaling()
    assert (scaling.shard_threshold_tenants, scaling.shard_concurrency) == (5000, 20)
