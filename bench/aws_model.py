"""Modeled AWS for the aggregator case: counting clients, per-request latency, quotas.

The aggregator's real code runs against these clients. Each request is
counted (through the same `before-send` event botocore emits, so
`handlers.shared.telemetry.counting_requests` sees it) and adds its modeled
latency to the `Timeline` of the invocation that made it. Nothing sleeps: a
100,000-tenant run is modeled in seconds of CPU.

Per-request latency (seconds), and where each figure comes from:

    dynamodb.BatchWriteItem   0.018   p95 of a 25-item BatchWriteItem from Lambda, measured by
                                      Alex DeBrie (p50 10.2 ms, p95 18 ms, p99 27.6 ms):
                                      github.com/alexdebrie/dynamodb-performance-testing,
                                      put-batch-transaction-performance/README.md
    dynamodb.PutItem          0.0132  p95 of PutItem in the same measurement; UpdateItem and the
    dynamodb.UpdateItem               one-page bookkeeping Query are single-item requests and
    dynamodb.Query                    are given the same figure
    dynamodb.Scan             0.25    assumed: no published figure for a 1 MB page; 20x a
                                      single-item request
    cloudwatch.GetMetricData  1.0     assumed: no published latency; deliberately slow. The run
                                      also respects the documented quotas (below)
    cost-explorer.GetCostAndUsage 1.0 assumed: no published latency
    securityhub.GetFindings   1/3     no published latency; pages are read one after another at
                                      the documented 3 requests per second, the fastest Security
                                      Hub allows (a slower page makes the refresh slower)
    sqs.SendMessageBatch      0.1     assumed, pessimistic: SQS is described as answering in
                                      milliseconds; 10 messages up to 256 KiB in all

Lambda (docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html): an SQS
mapping starts 5 concurrent invocations and adds up to 300 a minute, never more
than its maximum concurrency. A new execution environment pays a cold start of
COLD_START_SECONDS (assumed: Python functions with boto3 are commonly reported
at 1-3 s; the init phase does not count against the function's timeout).

Quotas, which bound a whole run whatever its concurrency (QUOTA_FLOORS):
    GetMetricData   50 requests/s; 180,000 datapoints/s when StartTime is within 3 hours of
                    now, else 396,000/s (AWS Knowledge Center, "cloudwatch-getmetricdata-api")
    GetFindings     3 requests/s, burst 6 (Security Hub API reference, throttling limits)
    BatchWriteItem  40,000 write request units/s per on-demand table by default (DynamoDB
                    developer guide, "on-demand-capacity-mode-max-throughput"); a new
                    on-demand table starts at 4,000/s and keeps any peak it has reached
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

LATENCY_SECONDS: Mapping[str, float] = {
    "dynamodb.BatchWriteItem": 0.018,
    "dynamodb.PutItem": 0.0132,
    "dynamodb.UpdateItem": 0.0132,
    "dynamodb.Query": 0.0132,
    "dynamodb.Scan": 0.25,
    "cloudwatch.GetMetricData": 1.0,
    "cost-explorer.GetCostAndUsage": 1.0,
    "securityhub.GetFindings": 1 / 3,
    "sqs.SendMessageBatch": 0.1,
}
COLD_START_SECONDS = 3.0
SQS_MAPPING_INITIAL_CONCURRENCY = 5
SQS_MAPPING_SCALE_UP_PER_SECOND = 300 / 60

GET_METRIC_DATA_TPS = 50
GET_METRIC_DATA_RECENT_DPS = 180_000  # StartTime within 3 hours of now
GET_METRIC_DATA_OLDER_DPS = 396_000
GET_FINDINGS_TPS = 3
TABLE_WRITE_UNITS_PER_SECOND = 40_000
SCAN_PAGE_BYTES = 1024 * 1024
DYNAMODB_ITEM_OVERHEAD_BYTES = 100  # DynamoDB's own per-item overhead when it sizes items


class Timeline:
    """Modeled time of one Lambda invocation.

    Requests made on the invocation's own thread advance `now`; requests made
    inside a task of a `LaneExecutor` add to that task's duration instead.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._task_seconds: float | None = None

    def spend(self, seconds: float) -> None:
        if self._task_seconds is None:
            self.now += seconds
        else:
            self._task_seconds += seconds

    def run_task(
        self, fn: Callable[..., Any], *args: Any
    ) -> tuple[float, Any, BaseException | None]:
        self._task_seconds = 0.0
        try:
            result, error = fn(*args), None
        except Exception as raised:  # noqa: BLE001 - handed to the Future, as a pool would
            result, error = None, raised
        seconds, self._task_seconds = self._task_seconds, None
        return seconds, result, error


