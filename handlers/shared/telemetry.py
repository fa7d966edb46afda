"""Structured JSON logs and CloudWatch Embedded Metric Format, without dependencies.

A log line is one JSON object (level, message, logger and any `extra=` fields),
which CloudWatch Logs Insights queries directly. `emit_metric` prints an EMF
document: CloudWatch turns it into a metric with no PutMetricData call and no
extra IAM permission. Keeping this to the standard library keeps cold starts
at the cost of importing boto3 and nothing more.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping

from handlers.shared import env

# Custom metrics the handlers emit and the alarms watch.
DEFAULT_METRICS_NAMESPACE = "SecureBase/Analytics"
REPORT_FAILURES = "ReportGenerationFailures"
REPORTS_GENERATED = "ReportsGenerated"
AGGREGATOR_RUNS = "AggregatorRunsCompleted"
AGGREGATOR_TENANT_FAILURES = "AggregatorTenantFailures"

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


def configure_logging() -> None:
    """Idempotent: Lambda reuses the process, tests call it many times."""
    root = logging.getLogger()
    level = (env.optional(env.LOG_LEVEL, "INFO") or "INFO").upper()
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        # Lambda's runtime installs its own handler; replace its format, keep one stream.
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
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
