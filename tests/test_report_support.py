"""Shared set-up of the moto-backed report tests (no tests here).

`moto_stack` creates the tables, bucket, queue and verified sender exactly as
the handlers expect them and sets their environment; `seed_tenant` writes a
tenant's daily usage, costs and compliance through the metrics layout.
"""

import contextlib
import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from handlers.shared.dynamo import batch_write, serialize
from handlers.shared.metrics_layout import (
    ComplianceIssue,
    ComplianceSnapshot,
    DailyCost,
    DailyUsage,
    compliance_item,
    cost_item,
    daily_item,
)
from handlers.shared.reports.service import client_config, s3_config
from handlers.shared.tables import create_tables
from local.emulator_server import describe_email

NOW = dt.datetime(2026, 11, 23, 14, 5, 9, tzinfo=dt.UTC)
REGION = "us-east-1"
SENDER = "reports@securebase.example.com"
ORIGIN = "https://portal.example.com"
BUCKET = "securebase-test-reports-123456789012"
URL_EXPIRY_SECONDS = 900
RETENTION_DAYS = 90
CUSTOMERS_TABLE = "securebase-test-customers"
CONFIGURATION_SET = "securebase-test-email"
LINKS_BASE_URL = "https://api.securebase.example.com"
# Reports to these tenants' contact domains go out without confirmation.
CUSTOMERS = {
    "acme": {"name": "Acme Corporation", "contact_email": "admin@acme.example"},
    "globex": {
        "name": "Globex Corporation",
        "contact_email": "it@globex.example",
        "email_domains": ["globex-partner.example"],
    },
}
SERVICES = {"AWS Lambda": Decimal("1.25"), "Amazon Simple Storage Service": Decimal("0.5")}


