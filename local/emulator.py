"""The embedded AWS emulator (moto in server mode, loopback only, in a child process) and what lives in it.

`provision` creates what the stack would: the four tables from
`handlers/shared/tables.py` (the definitions AnalyticsData deploys), the
reports bucket with the same guard rails, the JWT secret, the report-jobs
queue, a verified SES sender and the Phase 2 customers table the aggregator
reads. It returns the environment the handlers run with, the same variable
names AnalyticsApi sets in AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import requests
from botocore.config import Config

from components import bucket_rules
from handlers.shared import env
from handlers.shared.tables import create_tables
from local.config import ACCOUNT_ID, AUDIENCE, ENVIRONMENT, ISSUER, REGION, TENANT_CLAIM, TENANTS
from local.emulator_server import SENT_MESSAGES_PATH

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_SECONDS = 10
# Kept-alive connections from each AWS client in this process to the emulator.
CONNECTIONS_PER_CLIENT = 50

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


class Emulator:
    """moto's server in a child process (local.emulator_server) on 127.0.0.1; boto3 reaches
    it through AWS_ENDPOINT_URL.

    A process of its own so that moto's work runs on another core than the
    front door's and the handlers'. It is in a session of its own, so a
    Ctrl-C in the terminal reaches only `python -m local`, which stops it
    after what uses it; if `python -m local` ends without stopping it, the
    end of its stdin does (see local.emulator_server).
    """

    def __init__(self) -> None:
        self.port = 0  # the port the emulator announces once it listens
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local.emulator_server"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            assert self._process.stdout is not None
            # Its first line, written once it listens: the port.
            announced = self._process.stdout.readline().strip()
            self._process.stdout.close()
            if not announced.isdigit():
                raise RuntimeError(
                    f"the AWS emulator did not start (exit code {self._process.wait()})"
                )
        except BaseException:
            self.stop()
            raise
        self.port = int(announced)

    def use(self) -> None:
        """Points every AWS client this process creates (handlers included) at the emulator,
        with throwaway credentials, never at a real account."""
        os.environ.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - the emulator ignores it
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
        )
        for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            os.environ.pop(variable, None)
        # In AWS an execution environment serves one request at a time; here
        # one process serves them all at once, through each handler's one
        # client. With botocore's default pool of 10 connections, the 11th
        # concurrent call's connection is discarded after use and the next
        # one opens another.
        session = botocore.session.get_session()
        session.set_default_client_config(Config(max_pool_connections=CONNECTIONS_PER_CLIENT))
        boto3.setup_default_session(botocore_session=session)

    def stop(self) -> None:
        """Closes the emulator's stdin, which ends it; kills it if it has not ended in time."""
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def sent_emails(recipient: str | None = None) -> list[dict[str, Any]]:
    """The emails SES accepted, oldest first; only `recipient`'s if given.

    moto keeps them in the emulator's process, which lists them
    (local.emulator_server.sent_emails).
    """
    response = requests.get(
        f"{os.environ['AWS_ENDPOINT_URL']}{SENT_MESSAGES_PATH}",
        params={"to": recipient} if recipient is not None else None,
        timeout=30,
    )
    response.raise_for_status()
    return response.json()
