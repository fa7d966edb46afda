"""SecureBase Analytics: one stack per environment (staging, production)."""

import pulumi
import pulumi_aws as aws

from components.api import AnalyticsApi, AnalyticsApiArgs, QueueNames
from components.clock import deployment_time
from components.data import AnalyticsData, AnalyticsDataArgs
from components.functions import ALL_FUNCTIONS, PHASE2_MONITOR
from components.observability import AnalyticsObservability, AnalyticsObservabilityArgs
from components.phase2_monitor import Phase2Monitor, Phase2MonitorArgs
from components.settings import load_settings


def raise_again(error: Exception) -> str:
    raise error


settings = load_settings()

# Every resource goes through this provider, so every resource carries the tags.
provider = aws.Provider(
    "aws",
    region=settings.region,
    default_tags=aws.ProviderDefaultTagsArgs(tags=settings.tags),
)
account_id = aws.get_caller_identity_output(
    opts=pulumi.InvokeOutputOptions(provider=provider)
).account_id
in_account = pulumi.ResourceOptions(provider=provider)

data = AnalyticsData(
    "analytics-data",
    AnalyticsDataArgs(
        name_prefix=settings.name_prefix,
        account_id=account_id,
        report_retention_days=settings.report_retention_days,
        access_log_retention_days=settings.log_retention_days,
        is_production=settings.is_production,
    ),
    opts=in_account,
)

# Observability owns the log groups the functions need before they exist, and
# alarms on the API, which exists only afterwards: its id is resolved later.
api_id, resolve_api_id = pulumi.deferred_output()
queue_names = QueueNames.for_prefix(settings.name_prefix)
observability = AnalyticsObservability(
    "analytics-observability",
    AnalyticsObservabilityArgs(
        settings=settings,
        account_id=account_id,
        functions=ALL_FUNCTIONS,
        table_names={key: table.name for key, table in data.tables.items()},
        bucket_name=data.bucket.bucket,
        api_id=api_id,
        dead_letter_queue_names=queue_names.dead_letter,
    ),
    opts=in_account,
)

try:
    api = AnalyticsApi(
        "analytics-api",
        AnalyticsApiArgs(
            settings=settings,
            account_id=account_id,
            tables=data.tables,
            bucket=data.bucket,
            data_key=data.data_key,
            log_groups=observability.log_groups,
        ),
        opts=in_account,
    )
except Exception as error:
    # Whatever waits for the id must fail too, or the engine waits for it forever.
    resolve_api_id(pulumi.Output.from_input(error).apply(raise_again))
    raise
resolve_api_id(api.api_id)

monitor = Phase2Monitor(
    "phase2-monitor",
    Phase2MonitorArgs(
        settings=settings,
        account_id=account_id,
        log_group=observability.log_groups[PHASE2_MONITOR.key],
        alerts_topic_arn=observability.alerts_topic.arn,
        alerts_key_arn=observability.alerts_key.arn,
        data_key_arn=data.data_key.arn if data.data_key else None,
        access_log_bucket=data.access_log_bucket,
        async_failures_queue_arn=api.async_failures_queue.arn,
        now=deployment_time(),
    ),
    opts=in_account,
)

pulumi.export("table_names", {key: table.name for key, table in data.tables.items()})
pulumi.export("table_arns", {key: table.arn for key, table in data.tables.items()})
pulumi.export("reports_bucket", data.bucket.bucket)
pulumi.export("access_log_bucket", data.access_log_bucket.bucket.bucket)
pulumi.export("api_url", api.api_url)
pulumi.export("api_id", api.api_id)
pulumi.export(
    "function_names",
    {
        **{key: f.name for key, f in api.functions.items()},
        PHASE2_MONITOR.key: monitor.function.name,
    },
)
pulumi.export("log_group_names", {key: g.name for key, g in observability.log_groups.items()})
pulumi.export("layer_arns", {key: layer.arn for key, layer in api.layers.items()})
pulumi.export(
    "schedule_names",
    {
        **{key: s.name for key, s in api.schedules.items()},
        PHASE2_MONITOR.key: monitor.schedule.name,
    },
)
pulumi.export("alarm_names", [alarm.name for alarm in (*observability.alarms, *monitor.alarms)])
pulumi.export("alerts_topic_arn", observability.alerts_topic.arn)
pulumi.export(
    "dashboard_names",
    {
        "analytics": observability.dashboard.dashboard_name,
        "phase2": monitor.dashboard.dashboard_name,
    },
)
pulumi.export("monitor_bucket", monitor.bucket.bucket)
pulumi.export("monitor_config", monitor.config)
pulumi.export("report_jobs_queue_url", api.report_jobs_queue.url)
pulumi.export("aggregator_shards_queue_url", api.aggregator_shards_queue.url)
pulumi.export("dead_letter_queue_urls", api.dead_letter_queue_urls)
