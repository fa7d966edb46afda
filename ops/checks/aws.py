"""Read-only AWS calls the checks share, each made once per run.

Several checks look at the same resource (a table's status, keys and
deletion protection all come from one DescribeTable), so answers are kept
for the run. Failures are not kept: each check that needs a missing
resource reports the error itself.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import boto3
from botocore.config import Config

T = TypeVar("T")

_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=10,
    read_timeout=30,
)
DESCRIBE_ALARMS_BATCH = 100  # DescribeAlarms takes at most 100 names


@functools.cache
def _process_session() -> boto3.session.Session:
    """One session per process: service models and endpoint rules load once."""
    return boto3.session.Session()


class AwsView:
    def __init__(self, region: str):
        self.region = region
        self._session = _process_session()
        self._clients: dict[str, Any] = {}
        self._answers: dict[tuple[str, ...], Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service, region_name=self.region, config=_CLIENT_CONFIG
            )
        return self._clients[service]

    def _once(self, key: tuple[str, ...], fetch: Callable[[], T]) -> T:
        if key not in self._answers:
            self._answers[key] = fetch()
        return self._answers[key]

    def account_id(self) -> str:
        """The account the checks run in (the stack's own)."""
        return self._once(("account",), lambda: self.client("sts").get_caller_identity()["Account"])

    # DynamoDB
    def table(self, name: str) -> dict[str, Any]:
        return self._once(
            ("table", name), lambda: self.client("dynamodb").describe_table(TableName=name)["Table"]
        )

    def time_to_live(self, name: str) -> dict[str, Any]:
        return self.client("dynamodb").describe_time_to_live(TableName=name)[
            "TimeToLiveDescription"
        ]

    def continuous_backups(self, name: str) -> dict[str, Any]:
        return self.client("dynamodb").describe_continuous_backups(TableName=name)[
            "ContinuousBackupsDescription"
        ]

    # Lambda and IAM
    def function(self, name: str) -> dict[str, Any]:
        """GetFunction: {"Configuration": ..., "Concurrency": ... (when reserved)}."""
        return self._once(
            ("function", name), lambda: self.client("lambda").get_function(FunctionName=name)
        )

    def function_arn(self, name: str) -> str:
        return self.function(name)["Configuration"]["FunctionArn"]

    def layer_version(self, version_arn: str) -> dict[str, Any]:
        # The same answer as GetLayerVersionByArn, which moto (the tests' AWS) lacks.
        layer_arn, _, number = version_arn.rpartition(":")
        return self.client("lambda").get_layer_version(
            LayerName=layer_arn, VersionNumber=int(number)
        )

    def function_policy(self, name: str) -> dict[str, Any]:
        policy = self.client("lambda").get_policy(FunctionName=name)["Policy"]
        return json.loads(policy)

    def role(self, name: str) -> dict[str, Any]:
        return self._once(
            ("role", name), lambda: self.client("iam").get_role(RoleName=name)["Role"]
        )

    def log_group(self, name: str) -> dict[str, Any] | None:
        def fetch() -> dict[str, Any] | None:
            pages = self.client("logs").get_paginator("describe_log_groups")
            for page in pages.paginate(logGroupNamePrefix=name):
                for group in page["logGroups"]:
                    if group["logGroupName"] == name:
                        return group
            return None

        return self._once(("log-group", name), fetch)

    # API Gateway (HTTP APIs)
    def api(self, api_id: str) -> dict[str, Any]:
        return self._once(
            ("api", api_id), lambda: self.client("apigatewayv2").get_api(ApiId=api_id)
        )

    def routes(self, api_id: str) -> list[dict[str, Any]]:
        return self._once(("routes", api_id), lambda: self._all_items("get_routes", api_id))

    def authorizer(self, api_id: str, authorizer_id: str) -> dict[str, Any]:
        return self._once(
            ("authorizer", api_id, authorizer_id),
            lambda: self.client("apigatewayv2").get_authorizer(
                ApiId=api_id, AuthorizerId=authorizer_id
            ),
        )

    def integrations(self, api_id: str) -> dict[str, dict[str, Any]]:
        return self._once(
            ("integrations", api_id),
            lambda: {
                item["IntegrationId"]: item for item in self._all_items("get_integrations", api_id)
            },
        )

    def stage(self, api_id: str, stage_name: str) -> dict[str, Any]:
        return self._once(
            ("stage", api_id, stage_name),
            lambda: self.client("apigatewayv2").get_stage(ApiId=api_id, StageName=stage_name),
        )

    def _all_items(self, operation: str, api_id: str) -> list[dict[str, Any]]:
        # apigatewayv2 has no paginators for these; NextToken is followed by hand.
        client = self.client("apigatewayv2")
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {"ApiId": api_id}
        while True:
            page = getattr(client, operation)(**request)
            items.extend(page.get("Items", []))
            if not page.get("NextToken"):
                return items
            request["NextToken"] = page["NextToken"]

    # EventBridge Scheduler, CloudWatch, SNS, SQS, Secrets Manager, KMS
    def schedule(self, name: str) -> dict[str, Any]:
        return self.client("scheduler").get_schedule(Name=name)

    def alarms(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Metric and composite alarms by name (absent names are simply not in the map)."""
        wanted = tuple(sorted(set(names)))

        def fetch() -> dict[str, dict[str, Any]]:
            found: dict[str, dict[str, Any]] = {}
            client = self.client("cloudwatch")
            for start in range(0, len(wanted), DESCRIBE_ALARMS_BATCH):
                batch = list(wanted[start : start + DESCRIBE_ALARMS_BATCH])
                pages = client.get_paginator("describe_alarms").paginate(
                    AlarmNames=batch, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
                )
                for page in pages:
                    for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                        found[alarm["AlarmName"]] = alarm
            return found

        return self._once(("alarms", *wanted), fetch)

    def dashboard(self, name: str) -> dict[str, Any]:
        return self.client("cloudwatch").get_dashboard(DashboardName=name)

    def topic_attributes(self, arn: str) -> dict[str, str]:
        return self.client("sns").get_topic_attributes(TopicArn=arn)["Attributes"]

    def subscriptions(self, topic_arn: str) -> list[dict[str, Any]]:
        pages = self.client("sns").get_paginator("list_subscriptions_by_topic")
        return [sub for page in pages.paginate(TopicArn=topic_arn) for sub in page["Subscriptions"]]

    def queue_attributes(self, url: str) -> dict[str, str]:
        return self._once(
            ("queue", url),
            lambda: self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
                "Attributes"
            ],
        )

    def secret_string(self, secret_id: str) -> str | None:
        """The SecretString of the secret's AWSCURRENT version (None for a binary secret).

        Never kept: the caller decides how long a key lives in memory.
        """
        answer = self.client("secretsmanager").get_secret_value(SecretId=secret_id)
        return answer.get("SecretString")

    def key_rotation_enabled(self, key_id: str) -> bool:
        return bool(self.client("kms").get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"])
