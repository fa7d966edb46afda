"""Sharded aggregator runs against moto: the coordinator, the shards and the run's ledger.

The shard queue is a moto queue: the coordinator's messages are received as
Lambda's event source mapping would receive them (ApproximateReceiveCount
included) and handed to the real shard code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from handlers import aggregator, aggregator_shard
from handlers.shared import env
from handlers.shared.aggregation.shards import ShardTask
from handlers.shared.aggregator.ledger import Participation, RunLedger
from handlers.shared.aggregator.runtime import Sharding, ShardSettings
from handlers.shared.dynamo import BatchWriter, serialize
from handlers.shared.telemetry import counting_requests
from local.shards import InProcessShards
from tests import test_aggregator
from tests.test_aggregator import (
    ACME_ACCOUNT,
    METRICS_TABLE,
    NOW,
    SETTINGS,
    Proxy,
    add_customers,
    asff,
    cost_result,
    hour,
    moto_clients,
    partition,
    put_usage,
    queue_cost_results,
    set_state,
    table,
)

QUEUE = "securebase-test-analytics-aggregator-shards"
# 300 active tenants: shards of 125, 125 and 50 (125 tenants fill one GetMetricData request).
TENANTS = [f"tenant-{index:03d}" for index in range(300)]
SHARD_SETTINGS = ShardSettings(usage=SETTINGS.usage, max_attempts=3)
COMPLETED_AT = NOW + dt.timedelta(minutes=2)


@pytest.fixture
def clients() -> Iterator[aggregator.Clients]:
    with moto_clients() as moto:
        yield moto


@pytest.fixture
def queue_url(clients) -> str:
    return clients.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]


def sharded_settings(queue_url: str, threshold: int = 200) -> aggregator.Settings:
    return dataclasses.replace(
        SETTINGS, sharding=Sharding(queue_url=queue_url, threshold=threshold, tenants_per_shard=125)
    )


def add_roster(clients) -> None:
    add_customers(
        clients,
        [
            {"customer_id": tenant, "status": "active", "aws_account_id": f"{100000000000 + i}"}
            for i, tenant in enumerate(TENANTS)
        ],
    )
    for tenant in (TENANTS[0], TENANTS[130], TENANTS[299]):
        put_usage(clients, tenant, hour(23, 13), "ApiCalls", 7)


def plan_item(slots: list[list[str]], planned: dt.datetime) -> dict[str, Any]:
    return serialize(
        {
            "pk": "#aggregator",
            "sk": "compliance-plan",
            "slots": slots,
            "planned_hour": planned.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )


def not_due(clients) -> None:
    """Costs and compliance (whole, and every slot of a staggered refresh) read an hour ago."""
    test_aggregator.not_due(clients)
    clients.dynamodb.put_item(
        TableName=METRICS_TABLE,
        Item=plan_item([list("0123456789"), [], [], [], [], []], hour(23, 9)),
    )
    set_state(
        clients,
        **{f"compliance-refresh#{slot}": NOW - dt.timedelta(hours=1) for slot in range(6)},
    )


def receive(clients, queue_url: str) -> list[dict[str, Any]]:
    """The queue's messages as the event source mapping hands them to the shard function."""
    records = []
    while True:
        messages = clients.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["ApproximateReceiveCount"],
            VisibilityTimeout=0,
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in {r["messageId"] for r in records}]
        if not fresh:
            return sorted(records, key=lambda r: json.loads(r["body"])["shard_id"])
        records += [
            {"messageId": m["MessageId"], "body": m["Body"], "attributes": m["Attributes"]}
            for m in fresh
        ]


def shard(clients, record: dict[str, Any], attempt: int = 1, **overrides: Any):
    delivered = {**record, "attributes": {"ApproximateReceiveCount": str(attempt)}}
    used = dataclasses.replace(clients, **overrides) if overrides else clients
    return aggregator_shard.process(
        [delivered], now=COMPLETED_AT, settings=SHARD_SETTINGS, clients=used
    )


def run_item(clients) -> dict[str, Any]:
    (run,) = [item for sk, item in partition(clients, "#aggregator-runs").items() if "#" not in sk]
    return run


