"""Structured JSON logs, CloudWatch Embedded Metric Format and request counts, without dependencies.

A log line is one JSON object (level, message, logger and any `extra=` fields),
which CloudWatch Logs Insights queries directly. `emit_metric` prints an EMF
document: CloudWatch turns it into a metric with no PutMetricData call and no
extra IAM permission. `counting_requests` counts what boto3 clients send
through their own event hooks. Keeping this to the standard library keeps cold
starts at the cost of importing boto3 and nothing more.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from handlers.shared import env

# Custom metrics the handlers emit and the alarms watch.
DEFAULT_METRICS_NAMESPACE = "SecureBase/Analytics"
REPORT_FAILURES = "ReportGenerationFailures"
REPORTS_GENERATED = "ReportsGenerated"
# A tenant reached its emails per UTC day: a run or a confirmation stopped.
EMAIL_QUOTA_EXCEEDED = "EmailQuotaExceeded"
AGGREGATOR_RUNS = "AggregatorRunsCompleted"
AGGREGATOR_TENANT_FAILURES = "AggregatorTenantFailures"
AGGREGATOR_SHARD_FAILURES = "AggregatorShardFailures"

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "timestamp": round(record.created, 3),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StandardStreamHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` (or `sys.stderr`) is when a record is emitted.

    A plain StreamHandler keeps the stream object it was created with; anything
    that swaps sys.stdout afterwards (a test runner's capture, a redirect)
    would leave it writing to a closed stream.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        super().__init__(getattr(sys, target))

    @property
    def stream(self):  # type: ignore[override]
        return getattr(sys, self.target)

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(
    stream: Literal["stdout", "stderr"] = "stdout", default_level: str = "INFO"
) -> None:
    """JSON logs to stdout (Lambda ships it to CloudWatch) or stderr (commands, whose
    stdout is their output), at LOG_LEVEL or `default_level`. Idempotent: Lambda
    reuses the process, tests call it often."""
    root = logging.getLogger()
    level = (env.optional(env.LOG_LEVEL, default_level) or default_level).upper()
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    ours = next((h for h in root.handlers if isinstance(h, _StandardStreamHandler)), None)
    if ours is None:
        # Lambda's runtime installs its own handler; replace it, keep one stream.
        for handler in list(root.handlers):
            root.removeHandler(handler)
        ours = _StandardStreamHandler(stream)
        ours.setFormatter(JsonFormatter())
        root.addHandler(ours)
    ours.target = stream
    # botocore at DEBUG would log request bodies, which may hold tokens.
    logging.getLogger("botocore").setLevel(max(logging.INFO, root.level))


def emf_document(
    name: str,
    value: float,
    unit: str = "Count",
    dimensions: Mapping[str, str] | None = None,
    timestamp_ms: int | None = None,
) -> dict:
    dims = {"Environment": env.optional(env.ENVIRONMENT, "local") or "local", **(dimensions or {})}
    return {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": env.optional(env.METRICS_NAMESPACE, DEFAULT_METRICS_NAMESPACE),
                    "Dimensions": [sorted(dims)],
                    "Metrics": [{"Name": name, "Unit": unit}],
                }
            ],
        },
        **dims,
        name: value,
    }


def emit_metric(
    name: str, value: float, unit: str = "Count", dimensions: Mapping[str, str] | None = None
) -> None:
    """Writes one EMF line to stdout, where the Lambda log agent picks it up."""
    sys.stdout.write(json.dumps(emf_document(name, value, unit, dimensions)) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def counting_requests(clients: Iterable[Any]) -> Iterator[Counter[str]]:
    """Every HTTP request the clients send while open, retries included, by "service.Operation".

    A `before-send` hook fires once per request put on the wire, so the
    counts are exact: nothing is sampled or inferred from a run's own report.
    The aggregator reports its runs' counts with it; the bench measures with it.
    Requests sent from several threads at once are each counted.
    """
    sent: Counter[str] = Counter()
    lock = threading.Lock()

    def count(event_name: str, **_: Any) -> None:
        with lock:
            sent[event_name.removeprefix("before-send.")] += 1

    hook_id = f"counting-requests-{id(sent)}"
    unique = list({id(client): client for client in clients}.values())
    for client in unique:
        client.meta.events.register("before-send", count, unique_id=hook_id)
    try:
        yield sent
    finally:
        for client in unique:
            client.meta.events.unregister("before-send", unique_id=hook_id)
