"""The embedded AWS emulator (moto in server mode, loopback only) and what lives in it.

`provision` creates what the stack would: the four tables from
`handlers/shared/tables.py` (the definitions AnalyticsData deploys), the
reports bucket with the same guard rails, the JWT secret, the report-jobs
queue, a verified SES sender and the Phase 2 customers table the aggregator
reads. It returns the environment the handlers run with, the same variable
names AnalyticsApi sets in AWS.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from components import bucket_rules
from handlers.shared import env
from handlers.shared.mail.mailer import KIND_HEADER
from handlers.shared.tables import create_tables
from local.config import ACCOUNT_ID, AUDIENCE, ENVIRONMENT, ISSUER, REGION, TENANT_CLAIM, TENANTS

PREFIX = f"securebase-{ENVIRONMENT}"
REPORTS_BUCKET = f"{PREFIX}-reports-{ACCOUNT_ID}"
CUSTOMERS_TABLE = f"{PREFIX}-customers"
JWT_SECRET_NAME = f"securebase/{ENVIRONMENT}/jwt-signing-key"
REPORT_JOBS_QUEUE = f"{PREFIX}-analytics-report-jobs"
SENDER_DOMAIN = "local.securebase.example.com"
REPORT_SENDER = f"reports@{SENDER_DOMAIN}"
CONFIGURATION_SET = f"{PREFIX}-report-email"
EMAILS_PER_DAY = 200  # the deployed default
CORS_ORIGINS = ("http://localhost:5173", "http://127.0.0.1:5173")
REPORT_RETENTION_DAYS = 90
# Far below the deployed 20 s, so that large reports (every PDF, a detailed
# 365-day XLSX) take the deferred path locally too: 202, then the report-jobs
# queue and the report engine (local.jobs).
REPORT_SYNC_BUDGET_SECONDS = 2


@dataclass
class Emulator:
    """moto's server on 127.0.0.1; boto3 reaches it through AWS_ENDPOINT_URL."""

    # 0: the system picks a free port when the server binds, so no other
    # process can take it between choosing and binding.
    port: int = 0

    def __post_init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        _make_dynamodb_writes_atomic()
        # moto's server logs every request it serves; the console is for progress.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        # Everything in this process (handlers included) talks to the
        # emulator with throwaway credentials, never to a real account.
        os.environ.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - the emulator ignores it
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
        )
        for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            os.environ.pop(variable, None)

    def stop(self) -> None:
        self._server.stop()


_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def _make_dynamodb_writes_atomic() -> None:
    """Serialises moto's DynamoDB writes, as DynamoDB's conditional writes are atomic.

    moto checks a write's condition and then applies it in steps that two
    requests served on two threads can interleave, so two conditional puts
    could both "succeed" where DynamoDB lets one. The per-tenant quotas rest
    on those conditions (handlers.shared.reports.pending, schedule_store).
    """
    import functools
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_securebase_atomic", False):
        return
    lock = threading.RLock()

    def atomic(write: Any) -> Any:
        @functools.wraps(write)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return write(*args, **kwargs)

        return locked

    for name in _DYNAMODB_WRITES:
        setattr(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))
    DynamoDBBackend._securebase_atomic = True  # type: ignore[attr-defined]