def test_a_roster_below_the_threshold_stays_one_invocation(clients, queue_url):
    add_roster(clients)
    not_due(clients)

    summary = aggregator.run(now=NOW, clients=clients, settings=sharded_settings(queue_url, 301))

    assert "run_id" not in summary
    assert summary["requests"]["cloudwatch.GetMetricData"] == 3  # 1,200 queries, 500 a request
    assert "sqs.SendMessageBatch" not in summary["requests"]
    assert receive(clients, queue_url) == []
    assert partition(clients, "#aggregator")["last-hour"]["at"] == "2026-11-23T13:00:00Z"


def test_a_roster_at_the_threshold_is_sent_as_shards_of_whole_query_batches(clients, queue_url):
    add_roster(clients)
    not_due(clients)

    summary = aggregator.run(now=NOW, clients=clients, settings=sharded_settings(queue_url, 300))

    records = receive(clients, queue_url)
    tasks = [ShardTask.from_message(record["body"]) for record in records]
    assert [len(task.tenants) for task in tasks] == [125, 125, 50]
    assert [tenant for task in tasks for tenant in task.tenants] == TENANTS
    assert {(task.first_hour, task.last_hour, task.now) for task in tasks} == {
        (hour(23, 13), hour(23, 13), NOW)
    }
    assert (summary["status"], summary["shards"], summary["run"]) == ("dispatched", 3, None)
    # The coordinator reads no usage itself: that is the shards' work.
    assert summary["requests"] == {
        "dynamodb.PutItem": 1,
        "dynamodb.Query": 1,
        "dynamodb.Scan": 1,
        "dynamodb.UpdateItem": 1,
        "sqs.SendMessageBatch": 1,
    }
    run = run_item(clients)
    assert (run["status"], run["pending"], run["done"]) == ("running", 3, {"coordinator"})


def test_shards_write_what_one_invocation_would():
    with moto_clients() as single:
        add_roster(single)
        not_due(single)
        aggregator.run(now=NOW, clients=single, settings=SETTINGS)
        expected = table(single)

    with moto_clients() as clients:
        queue_url = clients.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        add_roster(clients)
        not_due(clients)
        aggregator.run(now=NOW, clients=clients, settings=sharded_settings(queue_url, 300))
        for record in receive(clients, queue_url):
            assert shard(clients, record).response() == {"batchItemFailures": []}

        assert {k: v for k, v in table(clients).items() if k[0] != "#aggregator-runs"} == expected
        assert run_item(clients)["status"] == "ok"


def test_one_cost_explorer_and_one_security_hub_read_per_sharded_run(clients, queue_url):
    add_roster(clients)
    clients.securityhub.batch_import_findings(
        Findings=[asff("100000000000", "S3.1", "FAILED", "HIGH", "bucket")]
    )
    queue_cost_results(
        cost_result({"2026-11-23": [("100000000000", "AWS Lambda", "1")]}),
        cost_result({"2026-11-23": [("100000000000", "us-east-1", "1")]}),
    )
    in_process = InProcessShards(SHARD_SETTINGS, clients, clock=lambda: COMPLETED_AT)

    summary = aggregator.run(
        now=NOW, clients=clients, settings=sharded_settings(queue_url, 300), dispatcher=in_process
    )

    # Counted on every client, shards included: the account-level reads happen once.
    assert summary["requests"]["cost-explorer.GetCostAndUsage"] == 2
    assert summary["requests"]["securityhub.GetFindings"] == 1
    assert summary["requests"]["cloudwatch.GetMetricData"] == 3
    assert (summary["costs"], summary["compliance"]) == ("fetched", "fetched")
    assert partition(clients, TENANTS[0])["S#2026-11-23"]["failed_controls"] == 1
    assert partition(clients, TENANTS[0])["C#2026-11-23"]["total"] == 1
    # Every shard reported before the coordinator, so the coordinator completed the run.
    assert summary["run"]["status"] == summary["status"] == "ok"
    # The stack's first sharded run plans the staggered compliance refresh and reads slot 0.
    assert summary["compliance_slots"] == [0]
    bookkeeping = partition(clients, "#aggregator")
    assert {sk: item["at"] for sk, item in bookkeeping.items() if "at" in item} == {
        "last-hour": "2026-11-23T13:00:00Z",
        "cost-refresh": "2026-11-23T14:05:00Z",
        "compliance-refresh#0": "2026-11-23T14:05:00Z",
    }
    assert bookkeeping["compliance-plan"]["planned_hour"] == "2026-11-23T14:00:00Z"


