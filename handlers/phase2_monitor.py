"""Phase 2 monitor: watches the Phase 2 production resources and reports violations.

One run reads every metric of the Aurora cluster, the Lambda functions, the API
and the DynamoDB tables over the lookback window in ONE GetMetricData call,
lists the cluster's alarms in ALARM, evaluates the thresholds and renders a
Markdown report with a JSON twin. As a Lambda (EventBridge Scheduler, every 6
hours) it stores both in the monitor bucket and publishes to the alerts topic
only when something is violated. As a command it prints the report for CI:

    python -m handlers.phase2_monitor --config monitor.json --hours 24 --format markdown \\
        --fail-on-violation [--region us-east-1]

The region comes from --region, else AWS_REGION, else botocore's own lookup
(AWS_DEFAULT_REGION, then the profile's `region`); with none, it says so.

Exit codes: 0 no violations (or not asked to fail), 1 violations with
--fail-on-violation, 2 usage or config error, 3 an AWS call failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from handlers.shared import env, telemetry
from handlers.shared.monitoring import render
from handlers.shared.monitoring.alarms import cluster_alarms
from handlers.shared.monitoring.config import (
    MAX_LOOKBACK_HOURS,
    ConfigError,
    MonitorConfig,
    load_config,
)
from handlers.shared.monitoring.evaluate import Report, evaluate
from handlers.shared.monitoring.queries import (
    build_queries,
    collect_values,
    lookback_window,
    metric_data_queries,
    readings,
)

logger = logging.getLogger(__name__)

EXIT_VIOLATIONS = 1
EXIT_USAGE = 2
EXIT_AWS_ERROR = 3


class AwsClients:
    """boto3 clients made on first use and kept for the container's life.

    A print-only CLI run never creates the S3 or SNS client. Tests pass
    clients made inside moto (and with their own event hooks). Without a
    `region`, boto3 finds one as usual (the Lambda runtime sets AWS_REGION and
    AWS_DEFAULT_REGION).
    """

    def __init__(self, region: str | None = None, **clients: Any):
        self._region = region
        self._clients: dict[str, Any] = dict(clients)

    def get(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self._region)
        return self._clients[service]


_container_clients = AwsClients()


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a run's report goes besides its caller: None turns a channel off."""

    bucket: str | None = None
    prefix: str = ""
    topic_arn: str | None = None


@dataclasses.dataclass(frozen=True)
class MonitorRun:
    report: Report
    markdown: str
    document: dict[str, Any]
    report_keys: tuple[str, ...]
    published: bool
    metric_queries: int
    get_metric_data_calls: int

    def summary(self) -> dict[str, Any]:
        return {
            "violations": len(self.report.violations),
            "no_data": sum(len(status.no_data) for status in self.report.no_data),
            "report_keys": list(self.report_keys),
            "published": self.published,
            "metric_queries": self.metric_queries,
            "get_metric_data_calls": self.get_metric_data_calls,
        }


def run(
    config: MonitorConfig,
    clients: AwsClients,
    destination: Destination = Destination(),
    now: dt.datetime | None = None,
    environment: str | None = None,
) -> MonitorRun:
    now = now or dt.datetime.now(dt.UTC)
    window = lookback_window(now, config.lookback_hours)
    cloudwatch = clients.get("cloudwatch")
    queries = build_queries(config)
    pages = fetch_metric_data(
        cloudwatch, metric_data_queries(queries, config.lookback_hours), window
    )
    alarms = cluster_alarms(fetch_alarms_in_alarm(cloudwatch), config.aurora_cluster_id)
    report = evaluate(
        config,
        readings(queries, collect_values(pages)),
        alarms,
        generated_at=now,
        window=window,
        environment=environment,
    )
    markdown = render.to_markdown(report)
    document = render.to_json(report)

    keys: tuple[str, ...] = ()
    if destination.bucket:
        keys = store_report(clients.get("s3"), destination, now, markdown, document)
    published = False
    if destination.topic_arn and report.violations:
        locations = [f"s3://{destination.bucket}/{key}" for key in keys]
        clients.get("sns").publish(
            TopicArn=destination.topic_arn,
            Subject=render.alert_subject(report),
            Message=render.alert_message(report, markdown, locations),
        )
        published = True
    result = MonitorRun(
        report=report,
        markdown=markdown,
        document=document,
        report_keys=keys,
        published=published,
        metric_queries=len(queries),
        get_metric_data_calls=len(pages),
    )
    logger.info("phase 2 monitor run finished", extra=result.summary())
    return result