@dataclass
class MotoStack:
    dynamodb: Any
    s3: Any
    sqs: Any
    ses: Any
    kms: Any
    tables: Mapping[str, str]
    queue_url: str
    link_key_id: str

    def queued_messages(self) -> list[tuple[str | None, dict[str, Any]]]:
        """(MessageGroupId, body) of up to 10 queued messages (they are then in flight)."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["MessageGroupId"]
        )
        return [
            (message.get("Attributes", {}).get("MessageGroupId"), json.loads(message["Body"]))
            for message in messages.get("Messages", [])
        ]

    def queued_jobs(self) -> list[dict[str, Any]]:
        return [body for _, body in self.queued_messages()]

    def get_object(self, key: str) -> dict[str, Any]:
        return self.s3.get_object(Bucket=BUCKET, Key=key)


def sent_emails(recipient: str | None = None) -> list[dict[str, Any]]:
    """What moto's SES accepted, oldest first, as `GET /_local/emails` shows it
    (`to`, `kind`, `subject`, `text`, `html`, `unsubscribe_url`, `confirm_url`)."""
    emails = [
        describe_email(message)
        for message in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    ]
    return [email for email in emails if email and (recipient is None or recipient in email["to"])]


@contextlib.contextmanager
def moto_stack(monkeypatch: Any) -> Iterator[MotoStack]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION, config=client_config())
        tables = create_tables(dynamodb, "test")
        s3 = boto3.client("s3", region_name=REGION, config=s3_config())
        s3.create_bucket(Bucket=BUCKET)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="securebase-test-analytics-report-jobs")["QueueUrl"]
        ses = boto3.client("ses", region_name=REGION)
        ses.verify_email_identity(EmailAddress=SENDER)
        ses.create_configuration_set(ConfigurationSet={"Name": CONFIGURATION_SET})
        kms = boto3.client("kms", region_name=REGION)
        link_key_id = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")[
            "KeyMetadata"
        ]["KeyId"]
        dynamodb.create_table(
            TableName=CUSTOMERS_TABLE,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"}],
        )
        for tenant, record in CUSTOMERS.items():
            dynamodb.put_item(
                TableName=CUSTOMERS_TABLE,
                Item=serialize({"customer_id": tenant, "status": "active", **record}),
            )
        for name, value in {
            "ENVIRONMENT": "test",
            "METRICS_TABLE": tables["metrics"],
            "REPORTS_TABLE": tables["reports"],
            "SCHEDULES_TABLE": tables["report-schedules"],
            "CACHE_TABLE": tables["report-cache"],
            "REPORTS_BUCKET": BUCKET,
            "REPORT_URL_EXPIRY_SECONDS": str(URL_EXPIRY_SECONDS),
            "REPORT_RETENTION_DAYS": str(RETENTION_DAYS),
            "REPORT_JOBS_QUEUE_URL": queue_url,
            "REPORT_SENDER": SENDER,
            "CORS_ALLOWED_ORIGINS": ORIGIN,
            "REPORT_EMAILS_TABLE": tables["report-emails"],
            "CUSTOMERS_TABLE": CUSTOMERS_TABLE,
            "SES_CONFIGURATION_SET": CONFIGURATION_SET,
            "EMAIL_LINK_KEY_ID": link_key_id,
            "EMAIL_LINKS_BASE_URL": LINKS_BASE_URL,
        }.items():
            monkeypatch.setenv(name, value)
        for optional in (
            "REPORTS_KMS_KEY_ARN",
            "REPORT_SYNC_BUDGET_SECONDS",
            "REPORT_MAX_PENDING_PER_TENANT",
            "REPORT_EMAILS_PER_DAY",
            "REPORT_RECIPIENT_DOMAINS",
        ):
            monkeypatch.delenv(optional, raising=False)
        yield MotoStack(dynamodb, s3, sqs, ses, kms, tables, queue_url, link_key_id)


def seed_tenant(
    stack: MotoStack,
    tenant: str,
    days: int = 70,
    services: Mapping[str, Decimal] = SERVICES,
    now: dt.datetime = NOW,
) -> None:
    """`days` days up to today: every usage metric, costs per service, compliance."""
    today = now.date()
    items = []
    for offset in range(days):
        day = today - dt.timedelta(days=offset)
        items += [
            daily_item(tenant, DailyUsage(day, "api_calls", Decimal(1000 + offset), 24)),
            daily_item(tenant, DailyUsage(day, "storage_gb", Decimal("12.5"), 24)),
            daily_item(tenant, DailyUsage(day, "compute_hours", Decimal("2.25"), 24)),
            daily_item(tenant, DailyUsage(day, "data_transfer_gb", Decimal("0.75"), 24)),
            cost_item(
                tenant,
                DailyCost(day, "USD", dict(services), {"us-east-1": sum(services.values())}),
            ),
        ]
    for offset, score in ((0, Decimal("92.5")), (7, Decimal("90"))):
        items.append(
            compliance_item(
                tenant,
                ComplianceSnapshot(
                    day=today - dt.timedelta(days=offset),
                    score=score,
                    passed_controls=37,
                    failed_controls=3,
                    findings={"critical": 0, "high": 1, "medium": 2, "low": 4},
                    top_issues=(
                        ComplianceIssue(
                            "S3.1", "S3 Block Public Access should be enabled", "high", 2
                        ),
                    ),
                    generated_at="2026-11-23T13:00:00Z",
                ),
            )
        )
    batch_write(stack.dynamodb, stack.tables["metrics"], items)


def api_event(
    route_key: str,
    tenant: str,
    *,
    path_parameters: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    subject: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event as the authorizer leaves it
    (with the token's `sub` when `subject` is given)."""
    method, path = route_key.split(" ", 1)
    for name, value in (path_parameters or {}).items():
        path = path.replace("{" + name + "}", value)
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "headers": {"origin": ORIGIN, "content-type": "application/json", **(headers or {})},
        "queryStringParameters": dict(query) if query else None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False,
        "requestContext": {
            "requestId": "req-1",
            "http": {"method": method, "path": path},
            "authorizer": {
                "lambda": {"customer_id": tenant, **({"sub": subject} if subject else {})}
            },
        },
    }


def body_of(response: Mapping[str, Any]) -> Any:
    return json.loads(response["body"]) if response["body"] else None


def ids(reports: Sequence[Mapping[str, Any]]) -> list[str]:
    return [report["id"] for report in reports]