def provision(jwt_secret: str, links_base_url: str) -> dict[str, str]:
    """Creates the stack's resources in the emulator; returns the handlers' environment.

    `links_base_url`: where the front door listens, which the links in emails name.
    """
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    tables = create_tables(dynamodb, ENVIRONMENT)
    dynamodb.create_table(
        TableName=CUSTOMERS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"}],
    )
    for tenant in TENANTS:
        dynamodb.put_item(
            TableName=CUSTOMERS_TABLE,
            Item={
                "customer_id": {"S": tenant.customer_id},
                "name": {"S": tenant.name},
                "aws_account_id": {"S": tenant.aws_account_id},
                "status": {"S": tenant.status},
                "contact_email": {"S": tenant.contact_email},
            },
        )

    _create_reports_bucket(boto3.client("s3", region_name=REGION))
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=JWT_SECRET_NAME, SecretString=jwt_secret
    )
    sqs = boto3.client("sqs", region_name=REGION)
    dead_letters = sqs.create_queue(QueueName=f"{REPORT_JOBS_QUEUE}-dlq")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])
    jobs = sqs.create_queue(
        QueueName=REPORT_JOBS_QUEUE,
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": dead_letter_arn["Attributes"]["QueueArn"],
                    "maxReceiveCount": "3",
                }
            ),
        },
    )["QueueUrl"]
    ses = boto3.client("ses", region_name=REGION)
    ses.verify_domain_identity(Domain=SENDER_DOMAIN)
    ses.create_configuration_set(ConfigurationSet={"Name": CONFIGURATION_SET})
    link_key = boto3.client("kms", region_name=REGION).create_key(
        KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC", Description="email link MACs"
    )["KeyMetadata"]["KeyId"]

    return {
        env.ENVIRONMENT: ENVIRONMENT,
        env.LOG_LEVEL: os.environ.get("LOG_LEVEL", "WARNING"),
        env.METRICS_TABLE: tables["metrics"],
        env.REPORTS_TABLE: tables["reports"],
        env.SCHEDULES_TABLE: tables["report-schedules"],
        env.CACHE_TABLE: tables["report-cache"],
        env.REPORTS_BUCKET: REPORTS_BUCKET,
        env.CUSTOMERS_TABLE: CUSTOMERS_TABLE,
        env.JWT_ISSUER: ISSUER,
        env.JWT_AUDIENCE: AUDIENCE,
        env.JWT_TENANT_CLAIM: TENANT_CLAIM,
        env.JWT_SECRET_ID: secret["ARN"],
        env.CORS_ALLOWED_ORIGINS: ",".join(CORS_ORIGINS),
        env.CACHE_TTL_SECONDS: "60",
        env.REPORT_URL_EXPIRY_SECONDS: "900",
        env.REPORT_RETENTION_DAYS: str(REPORT_RETENTION_DAYS),
        env.REPORT_JOBS_QUEUE_URL: jobs,
        env.REPORT_SYNC_BUDGET_SECONDS: str(REPORT_SYNC_BUDGET_SECONDS),
        env.REPORT_SENDER: REPORT_SENDER,
        env.REPORT_EMAILS_TABLE: tables["report-emails"],
        env.REPORT_EMAILS_PER_DAY: str(EMAILS_PER_DAY),
        env.SES_CONFIGURATION_SET: CONFIGURATION_SET,
        env.EMAIL_LINK_KEY_ID: link_key,
        env.EMAIL_LINKS_BASE_URL: links_base_url,
        env.USAGE_NAMESPACE: "SecureBase/Platform",
        env.USAGE_TENANT_DIMENSION: "CustomerId",
        env.USAGE_METRIC_NAMES: json.dumps(
            {
                "api_calls": "ApiCalls",
                "storage_gb": "StorageBytes",
                "compute_hours": "ComputeSeconds",
                "data_transfer_gb": "DataTransferBytes",
            }
        ),
        env.COST_REFRESH_HOURS: "6",
        env.HOURLY_RETENTION_DAYS: "7",
    }


def _create_reports_bucket(s3) -> None:
    """The bucket with the rules AnalyticsData deploys (SSE-S3, as in staging).

    The TLS-only bucket policy is left out: the emulator listens on plain HTTP
    on loopback, which that policy exists to refuse.
    """
    s3.create_bucket(Bucket=REPORTS_BUCKET)
    s3.put_public_access_block(
        Bucket=REPORTS_BUCKET, PublicAccessBlockConfiguration=bucket_rules.PUBLIC_ACCESS_BLOCK
    )
    s3.put_bucket_ownership_controls(
        Bucket=REPORTS_BUCKET,
        OwnershipControls={"Rules": [{"ObjectOwnership": bucket_rules.OBJECT_OWNERSHIP}]},
    )
    s3.put_bucket_encryption(
        Bucket=REPORTS_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_versioning(Bucket=REPORTS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=REPORTS_BUCKET,
        LifecycleConfiguration={"Rules": [bucket_rules.lifecycle_rule(REPORT_RETENTION_DAYS)]},
    )


def describe_email(message: Any) -> dict[str, Any] | None:
    """One email SES accepted, as `GET /_local/emails` shows it; None for what is not one.

    The service sends raw MIME only (handlers.shared.mail.mailer):
    the kind, both parts and the one-click unsubscribe headers are read back
    from it, and the links a person would follow are picked out.
    """
    from moto.ses.models import RawMessage

    if not isinstance(message, RawMessage):
        return None
    parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
    text = parsed.get_body(("plain",))
    markup = parsed.get_body(("html",))
    unsubscribe = str(parsed.get("List-Unsubscribe", "")).strip("<>")
    described = {
        "id": message.id,
        "kind": parsed.get(KIND_HEADER),
        "from": message.source,
        # moto adds the To header's addresses to the Destinations given.
        "to": list(dict.fromkeys(message.destinations)),
        "subject": str(parsed["Subject"]),
        "text": text.get_content() if text else "",
        "html": markup.get_content() if markup else "",
        "list_unsubscribe": parsed.get("List-Unsubscribe"),
        "list_unsubscribe_post": parsed.get("List-Unsubscribe-Post"),
        "unsubscribe_url": unsubscribe or None,
    }
    confirm = re.search(r"https?://\S+/email/confirm\?token=\S+", described["text"])
    if confirm:
        described["confirm_url"] = confirm.group(0)
    return described


def sent_emails(recipient: str | None = None) -> list[dict[str, Any]]:
    """The emails SES accepted, oldest first; only `recipient`'s if given.

    Read from moto's SES backend, which lives in this process with the server.
    """
    from moto.ses.models import ses_backends

    emails = []
    for message in ses_backends[ACCOUNT_ID][REGION].sent_messages:
        described = describe_email(message)
        if described is not None and (recipient is None or recipient in described["to"]):
            emails.append(described)
    return emails
