"""Usage of a list of tenants over a run's hours: GetMetricData in, samples and rollups out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from handlers.shared import metrics_layout as layout
from handlers.shared.aggregation.cloudwatch_queries import (
    QueryBatch,
    SeriesKey,
    query_batches,
    read_results,
)
from handlers.shared.aggregation.hours import (
    DAY,
    by_day,
    day_start,
    expires_at,
    floor_hour,
    is_retained,
)
from handlers.shared.aggregation.rollups import daily_rollup, hourly_samples, samples_for
from handlers.shared.aggregator.runtime import (
    AWS_ERRORS,
    TenantFailures,
    UsageSettings,
    error_code,
    pages,
)
from handlers.shared.dynamo import BatchWriter, ExecutorFactory
from handlers.shared.tables import METRICS
from handlers.shared.usage_metrics import BY_KEY


def metrics_writer(
    dynamodb: Any,
    settings: UsageSettings,
    failures: TenantFailures,
    executor_factory: ExecutorFactory | None = None,
) -> BatchWriter:
    """A BatchWriter into the metrics table whose failed requests fail their tenants."""
    options = {} if executor_factory is None else {"executor_factory": executor_factory}
    return BatchWriter(
        dynamodb,
        settings.metrics_table,
        (METRICS.hash_key, str(METRICS.range_key)),
        concurrency=settings.write_concurrency,
        on_failure=failures.writes_failed,
        **options,
    )


class UsageAggregation:
    """Hourly samples of the wanted hours and the rollups of their days, for some tenants.

    Daily rollups are recomputed from all of the day's hourly datapoints, so
    nothing is read back from the table and re-running an hour rewrites
    exactly the same items.
    """

    def __init__(
        self,
        settings: UsageSettings,
        cloudwatch: Any,
        writer: BatchWriter,
        failures: TenantFailures,
        now: dt.datetime,
    ):
        self.settings = settings
        self.cloudwatch = cloudwatch
        self.writer = writer
        self.failures = failures
        self.now = now

    def run(self, tenant_ids: Sequence[str], hours: Sequence[dt.datetime]) -> None:
        batches = query_batches(tenant_ids, self.settings.usage_source)
        for day, day_hours in by_day(hours).items():
            self.aggregate_day(day, day_hours, batches)

    def aggregate_day(
        self, day: dt.date, hours: list[dt.datetime], batches: list[QueryBatch]
    ) -> None:
        """Hourly samples of `hours` and the day's rollups, from one GetMetricData window.

        The window is the whole day up to the last complete hour, whatever
        hours are being processed, so a rollup always covers every complete
        hour of its day (a backfill of the morning cannot shrink it).
        """
        start = day_start(day)
        end = min(start + DAY, floor_hour(self.now))
        wanted = set(hours)
        for batch in batches:
            request = {
                "MetricDataQueries": list(batch.queries),
                "StartTime": start,
                "EndTime": end,
                "ScanBy": "TimestampAscending",
            }
            try:
                results = [
                    result
                    for page in pages(self.cloudwatch.get_metric_data, request, "NextToken")
                    for result in page.get("MetricDataResults", [])
                ]
            except AWS_ERRORS as error:
                self.failures.fail(
                    batch.tenants, f"GetMetricData failed for {day}: {error_code(error)}"
                )
                continue
            read = read_results(batch, results)
            for key, status in read.failed.items():
                self.failures.fail([key.tenant], f"{key.metric} for {day}: {status}")
            for key, raw in read.values.items():
                self.write_usage(day, key, raw, wanted)

    def write_usage(
        self,
        day: dt.date,
        key: SeriesKey,
        raw: Mapping[dt.datetime, float],
        wanted: set[dt.datetime],
    ) -> None:
        metric = BY_KEY[key.metric]
        values = hourly_samples(metric, raw)
        retention = self.settings.hourly_retention_days
        for sample in samples_for(metric, values, wanted):
            if is_retained(sample.hour, self.now, retention):
                self.writer.put(
                    layout.hourly_item(key.tenant, sample, expires_at(sample.hour, retention))
                )
        rollup = daily_rollup(day, metric, values)
        if rollup is not None:
            self.writer.put(layout.daily_item(key.tenant, rollup))