def test_bookkeeping_advances_only_after_every_shard_has_reported(clients, queue_url):
    add_roster(clients)
    set_state(clients, last_hour=hour(23, 11))
    not_due(clients)
    aggregator.run(now=NOW, clients=clients, settings=sharded_settings(queue_url, 300))
    first, second, third = receive(clients, queue_url)

    for record in (third, first):
        processed = shard(clients, record)
        assert processed.finished_runs == []
        assert partition(clients, "#aggregator")["last-hour"]["at"] == "2026-11-23T11:00:00Z"
    processed = shard(clients, second)

    (finished,) = processed.finished_runs
    assert partition(clients, "#aggregator")["last-hour"]["at"] == "2026-11-23T13:00:00Z"
    assert {key: finished[key] for key in ("status", "hours", "shards", "failed_shards")} == {
        "status": "ok",
        "hours": 2,  # 12:00 and 13:00
        "shards": 3,
        "failed_shards": 0,
    }
    assert run_item(clients)["finished_at"] == "2026-11-23T14:07:00Z"


def test_rerunning_a_shard_writes_the_same_items_and_reports_once(clients, queue_url):
    add_roster(clients)
    not_due(clients)
    aggregator.run(now=NOW, clients=clients, settings=sharded_settings(queue_url, 300))
    first, *_ = receive(clients, queue_url)
    shard(clients, first)
    after_first = table(clients)

    again = shard(clients, first, attempt=2)

    assert again.response() == {"batchItemFailures": []}
    assert table(clients) == after_first  # same items, and the run counted the shard once
    assert run_item(clients)["pending"] == 2


def test_a_failing_shard_is_retried_then_recorded_failed_without_blocking_others(
    clients, queue_url
):
    add_roster(clients)
    not_due(clients)
    aggregator.run(now=NOW, clients=clients, settings=sharded_settings(queue_url, 300))
    first, second, third = receive(clients, queue_url)

    def throttled(**_: Any) -> dict:
        raise ClientError({"Error": {"Code": "Throttling"}}, "GetMetricData")

    failing = Proxy(clients.cloudwatch, get_metric_data=throttled)
    for attempt in (1, 2):
        retried = shard(clients, second, attempt=attempt, cloudwatch=failing)
        assert retried.response() == {
            "batchItemFailures": [{"itemIdentifier": second["messageId"]}]
        }
    assert shard(clients, first).finished_runs == []
    last = shard(clients, second, attempt=3, cloudwatch=failing)
    (finished,) = shard(clients, third).finished_runs

    assert (last.response(), last.failed_shards) == ({"batchItemFailures": []}, 1)
    assert {key: finished[key] for key in ("status", "failed_shards", "failed_tenants")} == {
        "status": "partial_failure",
        "failed_shards": 1,
        "failed_tenants": 125,
    }
    # The other shards' tenants are written and the bookkeeping moves on.
    assert partition(clients, TENANTS[0])["H#2026-11-23T13#api_calls"]["value"] == 7
    assert partition(clients, TENANTS[299])["H#2026-11-23T13#api_calls"]["value"] == 7
    assert partition(clients, TENANTS[130]) == {}
    assert partition(clients, "#aggregator")["last-hour"]["at"] == "2026-11-23T13:00:00Z"
    record = partition(clients, "#aggregator-runs")[
        f"{finished['run_id']}#{json.loads(second['body'])['shard_id']}"
    ]
    assert record["failed_tenants"] == dict.fromkeys(
        TENANTS[125:250], "GetMetricData failed for 2026-11-23: Throttling"
    )


def test_a_shard_that_crashes_is_recorded_with_the_error_on_its_last_attempt(clients, queue_url):
    add_roster(clients)
    not_due(clients)
    aggregator.run(now=NOW, clients=clients, settings=sharded_settings(queue_url, 300))
    first, *_ = receive(clients, queue_url)

    def broken(**_: Any) -> dict:
        raise RuntimeError("a bug")

    crashing = Proxy(clients.cloudwatch, get_metric_data=broken)
    assert shard(clients, first, attempt=1, cloudwatch=crashing).response()["batchItemFailures"]
    shard(clients, first, attempt=3, cloudwatch=crashing)

    failures = [item for sk, item in partition(clients, "#aggregator-runs").items() if "#" in sk]
    assert set(failures[0]["failed_tenants"].values()) == {"shard failed: RuntimeError"}


