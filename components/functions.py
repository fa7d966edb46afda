"""The Lambda functions of the stack: what each runs and how it is sized.

One catalogue for every component that needs to know a function: AnalyticsApi
deploys them, AnalyticsObservability creates their log groups and alarms (the
duration alarm is a share of `timeout_seconds`), Phase2Monitor deploys its own.
All run on arm64 (Graviton: about 20% cheaper per GB-second than x86).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # components.settings checks the reserved total with this catalogue
    from components.settings import StackSettings

RUNTIME = "python3.11"  # the Python the tests run on
ARCHITECTURE = "arm64"


@dataclass(frozen=True)
class FunctionSpec:
    key: str  # "report-engine"
    module: str  # "handlers.report_engine"
    memory_mb: int
    timeout_seconds: int
    # Caps a function whose bursts would hurt something downstream.
    reserved_concurrency: int | None = None
    # Invoked asynchronously (schedules), so it needs an on-failure destination.
    asynchronous: bool = False
    # Lambda layers it needs, by name (see components.packaging).
    layers: tuple[str, ...] = ()

    @property
    def handler(self) -> str:
        return f"{self.module}.handler"

    @property
    def source_file(self) -> str:
        return self.module.replace(".", "/") + ".py"

    def function_name(self, name_prefix: str) -> str:
        if self.key == PHASE2_MONITOR.key:
            return f"{name_prefix}-{self.key}"
        return f"{name_prefix}-analytics-{self.key}"

    def log_group_name(self, name_prefix: str) -> str:
        return f"/aws/lambda/{self.function_name(name_prefix)}"


AUTHORIZER = FunctionSpec(
    key="authorizer",
    module="handlers.authorizer",
    # More memory is more CPU: signature checks and the cold start finish sooner.
    memory_mb=256,
    timeout_seconds=5,
    layers=("auth",),
)
QUERY = FunctionSpec(
    key="query",
    module="handlers.query",
    memory_mb=512,
    timeout_seconds=10,
)
REPORTER = FunctionSpec(
    key="reporter",
    module="handlers.reporter",
    # Renders PDF and XLSX in process; anything that would not finish inside
    # the API's 30 s integration limit is deferred to the report engine.
    memory_mb=1024,
    timeout_seconds=28,
    reserved_concurrency=20,
    layers=("reporting",),
)
REPORT_ENGINE = FunctionSpec(
    key="report-engine",
    module="handlers.report_engine",
    memory_mb=1536,
    timeout_seconds=300,
    asynchronous=True,
    layers=("reporting",),
)
AGGREGATOR = FunctionSpec(
    key="aggregator",
    module="handlers.aggregator",
    memory_mb=1024,
    timeout_seconds=900,
    # One run at a time: protects the CloudWatch and Cost Explorer quotas and
    # keeps two runs from rewriting the same rollups concurrently.
    reserved_concurrency=1,
    asynchronous=True,
)
# One shard of a sharded aggregator run per invocation, from the shard queue.
# Modelled at 100,000 tenants a 1,000-tenant shard takes about 13 s (make bench);
# 120 s leaves room for a 48-hour catch-up, and the queue's visibility timeout
# (6 x this) is how long a failed shard waits before it is delivered again.
AGGREGATOR_SHARD = FunctionSpec(
    key="aggregator-shard",
    module="handlers.aggregator_shard",
    memory_mb=1024,
    timeout_seconds=120,
)
# The links in report emails (confirm, unsubscribe) and SES's bounce and
# complaint events: one conditional write and one KMS call each.
EMAIL_CONSENT = FunctionSpec(
    key="email-consent",
    module="handlers.email_consent",
    memory_mb=256,
    timeout_seconds=10,
    asynchronous=True,  # SNS invokes it asynchronously
)
PHASE2_MONITOR = FunctionSpec(
    key="phase2-monitor",
    module="handlers.phase2_monitor",
    memory_mb=256,
    timeout_seconds=60,
    reserved_concurrency=1,
    asynchronous=True,
)

# The functions AnalyticsApi deploys; Phase2Monitor deploys PHASE2_MONITOR.
ANALYTICS_FUNCTIONS: tuple[FunctionSpec, ...] = (
    AUTHORIZER,
    QUERY,
    REPORTER,
    REPORT_ENGINE,
    AGGREGATOR,
    AGGREGATOR_SHARD,
    EMAIL_CONSENT,
)
ALL_FUNCTIONS: tuple[FunctionSpec, ...] = (*ANALYTICS_FUNCTIONS, PHASE2_MONITOR)
FUNCTIONS_BY_KEY = {spec.key: spec for spec in ALL_FUNCTIONS}


def reserved_concurrency(spec: FunctionSpec, settings: StackSettings) -> int | None:
    """The catalogue's, except the shard function's: what its queue mapping may run at once.

    Lambda's SQS mapping does not look at reserved concurrency: reserving less
    than the mapping's maximum would throttle deliveries, and each throttled
    delivery counts towards the shard's attempts.
    """
    if spec.key == AGGREGATOR_SHARD.key:
        return settings.aggregator.shard_concurrency
    return spec.reserved_concurrency


def reserved_concurrency_by_function(settings: StackSettings) -> dict[str, int]:
    """Function key -> the concurrency it reserves, for every function that reserves some."""
    return {
        spec.key: reserved
        for spec in ALL_FUNCTIONS
        if (reserved := reserved_concurrency(spec, settings)) is not None
    }
