"""The four usage metrics: what they count and how they aggregate (pure).

Counters (calls, compute, transfer) add up over time. Storage is a gauge: a
level sampled over time, which is averaged (or its latest value taken) and
never summed across hours or days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GIB = 2**30  # AWS bills storage and transfer in GiB and calls it GB


@dataclass(frozen=True)
class UsageMetric:
    key: str  # API and storage name: "storage_gb"
    kind: Literal["counter", "gauge"]
    unit: str  # of the value we store and serve
    scale: float  # raw CloudWatch value * scale = value in `unit`
    statistic: Literal["Sum", "Average"]  # GetMetricData statistic per hour
    label: str  # what a reader sees in reports: "Storage (GB)"


API_CALLS = UsageMetric("api_calls", "counter", "calls", 1.0, "Sum", "API calls")
STORAGE_GB = UsageMetric("storage_gb", "gauge", "GB", 1.0 / GIB, "Average", "Storage (GB)")
COMPUTE_HOURS = UsageMetric("compute_hours", "counter", "hours", 1.0 / 3600, "Sum", "Compute hours")
DATA_TRANSFER_GB = UsageMetric(
    "data_transfer_gb", "counter", "GB", 1.0 / GIB, "Sum", "Data transfer (GB)"
)

USAGE_METRICS: tuple[UsageMetric, ...] = (API_CALLS, STORAGE_GB, COMPUTE_HOURS, DATA_TRANSFER_GB)
BY_KEY = {metric.key: metric for metric in USAGE_METRICS}
