"""The aggregator's settings, clients, paging and failure bookkeeping (both functions)."""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from handlers.shared import env, telemetry
from handlers.shared.aggregation.cloudwatch_queries import (
    DEFAULT_METRIC_NAMES,
    DEFAULT_NAMESPACE,
    DEFAULT_TENANT_DIMENSION,
    UsageSource,
)
from handlers.shared.aggregation.hours import CATCH_UP_LIMIT_HOURS
from handlers.shared.aggregation.shards import check_tenants_per_shard
from handlers.shared.dynamo import WRITE_ERRORS
from handlers.shared.usage_metrics import BY_KEY

logger = logging.getLogger(__name__)

DEFAULT_COST_REFRESH_HOURS = 6
DEFAULT_HOURLY_RETENTION_DAYS = 14
DEFAULT_WRITE_CONCURRENCY = 4
MAX_WRITE_CONCURRENCY = 32
DEFAULT_SHARD_MAX_ATTEMPTS = 3

# Standard mode retries throttling and transient errors with backoff and
# adapts to the quotas of CloudWatch, Cost Explorer and Security Hub.
_CLIENT_CONFIG = Config(retries={"mode": "standard"})
AWS_ERRORS = WRITE_ERRORS


@dataclass(frozen=True)
class UsageSettings:
    """What turning GetMetricData into samples and rollups needs (coordinator and shards)."""

    metrics_table: str
    usage_source: UsageSource
    hourly_retention_days: int = DEFAULT_HOURLY_RETENTION_DAYS
    write_concurrency: int = DEFAULT_WRITE_CONCURRENCY

    @classmethod
    def from_env(cls) -> UsageSettings:
        return cls(
            metrics_table=env.require(env.METRICS_TABLE),
            usage_source=UsageSource(
                namespace=env.optional(env.USAGE_NAMESPACE, DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE,
                tenant_dimension=env.optional(env.USAGE_TENANT_DIMENSION, DEFAULT_TENANT_DIMENSION)
                or DEFAULT_TENANT_DIMENSION,
                metric_names=_metric_names(env.optional(env.USAGE_METRIC_NAMES)),
            ),
            hourly_retention_days=_positive_int(
                env.HOURLY_RETENTION_DAYS, DEFAULT_HOURLY_RETENTION_DAYS
            ),
            write_concurrency=_positive_int(
                env.AGGREGATOR_WRITE_CONCURRENCY, DEFAULT_WRITE_CONCURRENCY, MAX_WRITE_CONCURRENCY
            ),
        )


@dataclass(frozen=True)
class Sharding:
    """Rosters of at least `threshold` tenants run as shards of `tenants_per_shard`."""

    queue_url: str
    threshold: int
    tenants_per_shard: int

    def applies_to(self, tenants: int) -> bool:
        return tenants >= self.threshold

    @classmethod
    def from_env(cls) -> Sharding | None:
        """None when the function has no shard queue: every run is one invocation."""
        queue_url = env.optional(env.AGGREGATOR_SHARD_QUEUE_URL)
        if queue_url is None:
            return None
        per_shard = _positive_int(env.AGGREGATOR_TENANTS_PER_SHARD, 1000)
        try:
            check_tenants_per_shard(per_shard)
        except ValueError as error:
            raise env.MissingEnvironment(
                f"environment variable {env.AGGREGATOR_TENANTS_PER_SHARD}: {error}"
            ) from None
        return cls(
            queue_url=queue_url,
            threshold=_positive_int(env.AGGREGATOR_SHARD_THRESHOLD, 5000),
            tenants_per_shard=per_shard,
        )


@dataclass(frozen=True)
class Settings:
    """The coordinator's settings (the scheduled `aggregator` function)."""

    metrics_table: str
    customers_table: str
    usage_source: UsageSource
    cost_refresh_hours: int = DEFAULT_COST_REFRESH_HOURS
    hourly_retention_days: int = DEFAULT_HOURLY_RETENTION_DAYS
    catch_up_limit_hours: int = CATCH_UP_LIMIT_HOURS
    write_concurrency: int = DEFAULT_WRITE_CONCURRENCY
    sharding: Sharding | None = None

    @property
    def usage(self) -> UsageSettings:
        return UsageSettings(
            metrics_table=self.metrics_table,
            usage_source=self.usage_source,
            hourly_retention_days=self.hourly_retention_days,
            write_concurrency=self.write_concurrency,
        )

    @classmethod
    def from_env(cls) -> Settings:
        usage = UsageSettings.from_env()
        return cls(
            metrics_table=usage.metrics_table,
            customers_table=env.require(env.CUSTOMERS_TABLE),
            usage_source=usage.usage_source,
            cost_refresh_hours=_positive_int(env.COST_REFRESH_HOURS, DEFAULT_COST_REFRESH_HOURS),
            hourly_retention_days=usage.hourly_retention_days,
            write_concurrency=usage.write_concurrency,
            sharding=Sharding.from_env(),
        )


@dataclass(frozen=True)
class ShardSettings:
    """The shard function's settings (`aggregator-shard`, fed by the shard queue)."""

    usage: UsageSettings
    # The queue's maxReceiveCount: a shard still failing on this attempt is recorded failed.
    max_attempts: int = DEFAULT_SHARD_MAX_ATTEMPTS

    @classmethod
    def from_env(cls) -> ShardSettings:
        return cls(
            usage=UsageSettings.from_env(),
            max_attempts=_positive_int(
                env.AGGREGATOR_SHARD_MAX_ATTEMPTS, DEFAULT_SHARD_MAX_ATTEMPTS
            ),
        )


def _metric_names(raw: str | None) -> dict[str, str]:
    """USAGE_METRIC_NAMES overrides some or all of the CloudWatch metric names."""
    names = dict(DEFAULT_METRIC_NAMES)
    if not raw:
        return names
    try:
        configured = json.loads(raw)
    except json.JSONDecodeError:
        configured = None
    if (
        not isinstance(configured, dict)
        or not set(configured) <= set(BY_KEY)
        or not all(isinstance(name, str) and name for name in configured.values())
    ):
        raise env.MissingEnvironment(
            f"environment variable {env.USAGE_METRIC_NAMES} must be a JSON object mapping "
            f"{', '.join(BY_KEY)} to CloudWatch metric names; got {raw!r}"
        )
    names.update(configured)
    return names


def _positive_int(name: str, default: int, highest: int | None = None) -> int:
    raw = env.optional(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1 or (highest is not None and int(raw) > highest):
        upper = f" up to {highest}" if highest is not None else ""
        raise env.MissingEnvironment(
            f"environment variable {name} must be a positive integer{upper}; got {raw!r}"
        )
    return int(raw)


@dataclass(frozen=True)
class Clients:
    """The clients a run uses; a shard needs only DynamoDB and CloudWatch."""

    dynamodb: Any
    cloudwatch: Any
    cost_explorer: Any = None
    securityhub: Any = None
    sqs: Any = None

    def each(self) -> tuple[Any, ...]:
        return tuple(
            client
            for client in (
                self.dynamodb,
                self.cloudwatch,
                self.cost_explorer,
                self.securityhub,
                self.sqs,
            )
            if client is not None
        )


@functools.cache
def coordinator_clients() -> Clients:
    """Created on first use and kept for the container's life (cold start pays once)."""
    return Clients(
        dynamodb=boto3.client("dynamodb", config=_CLIENT_CONFIG),
        cloudwatch=boto3.client("cloudwatch", config=_CLIENT_CONFIG),
        # Cost Explorer has a single endpoint, in us-east-1.
        cost_explorer=boto3.client("ce", region_name="us-east-1", config=_CLIENT_CONFIG),
        # The region the function runs in is the Security Hub aggregation region.
        securityhub=boto3.client("securityhub", config=_CLIENT_CONFIG),
        sqs=boto3.client("sqs", config=_CLIENT_CONFIG),
    )


@functools.cache
def shard_clients() -> Clients:
    return Clients(
        dynamodb=boto3.client("dynamodb", config=_CLIENT_CONFIG),
        cloudwatch=boto3.client("cloudwatch", config=_CLIENT_CONFIG),
    )


def pages(
    operation: Callable[..., dict],
    request: Mapping[str, Any],
    token: str,
    response_token: str | None = None,
) -> Iterator[dict]:
    """Every page of a paginated call, one request per page.

    `token` is the request field that continues; the response carries it
    under the same name unless `response_token` says otherwise.
    """
    request = dict(request)
    while True:
        page = operation(**request)
        yield page
        next_token = page.get(response_token or token)
        if not next_token:
            return
        request[token] = next_token


def error_code(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__


class TenantFailures:
    """Tenants that could not be aggregated, and why (the first reason wins).

    Writes fail from the writer's threads, so recording takes a lock.
    """

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def fail(self, tenant_ids: Iterable[str], reason: str) -> None:
        with self._lock:
            for tenant in sorted(tenant_ids):
                if tenant not in self._reasons:
                    self._reasons[tenant] = reason
                    logger.error(
                        "tenant not aggregated", extra={"tenant": tenant, "reason": reason}
                    )

    def writes_failed(self, items: list[dict[str, Any]], error: Exception) -> None:
        """A BatchWriter's `on_failure`: the tenants whose items the request carried fail."""
        self.fail({item["pk"] for item in items}, f"write failed: {error_code(error)}")

    @property
    def reasons(self) -> dict[str, str]:
        with self._lock:
            return dict(sorted(self._reasons.items()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._reasons)


def emit_run_metrics(tenant_failures: int, completed: bool) -> None:
    """The run's metrics, from whoever finished it: its tenant failures, and that it completed."""
    telemetry.emit_metric(telemetry.AGGREGATOR_TENANT_FAILURES, tenant_failures)
    if completed:
        telemetry.emit_metric(telemetry.AGGREGATOR_RUNS, 1)
