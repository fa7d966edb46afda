"""Synthetic platform signals for the local tenants, and seeding them into the emulator.

What the aggregator reads in AWS, generated deterministically (same numbers on
every start): hourly per-tenant CloudWatch usage metrics, Cost Explorer daily
costs by account, service and region (through moto's result queue), and
Security Hub control findings per tenant account.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from handlers.shared.usage_metrics import GIB
from local.config import TENANTS, Tenant

NAMESPACE = "SecureBase/Platform"
TENANT_DIMENSION = "CustomerId"
PUT_METRIC_DATA_LIMIT = 1000


@dataclass(frozen=True)
class Profile:
    """How big a tenant is: hourly means at the start of the window."""

    api_calls_per_hour: float
    storage_gib: float
    storage_growth_gib_per_day: float
    compute_seconds_per_hour: float
    transfer_gib_per_hour: float
    cost_scale: float
    regions: tuple[tuple[str, float], ...]


PROFILES = {
    "acme": Profile(5200, 240, 0.8, 5400, 1.4, 1.0, (("us-east-1", 0.7), ("eu-west-1", 0.3))),
    "globex": Profile(1900, 85, 0.3, 2100, 0.45, 0.38, (("us-west-2", 1.0),)),
    "initech": Profile(600, 30, 0.0, 700, 0.1, 0.1, (("us-east-1", 1.0),)),
}

# Daily cost means per Cost Explorer service for a tenant of scale 1.0 (USD).
SERVICE_DAILY_COST = {
    "Amazon Elastic Compute Cloud - Compute": 182.40,
    "AWS Lambda": 21.75,
    "Amazon Relational Database Service": 96.10,
    "Amazon Simple Storage Service": 38.20,
    "Amazon DynamoDB": 17.65,
    "Amazon CloudFront": 24.90,
    "AWS Data Transfer": 19.30,
    "AWS Key Management Service": 3.10,
    "Amazon CloudWatch": 8.45,
}

# (Security Hub control id, title, severity) from AWS Foundational Security Best Practices.
CONTROLS = (
    ("IAM.4", "IAM root user access key should not exist", "CRITICAL"),
    ("IAM.6", "Hardware MFA should be enabled for the root user", "CRITICAL"),
    (
        "EC2.19",
        "Security groups should not allow unrestricted access to ports with high risk",
        "CRITICAL",
    ),
    ("Lambda.1", "Lambda function policies should prohibit public access", "CRITICAL"),
    ("RDS.2", "RDS DB Instances should prohibit public access", "CRITICAL"),
    ("S3.8", "S3 general purpose buckets should block public access", "HIGH"),
    (
        "CloudTrail.1",
        "CloudTrail should be enabled and configured with at least one multi-Region trail",
        "HIGH",
    ),
    ("GuardDuty.1", "GuardDuty should be enabled", "HIGH"),
    ("EC2.2", "VPC default security groups should not allow inbound or outbound traffic", "HIGH"),
    ("EC2.8", "EC2 instances should use Instance Metadata Service Version 2 (IMDSv2)", "HIGH"),
    ("IAM.1", 'IAM policies should not allow full "*" administrative privileges', "HIGH"),
    ("ECR.1", "ECR private repositories should have image scanning configured", "HIGH"),
    ("S3.5", "S3 general purpose buckets should require requests to use SSL", "MEDIUM"),
    ("RDS.3", "RDS DB instances should have encryption at-rest enabled", "MEDIUM"),
    ("KMS.4", "AWS KMS key rotation should be enabled", "MEDIUM"),
    ("DynamoDB.2", "DynamoDB tables should have point-in-time recovery enabled", "MEDIUM"),
    ("S3.9", "S3 general purpose bucket server access logging should be enabled", "MEDIUM"),
    ("SSM.1", "Amazon EC2 instances should be managed by AWS Systems Manager", "MEDIUM"),
    ("EC2.7", "EBS default encryption should be enabled", "MEDIUM"),
    ("SQS.1", "Amazon SQS queues should be encrypted at rest", "MEDIUM"),
    ("IAM.3", "IAM users' access keys should be rotated every 90 days or less", "MEDIUM"),
    (
        "SecretsManager.1",
        "Secrets Manager secrets should have automatic rotation enabled",
        "MEDIUM",
    ),
    ("EC2.6", "VPC flow logging should be enabled in all VPCs", "MEDIUM"),
    (
        "CloudWatch.1",
        "A log metric filter and alarm should exist for usage of the root user",
        "LOW",
    ),
    (
        "IAM.18",
        "Ensure a support role has been created to manage incidents with AWS Support",
        "LOW",
    ),
)

# Controls each tenant fails, and on how many resources.
FAILING = {
    "acme": {"S3.8": 2, "EC2.8": 3, "KMS.4": 1, "S3.9": 4, "CloudWatch.1": 1},
    "globex": {
        "IAM.6": 1,
        "EC2.19": 2,
        "CloudTrail.1": 1,
        "GuardDuty.1": 1,
        "RDS.3": 2,
        "SSM.1": 6,
        "SQS.1": 1,
        "IAM.18": 1,
    },
    "initech": {"IAM.4": 1},
}


def hours(end_exclusive: dt.datetime, count: int) -> list[dt.datetime]:
    """The `count` whole UTC hours before `end_exclusive`, oldest first."""
    last = end_exclusive.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    return [last - dt.timedelta(hours=offset) for offset in range(count - 1, -1, -1)]


def _activity(hour: dt.datetime, rng: random.Random) -> float:
    """Busier in the working day (peak 14:00 UTC), quieter at weekends, with noise."""
    daily = 0.65 + 0.35 * math.sin((hour.hour - 8) / 24 * 2 * math.pi)
    weekly = 0.62 if hour.weekday() >= 5 else 1.0
    return daily * weekly * rng.uniform(0.9, 1.1)


def usage_datapoints(tenant: Tenant, window: Sequence[dt.datetime]) -> Iterator[dict[str, Any]]:
    """CloudWatch MetricData entries, one per hour and metric, as the platform publishes them."""
    profile = PROFILES[tenant.customer_id]
    rng = random.Random(f"usage-{tenant.customer_id}")
    start = window[0]
    for hour in window:
        days_in = (hour - start).total_seconds() / 86400
        growth = 1 + 0.003 * days_in
        activity = _activity(hour, rng)
        values = {
            "ApiCalls": ("Count", round(profile.api_calls_per_hour * activity * growth)),
            "StorageBytes": (
                "Bytes",
                round((profile.storage_gib + profile.storage_growth_gib_per_day * days_in) * GIB),
            ),
            "ComputeSeconds": (
                "Seconds",
                round(profile.compute_seconds_per_hour * activity * growth, 1),
            ),
            "DataTransferBytes": (
                "Bytes",
                round(profile.transfer_gib_per_hour * activity * growth * GIB),
            ),
        }
        for name, (unit, value) in values.items():
            yield {
                "MetricName": name,
                "Dimensions": [{"Name": TENANT_DIMENSION, "Value": tenant.customer_id}],
                "Timestamp": hour,
                "Value": value,
                "Unit": unit,
            }


def daily_costs(
    tenant: Tenant, days: Sequence[dt.date]
) -> dict[dt.date, dict[tuple[str, str], Decimal]]:
    """Cost per (service, region) per day; service and region views sum to the same totals."""
    profile = PROFILES[tenant.customer_id]
    rng = random.Random(f"costs-{tenant.customer_id}")
    result = {}
    for index, day in enumerate(days):
        growth = 1 + 0.002 * index
        weekend = 0.8 if day.weekday() >= 5 else 1.0
        amounts = {}
        for service, mean in SERVICE_DAILY_COST.items():
            service_cost = mean * profile.cost_scale * growth * weekend * rng.uniform(0.85, 1.15)
            for region, share in profile.regions:
                amounts[(service, region)] = Decimal(f"{service_cost * share:.10f}")
        result[day] = amounts
    return result


def cost_and_usage_result(group_by: str, days: Sequence[dt.date]) -> dict[str, Any]:
    """One GetCostAndUsage response, DAILY, grouped by LINKED_ACCOUNT and `group_by`."""
    by_day = {tenant: daily_costs(tenant, days) for tenant in TENANTS}
    results = []
    for day in days:
        groups = []
        for tenant in TENANTS:
            totals: dict[str, Decimal] = {}
            for (service, region), amount in by_day[tenant][day].items():
                key = service if group_by == "SERVICE" else region
                totals[key] = totals.get(key, Decimal(0)) + amount
            groups.extend(
                {
                    "Keys": [tenant.aws_account_id, key],
                    "Metrics": {"UnblendedCost": {"Amount": str(amount), "Unit": "USD"}},
                }
                for key, amount in sorted(totals.items())
            )
        results.append(
            {
                "TimePeriod": {
                    "Start": day.isoformat(),
                    "End": (day + dt.timedelta(days=1)).isoformat(),
                },
                "Total": {},
                "Groups": groups,
                "Estimated": day >= days[-1] - dt.timedelta(days=1),
            }
        )
    return {
        "ResultsByTime": results,
        "DimensionValueAttributes": [],
        "GroupDefinitions": [
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
            {"Type": "DIMENSION", "Key": group_by},
        ],
    }


def findings(tenant: Tenant, region: str, now: dt.datetime) -> list[dict[str, Any]]:
    """Security Hub findings (ASFF) for every control: FAILED where the tenant fails it."""
    failing = FAILING[tenant.customer_id]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    product_arn = f"arn:aws:securityhub:{region}::product/aws/securityhub"
    result = []
    for control_id, title, severity in CONTROLS:
        failed_resources = failing.get(control_id, 0)
        resources = max(failed_resources, 1) + (1 if failed_resources else 0)
        for index in range(resources):
            status = "FAILED" if index < failed_resources else "PASSED"
            result.append(
                {
                    "SchemaVersion": "2018-10-08",
                    "Id": f"arn:aws:securityhub:{region}:{tenant.aws_account_id}:security-control/{control_id}/finding/{tenant.customer_id}-{index}",
                    "ProductArn": product_arn,
                    # Security Hub sets it for its own findings; the emulator does not.
                    "CompanyName": "AWS",
                    "GeneratorId": f"security-control/{control_id}",
                    "AwsAccountId": tenant.aws_account_id,
                    "Types": [
                        "Software and Configuration Checks/Industry and Regulatory Standards"
                    ],
                    "CreatedAt": stamp,
                    "UpdatedAt": stamp,
                    "Severity": {"Label": severity if status == "FAILED" else "INFORMATIONAL"},
                    "Title": title,
                    "Description": title,
                    "ProductFields": {"ControlId": control_id},
                    "Resources": [
                        {
                            "Type": "Other",
                            "Id": f"arn:aws:{control_id.split('.')[0].lower()}:{region}:{tenant.aws_account_id}:resource/{index}",
                        }
                    ],
                    "Compliance": {"Status": status, "SecurityControlId": control_id},
                    "RecordState": "ACTIVE",
                    "Workflow": {"Status": "NEW"},
                }
            )
    # A failed finding the tenant suppressed: active, but it must not count.
    result.append(
        {
            **result[0],
            "Id": f"{result[0]['Id']}-suppressed",
            "Severity": {"Label": "HIGH"},
            "Compliance": {"Status": "FAILED", "SecurityControlId": "EC2.6"},
            "GeneratorId": "security-control/EC2.6",
            "Title": "VPC flow logging should be enabled in all VPCs",
            "Workflow": {"Status": "SUPPRESSED"},
        }
    )
    return result