def test_a_run_whose_every_shard_fails_keeps_its_bookkeeping(clients, queue_url):
    add_roster(clients)
    set_state(clients, last_hour=hour(23, 12))
    not_due(clients)
    aggregator.run(now=NOW, clients=clients, settings=sharded_settings(queue_url, 300))

    def throttled(**_: Any) -> dict:
        raise ClientError({"Error": {"Code": "Throttling"}}, "GetMetricData")

    failing = Proxy(clients.cloudwatch, get_metric_data=throttled)
    outcomes = [
        shard(clients, r, attempt=3, cloudwatch=failing) for r in receive(clients, queue_url)
    ]

    assert outcomes[-1].finished_runs[0]["status"] == "failed"
    assert partition(clients, "#aggregator")["last-hour"]["at"] == "2026-11-23T12:00:00Z"


def test_a_late_run_never_moves_the_bookkeeping_back(clients):
    ledger = RunLedger(clients.dynamodb, METRICS_TABLE)
    ledger.advance("last-hour", "2026-11-23T13:00:00Z")
    ledger.advance("last-hour", "2026-11-23T11:00:00Z")
    assert partition(clients, "#aggregator")["last-hour"]["at"] == "2026-11-23T13:00:00Z"


def test_a_backfill_is_sharded_by_days_too_and_leaves_the_bookkeeping(clients, queue_url):
    add_roster(clients)
    not_due(clients)
    queue_cost_results(cost_result({}), cost_result({}))

    summary = aggregator.run(
        now=NOW,
        backfill=(hour(15, 0), hour(23, 0)),
        clients=clients,
        settings=sharded_settings(queue_url, 300),
    )

    tasks = [ShardTask.from_message(r["body"]) for r in receive(clients, queue_url)]
    assert summary["shards"] == len(tasks) == 3 * 3  # 8 days in 3-day slices, 3 tenant slices
    assert sorted({(t.first_hour, t.last_hour) for t in tasks}) == [
        (hour(15, 0), hour(17, 23)),
        (hour(18, 0), hour(20, 23)),
        (hour(21, 0), hour(22, 23)),
    ]
    for record in receive(clients, queue_url):
        shard(clients, record)
    assert run_item(clients)["status"] == "ok"
    # A backfill moves no bookkeeping: only what not_due put there.
    assert set(partition(clients, "#aggregator")) == {
        "cost-refresh",
        "compliance-refresh",
        "compliance-plan",
        *(f"compliance-refresh#{slot}" for slot in range(6)),
    }


def test_the_shard_handler_reports_only_the_messages_to_retry(clients, monkeypatch, capsys):
    add_customers(
        clients, [{"customer_id": "acme", "status": "active", "aws_account_id": ACME_ACCOUNT}]
    )
    put_usage(clients, "acme", hour(23, 13), "ApiCalls", 3)
    ledger = RunLedger(clients.dynamodb, METRICS_TABLE)
    ledger.open("run-1", mode="hourly", now=NOW, hours=[hour(23, 13)], tenants=1, shards=1)
    ledger.complete(
        "run-1", Participation("coordinator", costs="not_due", compliance="not_due"), NOW
    )
    task = ShardTask("run-1", "1", "hourly", NOW, hour(23, 13), hour(23, 13), ("acme",))
    monkeypatch.setenv(env.METRICS_TABLE, METRICS_TABLE)
    monkeypatch.setenv(env.ENVIRONMENT, "staging")
    monkeypatch.setattr(aggregator_shard, "shard_clients", lambda: clients)
    event = {
        "Records": [
            {
                "messageId": "m-1",
                "body": task.to_message(),
                "attributes": {"ApproximateReceiveCount": "1"},
            },
            {
                "messageId": "m-2",
                "body": '{"run_id": "run-1"}',
                "attributes": {"ApproximateReceiveCount": "1"},
            },
        ]
    }

    response = aggregator_shard.handler(event, None)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert partition(clients, "acme")["D#2026-11-23#api_calls"]["value"] == 3
    emitted = {
        name: doc[name]
        for doc in (
            json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
        )
        for name in ("AggregatorRunsCompleted", "AggregatorTenantFailures")
        if name in doc
    }
    assert emitted == {"AggregatorRunsCompleted": 1, "AggregatorTenantFailures": 0}


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"run_id": "r"}',
        ShardTask("r", "1", "hourly", NOW, hour(23, 13), hour(23, 13), ("acme",))
        .to_message()
        .replace('["acme"]', '"acme"'),
        ShardTask("r", "1", "hourly", NOW, hour(23, 13), hour(23, 13), ("#bad",)).to_message(),
        ShardTask("r", "1", "hourly", NOW, hour(20, 0), hour(23, 13), ("acme",)).to_message(),
        ShardTask("r", "1", "sideways", NOW, hour(23, 13), hour(23, 13), ("acme",)).to_message(),
    ],
)
def test_a_message_no_shard_can_run_is_left_for_the_dead_letter_queue(clients, body):
    record = {"messageId": "m", "body": body, "attributes": {"ApproximateReceiveCount": "3"}}
    with counting_requests(clients.each()) as sent:
        processed = aggregator_shard.process(
            [record], now=NOW, settings=SHARD_SETTINGS, clients=clients
        )
    assert processed.response() == {"batchItemFailures": [{"itemIdentifier": "m"}]}
    assert sent == {}


