"""SecureBase Analytics: one stack per environment (staging, production)."""

import pulumi
import pulumi_aws as aws

from components.data import AnalyticsData, AnalyticsDataArgs
from components.settings import load_settings

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
        is_production=settings.is_production,
    ),
    opts=in_account,
)

pulumi.export("table_names", {key: table.name for key, table in data.tables.items()})
pulumi.export("table_arns", {key: table.arn for key, table in data.tables.items()})
pulumi.export("reports_bucket", data.bucket.bucket)
