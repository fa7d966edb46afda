"""Puts the synthetic platform signals into the emulator and runs the real aggregator over them."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

import boto3
import requests

from local import signals
from local.config import BACKFILL_DAYS, REGION, TENANTS

Progress = Callable[[str], None]


def seed_usage(window: list[dt.datetime], progress: Progress) -> int:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    datapoints = [point for tenant in TENANTS for point in signals.usage_datapoints(tenant, window)]
    for start in range(0, len(datapoints), signals.PUT_METRIC_DATA_LIMIT):
        cloudwatch.put_metric_data(
            Namespace=signals.NAMESPACE,
            MetricData=datapoints[start : start + signals.PUT_METRIC_DATA_LIMIT],
        )
    progress(f"  usage metrics: {len(datapoints):,} hourly datapoints for {len(TENANTS)} tenants")
    return len(datapoints)


def seed_costs(days: list[dt.date], progress: Progress) -> None:
    """Queues Cost Explorer answers in the order the aggregator asks: by service, then by region."""
    results = [signals.cost_and_usage_result(group_by, days) for group_by in ("SERVICE", "REGION")]
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    response = requests.post(
        f"{endpoint}/moto-api/static/ce/cost-and-usage-results",
        json={"results": results},
        timeout=30,
    )
    response.raise_for_status()
    progress(f"  costs: {len(days)} days by account, service and region")


def seed_findings(now: dt.datetime, progress: Progress) -> None:
    securityhub = boto3.client("securityhub", region_name=REGION)
    findings = [finding for tenant in TENANTS for finding in signals.findings(tenant, REGION, now)]
    for start in range(0, len(findings), 100):
        securityhub.batch_import_findings(Findings=findings[start : start + 100])
    progress(f"  compliance: {len(findings)} Security Hub findings")


def seed_and_aggregate(now: dt.datetime, progress: Progress) -> dict:
    """Seeds 90 days of signals and backfills the metrics table with the real aggregator."""
    window = signals.hours(now, BACKFILL_DAYS * 24)
    start, end = window[0], window[-1] + dt.timedelta(hours=1)
    days = sorted({hour.date() for hour in window})
    progress("Seeding synthetic platform signals")
    seed_usage(window, progress)
    seed_costs(days, progress)
    seed_findings(now, progress)
    progress(
        f"Running the aggregator over {BACKFILL_DAYS} days ({start:%Y-%m-%d %H:00} to {end:%Y-%m-%d %H:00} UTC)"
    )
    from handlers import aggregator
    from handlers.shared.aggregator.runtime import Settings, ShardSettings, coordinator_clients
    from local.shards import InProcessShards, sharded

    # Sharded as in a large deployment; the shards run in this process (local.shards).
    settings = sharded(Settings.from_env())
    clients = coordinator_clients()
    summary = aggregator.run(
        now=now,
        backfill=(start, end),
        clients=clients,
        settings=settings,
        dispatcher=InProcessShards(ShardSettings(usage=settings.usage), clients),
    )
    run = summary["run"]
    requests_made = sum(summary["requests"].values())
    progress(
        f"  {run['items_written']:,} items for {run['tenants']} active tenants in "
        f"{run['shards']} shards ({run['status']}, {requests_made} AWS requests)"
    )
    return summary