def fetch_metric_data(
    cloudwatch: Any, queries: list[dict], window: tuple[dt.datetime, dt.datetime]
) -> list[dict]:
    """The GetMetricData pages for the queries: one call.

    A NextToken only comes back past 500 queries or 100,800 datapoints; with at
    most 463 queries of one datapoint each it should never appear. It is
    followed anyway, so a surprise costs an extra call rather than data.
    """
    request: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": window[0],
        "EndTime": window[1],
        "ScanBy": "TimestampAscending",
    }
    pages = []
    while True:
        page = cloudwatch.get_metric_data(**request)
        pages.append(page)
        failed = [
            result["Id"]
            for result in page.get("MetricDataResults", [])
            if result.get("StatusCode") in ("Forbidden", "InternalError")
        ]
        if failed:
            logger.warning("metric queries failed; shown as no data", extra={"query_ids": failed})
        token = page.get("NextToken")
        if not token:
            return pages
        logger.warning("GetMetricData paginated", extra={"pages_so_far": len(pages)})
        request["NextToken"] = token


def fetch_alarms_in_alarm(cloudwatch: Any) -> list[dict]:
    """Every metric alarm in ALARM state (DescribeAlarms cannot filter by dimension)."""
    paginator = cloudwatch.get_paginator("describe_alarms")
    return [
        alarm
        for page in paginator.paginate(StateValue="ALARM", AlarmTypes=["MetricAlarm"])
        for alarm in page.get("MetricAlarms", [])
    ]


def store_report(
    s3: Any, destination: Destination, now: dt.datetime, markdown: str, document: dict
) -> tuple[str, str]:
    """`<prefix>YYYY/MM/DD/HHMMSSZ-report.md` and `.json`; the bucket expires them."""
    prefix = destination.prefix
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    stem = f"{prefix}{now.astimezone(dt.UTC):%Y/%m/%d/%H%M%S}Z-report"
    objects = (
        (f"{stem}.md", markdown.encode(), "text/markdown; charset=utf-8"),
        (f"{stem}.json", _json_text(document).encode(), "application/json"),
    )
    for key, body, content_type in objects:
        s3.put_object(Bucket=destination.bucket, Key=key, Body=body, ContentType=content_type)
    return (objects[0][0], objects[1][0])


def handler(event: dict, context: Any, clients: AwsClients | None = None) -> dict[str, Any]:
    """EventBridge Scheduler entry point: one monitoring run, stored and (on violations) published."""
    telemetry.configure_logging()
    config = load_config(env.require(env.MONITOR_CONFIG), env.MONITOR_CONFIG)
    destination = Destination(
        bucket=env.require(env.MONITOR_BUCKET),
        prefix=env.optional(env.MONITOR_PREFIX, "") or "",
        topic_arn=env.require(env.ALERTS_TOPIC_ARN),
    )
    result = run(
        config,
        clients or _container_clients,
        destination,
        environment=env.optional(env.ENVIRONMENT),
    )
    return result.summary()


