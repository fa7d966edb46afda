"""Least privilege: the exact permissions of every role, for both stacks' real config.

EXPECTED is the reviewed table of function -> allowed actions on resources. A
role that can do anything more (or less) than its row fails the test.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components import iam
from tests.pulumi_program import ACCOUNT_ID, STACKS, Deployment, committed_deployment, run_program

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
REGION = "us-east-1"
# Actions AWS does not scope to a resource: the only ones allowed on "*".
UNSCOPED_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "cloudwatch:GetMetricData",
    "ce:GetCostAndUsage",
}


@pytest.fixture(scope="module", params=STACKS)
def deployment(request) -> Deployment:
    return committed_deployment(request.param)


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def allow(actions, resources, condition=None) -> dict:
    statement = {"Effect": "Allow", "Action": list(actions), "Resource": list(resources)}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def expected_policies(env: str) -> dict[str, list[dict]]:
    """Role name -> the statements of its one inline policy."""
    prefix = f"securebase-{env}"

    def table(name: str) -> str:
        return arn("dynamodb", f"table/{prefix}-{name}")

    def queue(name: str) -> str:
        return arn("sqs", f"{prefix}-analytics-{name}")

    def function(key: str) -> str:
        return arn("lambda", f"function:{prefix}-analytics-{key}")

    def base(function_name: str) -> list[dict]:
        return [
            allow(
                ["logs:CreateLogStream", "logs:PutLogEvents"],
                [arn("logs", f"log-group:/aws/lambda/{function_name}:*")],
            ),
            allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"]),
        ]

    mail_domain = (
        "securebase.example.com" if env == "production" else f"{env}.securebase.example.com"
    )
    bucket_objects = f"arn:aws:s3:::{prefix}-reports-{ACCOUNT_ID}/*"
    # Staging's buckets use SSE-S3: no key to grant.
    data_key = (
        [
            allow(
                ["kms:GenerateDataKey", "kms:Decrypt"],
                [arn("kms", "key/analytics-data-data-key-key-id")],
            )
        ]
        if env == "production"
        else []
    )
    report_objects = [
        allow(["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"], [bucket_objects]),
        *data_key,
    ]
    send_failure = allow(["sqs:SendMessage"], [queue("async-failures")])
    email_link_key = arn("kms", "key/analytics-api-email-link-key-key-id")

    return {
        f"{prefix}-analytics-authorizer": [
            *base(f"{prefix}-analytics-authorizer"),
            allow(
                ["secretsmanager:GetSecretValue"],
                [arn("secretsmanager", f"secret:securebase/{env}/jwt-signing-key-??????")],
            ),
            allow(["dynamodb:GetItem"], [table("customers")]),
        ],
        f"{prefix}-analytics-query": [
            *base(f"{prefix}-analytics-query"),
            allow(["dynamodb:Query"], [table("metrics")]),
            allow(["dynamodb:GetItem", "dynamodb:PutItem"], [table("report-cache")]),
        ],
        f"{prefix}-analytics-reporter": [
            *base(f"{prefix}-analytics-reporter"),
            allow(["dynamodb:Query"], [table("metrics")]),
            allow(
                [
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Query",
                ],
                [table("reports")],
            ),
            allow(["dynamodb:GetItem", "dynamodb:PutItem"], [table("report-cache")]),
            *report_objects,
            allow(["sqs:SendMessage"], [queue("report-jobs")]),
        ],
        f"{prefix}-analytics-report-engine": [
            *base(f"{prefix}-analytics-report-engine"),
            allow(["dynamodb:Query"], [table("metrics")]),
            allow(
                [
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                ],
                [table("reports")],
            ),
            allow(
                [
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Query",
                ],
                [table("report-schedules")],
            ),
            allow(["dynamodb:Query"], [table("report-schedules") + "/index/due-by-next-run"]),
            *report_objects,
            allow(
                [
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Query",
                ],
                [table("report-emails")],
            ),
            allow(["dynamodb:GetItem"], [table("customers")]),
            allow(["kms:GenerateMac"], [email_link_key]),
            allow(
                ["ses:SendRawEmail"],
                # The domain, the address should it be verified on its own, and the
                # configuration set every send names.
                [
                    arn("ses", f"identity/{mail_domain}"),
                    arn("ses", f"identity/reports@{mail_domain}"),
                    arn("ses", f"configuration-set/{prefix}-analytics-report-email"),
                ],
                {"StringEquals": {"ses:FromAddress": f"reports@{mail_domain}"}},
            ),
            allow(
                ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                [queue("report-jobs")],
            ),
            send_failure,
        ],
        f"{prefix}-analytics-email-consent": [
            *base(f"{prefix}-analytics-email-consent"),
            allow(["dynamodb:UpdateItem"], [table("report-emails")]),
            allow(["kms:VerifyMac"], [email_link_key]),
            send_failure,
        ],
        f"{prefix}-analytics-aggregator": [
            *base(f"{prefix}-analytics-aggregator"),
            allow(["dynamodb:Scan"], [table("customers")]),
            allow(
                [
                    "dynamodb:BatchWriteItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                ],
                [table("metrics")],
            ),
            allow(["cloudwatch:GetMetricData", "ce:GetCostAndUsage"], ["*"]),
            allow(["securityhub:GetFindings"], [arn("securityhub", "hub/default")]),
            allow(["sqs:SendMessage"], [queue("aggregator-shards")]),
            send_failure,
        ],
        f"{prefix}-analytics-aggregator-shard": [
            *base(f"{prefix}-analytics-aggregator-shard"),
            allow(
                ["dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                [table("metrics")],
            ),
            allow(["cloudwatch:GetMetricData"], ["*"]),
            allow(
                ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                [queue("aggregator-shards")],
            ),
        ],
        f"{prefix}-phase2-monitor": [
            *base(f"{prefix}-phase2-monitor"),
            allow(["cloudwatch:GetMetricData"], ["*"]),
            allow(["cloudwatch:DescribeAlarms"], [arn("cloudwatch", "alarm:*")]),
            allow(
                ["s3:PutObject"],
                [f"arn:aws:s3:::{prefix}-phase2-monitor-{ACCOUNT_ID}/phase2-monitor/*"],
            ),
            allow(["sns:Publish"], [arn("sns", f"{prefix}-analytics-alerts")]),
            allow(
                ["kms:GenerateDataKey", "kms:Decrypt"],
                [arn("kms", "key/analytics-observability-alerts-key-key-id")],
            ),
            *data_key,
            send_failure,
        ],
        f"{prefix}-analytics-scheduler": [
            allow(["lambda:InvokeFunction"], [function("aggregator"), function("report-engine")]),
            send_failure,
        ],
        f"{prefix}-phase2-monitor-scheduler": [
            allow(["lambda:InvokeFunction"], [arn("lambda", f"function:{prefix}-phase2-monitor")]),
            send_failure,
        ],
    }


def policies(deployment: Deployment) -> dict[str, dict]:
    """Role name -> its inline policy document."""
    # The mocks give a role its name as id, which is what a RolePolicy names.
    role_names = {r.inputs["name"] for r in deployment.of_type(ROLE)}
    found = {}
    for policy in deployment.of_type(ROLE_POLICY):
        role_name = policy.inputs["role"]
        assert role_name in role_names
        assert role_name not in found, f"{role_name} has more than one inline policy"
        found[role_name] = json.loads(policy.inputs["policy"])
    return found


def test_every_role_allows_exactly_its_row_of_the_table(deployment):
    actual = policies(deployment)
    expected = expected_policies(deployment.stack)
    assert set(actual) == set(expected)
    for role_name, statements in expected.items():
        assert actual[role_name] == {"Version": "2012-10-17", "Statement": statements}, role_name


def test_roles_have_no_managed_policies_and_one_inline_policy(deployment):
    for role in deployment.of_type(ROLE):
        assert "managedPolicyArns" not in role.inputs, role.name
        assert "inlinePolicies" not in role.inputs, role.name
    assert len(deployment.of_type(ROLE_POLICY)) == len(deployment.of_type(ROLE))


def test_only_unscoped_actions_get_a_wildcard_resource(deployment):
    for role_name, document in policies(deployment).items():
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            assert not any(action.endswith("*") for action in statement["Action"]), role_name
            if "*" in statement["Resource"]:
                assert set(statement["Action"]) <= UNSCOPED_ACTIONS, role_name


@pytest.mark.parametrize(
    ("role_suffix", "service"),
    [
        ("analytics-authorizer", "lambda.amazonaws.com"),
        ("analytics-query", "lambda.amazonaws.com"),
        ("analytics-reporter", "lambda.amazonaws.com"),
        ("analytics-report-engine", "lambda.amazonaws.com"),
        ("analytics-aggregator", "lambda.amazonaws.com"),
        ("analytics-aggregator-shard", "lambda.amazonaws.com"),
        ("analytics-email-consent", "lambda.amazonaws.com"),
        ("phase2-monitor", "lambda.amazonaws.com"),
        ("analytics-scheduler", "scheduler.amazonaws.com"),
        ("phase2-monitor-scheduler", "scheduler.amazonaws.com"),
    ],
)
def test_each_role_trusts_one_service_acting_for_this_account(deployment, role_suffix, service):
    role = deployment.one(
        ROLE, lambda r: r.inputs["name"] == f"securebase-{deployment.stack}-{role_suffix}"
    )
    assert json.loads(role.inputs["assumeRolePolicy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
            }
        ],
    }


def test_jwks_tokens_need_no_secret_access():
    deployment = run_program(
        "staging",
        {"jwtSecretName": None, "jwtJwksUrl": "https://auth.staging.securebase.example.com/jwks"},
    )
    authorizer = policies(deployment)["securebase-staging-analytics-authorizer"]
    assert [s["Action"] for s in authorizer["Statement"]] == [
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
        ["dynamodb:GetItem"],
    ]


def test_table_operations_are_what_the_functions_may_call():
    assert iam.table_operations() == {
        "metrics": ("BatchWriteItem", "PutItem", "Query", "UpdateItem"),
        "report-cache": ("GetItem", "PutItem"),
        "report-schedules": (
            "DeleteItem",
            "GetItem",
            "PutItem",
            "Query",
            "TransactWriteItems",
            "UpdateItem",
        ),
        "reports": ("DeleteItem", "GetItem", "PutItem", "Query", "UpdateItem"),
        "report-emails": ("DeleteItem", "GetItem", "PutItem", "Query", "UpdateItem"),
    }


def test_an_unknown_placeholder_is_an_error_not_a_silent_gap():
    grant = iam.Grant(("s3:GetObject",), ("<bukcet>/*",))
    with pytest.raises(KeyError, match="<bukcet>"):
        iam.policy_document([grant], {"bucket": "arn:aws:s3:::b"})


def test_a_conditional_grant_is_left_out_only_when_its_value_is_unset():
    grant = iam.Grant(("kms:Decrypt",), ("<data-key>",), only_if="data-key")
    assert iam.policy_document([grant], {"data-key": None})["Statement"] == []
    assert iam.policy_document([grant], {"data-key": "arn:k"})["Statement"] == [
        {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": ["arn:k"]}
    ]


@given(st.dictionaries(st.sampled_from(["a", "b-c", "d:e"]), st.text(min_size=1), min_size=3))
def test_fill_replaces_every_placeholder_and_nothing_else(values):
    template = "x<a>y<b-c>z<d:e>"
    assert iam.fill(template, values) == f"x{values['a']}y{values['b-c']}z{values['d:e']}"