class LaneExecutor(Executor):
    """A thread pool of `workers` on a Timeline: the code's own writes, scheduled in modeled time.

    A task starts on the lane that frees first, no earlier than the moment it
    is submitted; when every lane is busy the submitting thread waits, as
    `BatchWriter.put` does on its semaphore. Tasks run at once (synchronously)
    and only their modeled durations are scheduled.
    """

    def __init__(self, timeline: Timeline, workers: int):
        self.timeline = timeline
        self.lanes = [0.0] * workers

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        lane = min(range(len(self.lanes)), key=self.lanes.__getitem__)
        start = max(self.timeline.now, self.lanes[lane])
        self.timeline.now = start
        seconds, result, error = self.timeline.run_task(lambda: fn(*args, **kwargs))
        self.lanes[lane] = start + seconds
        future: Future[Any] = Future()
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.timeline.now = max(self.timeline.now, *self.lanes)


def lanes_on(timeline: Timeline) -> Callable[[int], Executor]:
    """An `executor_factory` for the aggregator: its writes scheduled on `timeline`."""
    return lambda workers: LaneExecutor(timeline, workers)


@dataclass
class Traffic:
    """Everything the modeled clients were asked, across every invocation of a run."""

    requests: Counter[str] = field(default_factory=Counter)
    metric_datapoints_recent: int = 0  # queries x hours of windows starting within 3 hours
    metric_datapoints_older: int = 0
    items_written: int = 0  # BatchWriteItem puts, retries included

    def floors(self) -> dict[str, float]:
        """Seconds the run needs at least, per quota, however it is spread out."""
        return {
            "get_metric_data_requests": self.requests["cloudwatch.GetMetricData"]
            / GET_METRIC_DATA_TPS,
            "get_metric_data_datapoints": self.metric_datapoints_recent / GET_METRIC_DATA_RECENT_DPS
            + self.metric_datapoints_older / GET_METRIC_DATA_OLDER_DPS,
            "get_findings_requests": self.requests["securityhub.GetFindings"] / GET_FINDINGS_TPS,
            "table_write_units": self.items_written / TABLE_WRITE_UNITS_PER_SECOND,
        }


class _Events:
    """The slice of botocore's event system `counting_requests` uses."""

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[str, Callable[..., None]]] = {}

    def register(self, event: str, handler: Callable[..., None], unique_id: str) -> None:
        self._handlers[unique_id] = (event, handler)

    def unregister(self, event: str, unique_id: str) -> None:
        self._handlers.pop(unique_id, None)

    def emit(self, event_name: str) -> None:
        for event, handler in list(self._handlers.values()):
            if event_name == event or event_name.startswith(event + "."):
                handler(event_name=event_name)


class _Meta:
    def __init__(self) -> None:
        self.events = _Events()


class ModeledClient:
    """Counts each request and charges its latency to the invocation's Timeline."""

    service = ""

    def __init__(self, traffic: Traffic, timeline: Timeline):
        self.meta = _Meta()
        self.traffic = traffic
        self.timeline = timeline

    def _request(self, operation: str, seconds: float | None = None) -> None:
        name = f"{self.service}.{operation}"
        self.meta.events.emit(f"before-send.{name}")
        self.traffic.requests[name] += 1
        self.timeline.spend(LATENCY_SECONDS[name] if seconds is None else seconds)


def hours_between(start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
    hour = start
    while hour < end:
        yield hour
        hour += dt.timedelta(hours=1)


def scan_pages(item_sizes: list[int]) -> list[tuple[int, int]]:
    """(first, end) index ranges of the Scan pages: 1 MB of items read per page."""
    pages, start, size = [], 0, 0
    for index, item_size in enumerate(item_sizes):
        if size and size + item_size > SCAN_PAGE_BYTES:
            pages.append((start, index))
            start, size = index, 0
        size += item_size
    pages.append((start, len(item_sizes)))
    return pages


def invocations_schedule(
    available_at: list[float], durations: list[float], concurrency: int
) -> list[tuple[float, float]]:
    """(start, end) of each shard under an SQS mapping: capped, scaling up, cold on first use.

    Shard i's message is available at `available_at[i]` (when the coordinator
    sent it). Lane k of the mapping exists from when its scale-up reaches it
    (5 at first, then 5 more a second); a lane's first invocation pays a cold start.
    """
    first = min(available_at, default=0.0)
    lanes = [
        first
        + max(0.0, (k - SQS_MAPPING_INITIAL_CONCURRENCY + 1) / SQS_MAPPING_SCALE_UP_PER_SECOND)
        for k in range(concurrency)
    ]
    warm = [False] * concurrency
    spans = []
    for available, seconds in zip(available_at, durations, strict=True):
        lane = min(range(concurrency), key=lambda k: max(lanes[k], available))
        start = max(lanes[lane], available)
        cold = 0.0 if warm[lane] else COLD_START_SECONDS
        warm[lane] = True
        lanes[lane] = start + cold + seconds
        spans.append((start, lanes[lane]))
    return spans


def ceil_div(numerator: int, denominator: int) -> int:
    return math.ceil(numerator / denominator)
