"""Splitting a run into shards, and the messages that carry them (pure).

A shard is a slice of the roster over a slice of the run's hours: at most
`MAX_DAYS_PER_SHARD` UTC days, so a shard's GetMetricData windows and writes
stay bounded whatever a backfill spans. Tenants are cut in multiples of
`TENANTS_PER_QUERY_BATCH` (125 tenants x 4 metrics = the 500 queries one
GetMetricData request takes), so the shards together make exactly the
requests one invocation would: ceil(4 x tenants / 500) per UTC day.

Everything a shard needs travels in its message (tenants, hours, the run's
clock), so a shard reads neither the roster nor the bookkeeping, and running
the same message twice writes the same items.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from handlers.shared.aggregation.cloudwatch_queries import MAX_QUERIES_PER_REQUEST
from handlers.shared.aggregation.hours import HOUR, by_day
from handlers.shared.metrics_layout import is_valid_tenant_id
from handlers.shared.usage_metrics import USAGE_METRICS

TENANTS_PER_QUERY_BATCH = MAX_QUERIES_PER_REQUEST // len(USAGE_METRICS)
# The hourly run catches up at most 48 hours: never more than 3 UTC days.
MAX_DAYS_PER_SHARD = 3
# 3,000 tenant ids of up to 64 characters keep a message under SQS's 256 KiB.
MAX_TENANTS_PER_SHARD = 24 * TENANTS_PER_QUERY_BATCH
HOURLY = "hourly"
BACKFILL = "backfill"
MODES = (HOURLY, BACKFILL)
# The coordinator takes part in its run like a shard: the run completes when
# every shard and the coordinator's own account-level work have finished.
COORDINATOR = "coordinator"


class InvalidShardMessage(ValueError):
    """A shard message that no shard can run (never retried into success)."""


def check_tenants_per_shard(value: int) -> int:
    """`value` if it is a whole number of GetMetricData batches, else ValueError."""
    if (
        value < TENANTS_PER_QUERY_BATCH
        or value > MAX_TENANTS_PER_SHARD
        or value % TENANTS_PER_QUERY_BATCH
    ):
        raise ValueError(
            f"tenants per shard must be a multiple of {TENANTS_PER_QUERY_BATCH} from "
            f"{TENANTS_PER_QUERY_BATCH} to {MAX_TENANTS_PER_SHARD}; got {value}"
        )
    return value


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ShardTask:
    """One shard of one run: these tenants, the contiguous hours [first_hour, last_hour]."""

    run_id: str
    shard_id: str
    mode: str  # HOURLY or BACKFILL
    now: dt.datetime  # the run's clock: rollup windows end at its last complete hour
    first_hour: dt.datetime
    last_hour: dt.datetime
    tenants: tuple[str, ...]

    @property
    def hours(self) -> list[dt.datetime]:
        count = int((self.last_hour - self.first_hour) / HOUR) + 1
        return [self.first_hour + index * HOUR for index in range(count)]

    def to_message(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "shard_id": self.shard_id,
                "mode": self.mode,
                "now": self.now.astimezone(dt.UTC).isoformat(),
                "first_hour": _iso(self.first_hour),
                "last_hour": _iso(self.last_hour),
                "tenants": list(self.tenants),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_message(cls, body: str) -> ShardTask:
        try:
            document: Any = json.loads(body)
            task = cls(
                run_id=_text(document["run_id"]),
                shard_id=_text(document["shard_id"]),
                mode=document["mode"],
                now=_utc(document["now"]),
                first_hour=_utc(document["first_hour"]),
                last_hour=_utc(document["last_hour"]),
                tenants=_tenant_list(document["tenants"]),
            )
        except (json.JSONDecodeError, TypeError, KeyError, ValueError) as error:
            raise InvalidShardMessage(f"not a shard message: {error}") from None
        problems = []
        if task.mode not in MODES:
            problems.append(f"mode {task.mode!r} is not one of {', '.join(MODES)}")
        if not task.first_hour <= task.last_hour or task.first_hour.minute or task.last_hour.minute:
            problems.append("first_hour and last_hour must be whole hours, first <= last")
        elif len(by_day(task.hours)) > MAX_DAYS_PER_SHARD:
            problems.append(f"a shard covers at most {MAX_DAYS_PER_SHARD} UTC days")
        if not task.tenants or len(task.tenants) > MAX_TENANTS_PER_SHARD:
            problems.append(f"a shard has 1 to {MAX_TENANTS_PER_SHARD} tenants")
        if not all(is_valid_tenant_id(tenant) for tenant in task.tenants):
            problems.append("every tenant must be a valid tenant id")
        if problems:
            raise InvalidShardMessage("; ".join(problems))
        return task


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 128:
        raise ValueError(f"expected an id of 1 to 128 characters, got {value!r}")
    return value


def _tenant_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"tenants must be a list, got {type(value).__name__}")
    return tuple(value)


def _utc(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return moment.astimezone(dt.UTC)


def plan(
    run_id: str,
    mode: str,
    now: dt.datetime,
    hours: Sequence[dt.datetime],
    tenant_ids: Sequence[str],
    tenants_per_shard: int,
) -> list[ShardTask]:
    """The run's shards: every (tenant, hour) exactly once.

    Shards are numbered in order, days first, so the oldest hours are
    dispatched (and written) first.
    """
    check_tenants_per_shard(tenants_per_shard)
    ordered = sorted(hours)
    if any(later - earlier != HOUR for earlier, later in itertools.pairwise(ordered)):
        raise ValueError("a run's hours must be contiguous")
    days = list(by_day(ordered).values())
    day_groups = [
        [hour for day in days[start : start + MAX_DAYS_PER_SHARD] for hour in day]
        for start in range(0, len(days), MAX_DAYS_PER_SHARD)
    ]
    tenant_groups = [
        tuple(tenant_ids[start : start + tenants_per_shard])
        for start in range(0, len(tenant_ids), tenants_per_shard)
    ]
    width = len(str(len(day_groups) * len(tenant_groups)))
    return [
        ShardTask(
            run_id=run_id,
            shard_id=f"{number:0{width}d}",
            mode=mode,
            now=now,
            first_hour=group[0],
            last_hour=group[-1],
            tenants=tenants,
        )
        for number, (group, tenants) in enumerate(
            ((group, tenants) for group in day_groups for tenants in tenant_groups), start=1
        )
    ]