def main(argv: Sequence[str] | None = None, clients: AwsClients | None = None) -> int:
    """The CI command: prints the report; stores and publishes only when asked."""
    # stdout carries only the report (CI appends it to the job summary); the
    # log is quiet unless LOG_LEVEL asks for more.
    telemetry.configure_logging(stream="stderr", default_level="WARNING")
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, or a usage error argparse already printed
        return int(exit_request.code or 0)
    try:
        config = _cli_config(args)
        destination = _cli_destination(args)
        clients = clients or AwsClients(region=cli_region(args.region))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = run(
            config,
            clients,
            destination,
            environment=env.optional(env.ENVIRONMENT),
        )
    except (BotoCoreError, ClientError) as error:
        print(f"error: AWS call failed: {error}", file=sys.stderr)
        return EXIT_AWS_ERROR

    sys.stdout.write(result.markdown if args.format == "markdown" else _json_text(result.document))
    for key in result.report_keys:
        print(f"stored s3://{destination.bucket}/{key}", file=sys.stderr)
    if result.published:
        print(f"published to {destination.topic_arn}", file=sys.stderr)
    if args.fail_on_violation and result.report.violations:
        return EXIT_VIOLATIONS
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m handlers.phase2_monitor",
        description="Check the Phase 2 resources against their thresholds and print the report.",
        epilog="Exit codes: 0 ok, 1 violations (with --fail-on-violation), "
        "2 usage or config error, 3 AWS call failed.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="monitor config JSON (e.g. `pulumi stack output monitor_config > monitor.json`)",
    )
    source.add_argument(
        "--config-env",
        action="store_true",
        help=f"read the config from ${env.MONITOR_CONFIG} (the default)",
    )
    parser.add_argument(
        "--hours", type=_hours, help="lookback window in hours (overrides lookback_hours)"
    )
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument(
        "--region",
        help="AWS region of the Phase 2 resources (default: $AWS_REGION, $AWS_DEFAULT_REGION, "
        "then the AWS profile's region)",
    )
    parser.add_argument(
        "--fail-on-violation", action="store_true", help="exit 1 when a threshold is violated"
    )
    parser.add_argument(
        "--store",
        action=argparse.BooleanOptionalAction,
        default=False,
        help=f"write the report to ${env.MONITOR_BUCKET} under ${env.MONITOR_PREFIX}",
    )
    parser.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=False,
        help=f"publish violations to ${env.ALERTS_TOPIC_ARN}",
    )
    return parser


def _hours(raw: str) -> int:
    try:
        hours = int(raw)
    except ValueError:
        hours = 0
    if not 1 <= hours <= MAX_LOOKBACK_HOURS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_LOOKBACK_HOURS}; got {raw!r}"
        )
    return hours


def cli_region(flag: str | None) -> str:
    """--region, else AWS_REGION, else what botocore finds (AWS_DEFAULT_REGION, the profile).

    AWS_REGION comes before AWS_DEFAULT_REGION and the profile for every AWS SDK
    (https://docs.aws.amazon.com/sdkref/latest/guide/feature-region.html) and the
    AWS CLI (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html);
    botocore itself reads only the other two.
    """
    region = flag or env.optional(env.AWS_REGION) or boto3.Session().region_name
    if not region:
        raise ConfigError(
            "no AWS region: pass --region or set AWS_REGION (or AWS_DEFAULT_REGION, "
            "or region in the AWS profile)"
        )
    return region


def _cli_config(args: argparse.Namespace) -> MonitorConfig:
    if args.config is not None:
        try:
            text = args.config.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"cannot read --config {args.config}: {error.strerror}") from None
        config = load_config(text, str(args.config))
    else:
        text = env.optional(env.MONITOR_CONFIG)
        if text is None:
            raise ConfigError(f"{env.MONITOR_CONFIG} is not set; set it or pass --config FILE")
        config = load_config(text, env.MONITOR_CONFIG)
    if args.hours is not None:
        config = dataclasses.replace(config, lookback_hours=args.hours)
    return config


def _cli_destination(args: argparse.Namespace) -> Destination:
    def required(name: str, flag: str) -> str:
        value = env.optional(name)
        if value is None:
            raise ConfigError(f"{flag} needs {name} to be set")
        return value

    return Destination(
        bucket=required(env.MONITOR_BUCKET, "--store") if args.store else None,
        prefix=env.optional(env.MONITOR_PREFIX, "") or "",
        topic_arn=required(env.ALERTS_TOPIC_ARN, "--publish") if args.publish else None,
    )


def _json_text(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.exit(main())