# -- parallel writes within a shard -----------------------------------------------------


class ConcurrentTable:
    """A BatchWriteItem stand-in that holds each request until `concurrency` are in flight.

    If the writer sent fewer at once, the requests would wait for each other
    forever; the wait's timeout only turns such a hang into a failure.
    """

    def __init__(self, concurrency: int, rejects: str | None = None):
        self.concurrency = concurrency
        self.rejects = rejects
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.requests: list[list[str]] = []
        self.all_busy = threading.Event()

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        (entries,) = RequestItems.values()
        keys = [entry["PutRequest"]["Item"]["pk"]["S"] for entry in entries]
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.requests.append(keys)
            if self.in_flight == self.concurrency:
                self.all_busy.set()
        if not self.all_busy.wait(timeout=60):
            raise AssertionError("the writer never had enough requests in flight")
        with self.lock:
            self.in_flight -= 1
        if self.rejects in keys:
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "BatchWriteItem")
        return {"UnprocessedItems": {}}


def test_writes_run_concurrently_up_to_the_limit_and_never_beyond():
    dynamo = ConcurrentTable(concurrency=4)
    failed: list[Any] = []
    with BatchWriter(
        dynamo, "t", ("pk", "sk"), concurrency=4, on_failure=lambda *a: failed.append(a)
    ) as writer:
        for index in range(25 * 12 + 3):
            writer.put({"pk": f"t{index}", "sk": "x"})

    assert dynamo.peak == 4
    assert sorted(len(keys) for keys in dynamo.requests) == [3] + [25] * 12
    assert (writer.items_written, failed) == (25 * 12 + 3, [])


def test_a_failed_request_fails_its_items_and_the_other_requests_go_on():
    dynamo = ConcurrentTable(concurrency=2, rejects="t30")
    failed: list[tuple[list[dict[str, Any]], Exception]] = []
    with BatchWriter(
        dynamo, "t", ("pk", "sk"), concurrency=2, on_failure=lambda i, e: failed.append((i, e))
    ) as writer:
        for index in range(50):
            writer.put({"pk": f"t{index}", "sk": "x"})

    ((items, error),) = failed
    assert [item["pk"] for item in items] == [f"t{index}" for index in range(25, 50)]
    assert isinstance(error, ClientError)
    assert (writer.items_written, writer.requests_failed) == (25, 1)


def test_an_item_put_twice_before_its_request_is_sent_once():
    dynamo = ConcurrentTable(concurrency=1)
    with BatchWriter(dynamo, "t", ("pk", "sk"), concurrency=1, on_failure=print) as writer:
        writer.put({"pk": "a", "sk": "1", "v": 1})
        writer.put({"pk": "a", "sk": "1", "v": 2})
        writer.put({"pk": "a", "sk": "2"})
    assert dynamo.requests == [["a", "a"]]
    assert writer.items_written == 2


attribute_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**40), 10**40)
    | st.decimals(allow_nan=True, allow_infinity=True, places=None)
    | st.text(max_size=5)
    | st.frozensets(st.text(max_size=3), min_size=1).map(set)
    | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.text(min_size=1, max_size=5), attribute_values, max_size=4))
def test_items_serialise_exactly_as_boto3_would(item):
    reference = TypeSerializer()

    def outcome(serialise):
        try:
            return serialise()
        except (TypeError, ArithmeticError) as error:  # the same refusal, same values
            return type(error)

    assert outcome(lambda: serialize(item)) == outcome(
        lambda: {key: reference.serialize(value) for key, value in item.items()}
    )
