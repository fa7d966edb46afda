"""Per-route latency alarms, evaluated on synthetic traffic as CloudWatch would.

The alarm definitions are the ones the program registers for production; the
evaluation is tests.cloudwatch_alarms (the Phase 2 monitor's comparison).
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from components.functions import REPORTER
from handlers.shared.routes import ROUTES
from tests.cloudwatch_alarms import ALARM, OK, Request, alarm_state, published_latency
from tests.pulumi_program import Deployment, committed_deployment

API_ID = "a1b2c3d4e5"  # what the mocks give the HTTP API
STAGE = "$default"
END = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)
WINDOW = dt.timedelta(minutes=15)  # the alarms' 3 periods of 5 minutes
QUERY_ROUTES = [route for route in ROUTES if route.function != REPORTER.key]
REPORT_ROUTES = [route for route in ROUTES if route.function == REPORTER.key]
RENDER = next(route for route in REPORT_ROUTES if route.method == "POST")


@pytest.fixture(scope="module")
def production() -> Deployment:
    return committed_deployment("production")


def latency_alarms(deployment: Deployment) -> dict[str, dict]:
    prefix = "securebase-production-analytics-api-latency-p95-"
    return {
        r.inputs["name"].removeprefix(prefix): r.inputs
        for r in deployment.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if r.inputs["name"].startswith(prefix)
    }


def spread(count: int, low_ms: float, high_ms: float, route, seed: int) -> list[Request]:
    """`count` requests to `route`, evenly over the window, latencies in [low, high]."""
    rng = random.Random(seed)
    step = WINDOW / count
    return [
        Request(END - WINDOW + step * i, route.method, route.path, rng.uniform(low_ms, high_ms))
        for i in range(count)
    ]


def normal_traffic() -> list[Request]:
    """A quiet quarter hour: 12 queries a minute, 2 reports rendered a minute (2-20 s)."""
    requests: list[Request] = []
    for seed, route in enumerate(QUERY_ROUTES):
        requests += spread(180 // len(QUERY_ROUTES), 40, 250, route, seed)
    requests += spread(30, 2_000, 20_000, RENDER, 100)
    for seed, route in enumerate(r for r in REPORT_ROUTES if r is not RENDER):
        requests += spread(20, 60, 400, route, 200 + seed)
    return requests


def test_every_route_has_a_p95_alarm_on_its_own_metric(production):
    found = latency_alarms(production)
    assert sorted(found) == sorted(route.slug for route in ROUTES)
    for route in ROUTES:
        alarm = found[route.slug]
        assert alarm["namespace"] == "AWS/ApiGateway"
        assert alarm["metricName"] == "Latency"
        assert alarm["dimensions"] == {
            "ApiId": API_ID,
            "Method": route.method,
            "Resource": route.path,
            "Stage": STAGE,
        }
        assert (alarm["extendedStatistic"], alarm["period"]) == ("p95", 300)
        assert (alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (3, 2)
        budget = 25_000 if route in REPORT_ROUTES else 500
        assert alarm["threshold"] == budget, route.key


def test_normal_report_traffic_breaches_no_latency_alarm(production):
    published = published_latency(API_ID, STAGE, normal_traffic())
    states = {
        slug: alarm_state(alarm, published, END)
        for slug, alarm in latency_alarms(production).items()
    }
    assert states == {route.slug: OK for route in ROUTES}


def test_the_same_traffic_trips_a_whole_api_p95_alarm():
    # Why the alarms are per route: one alarm on ApiId with the query budget sees
    # the renders too (30 of 270 requests, more than 5%) and fires on a normal day.
    whole_api = {
        "namespace": "AWS/ApiGateway",
        "metricName": "Latency",
        "dimensions": {"ApiId": API_ID},
        "extendedStatistic": "p95",
        "period": 300,
        "comparisonOperator": "GreaterThanThreshold",
        "threshold": 500,
        "evaluationPeriods": 3,
        "datapointsToAlarm": 2,
        "treatMissingData": "notBreaching",
    }
    assert alarm_state(whole_api, published_latency(API_ID, STAGE, normal_traffic()), END) == ALARM


def test_slow_queries_trip_their_routes_alarm_and_no_other(production):
    usage = next(route for route in QUERY_ROUTES if route.path == "/analytics/usage")
    slow = [
        r if r.path != usage.path else Request(r.at, r.method, r.path, r.latency_ms + 900)
        for r in normal_traffic()
    ]
    published = published_latency(API_ID, STAGE, slow)
    states = {
        slug: alarm_state(alarm, published, END)
        for slug, alarm in latency_alarms(production).items()
    }
    assert {slug for slug, state in states.items() if state == ALARM} == {usage.slug}


def test_renders_close_to_the_integration_timeout_trip_the_report_alarm(production):
    near_timeout = normal_traffic() + spread(30, 26_000, 29_000, RENDER, 300)
    published = published_latency(API_ID, STAGE, near_timeout)
    states = {
        slug: alarm_state(alarm, published, END)
        for slug, alarm in latency_alarms(production).items()
    }
    assert {slug for slug, state in states.items() if state == ALARM} == {RENDER.slug}


ONE_ROUTE_ALARM = {
    "namespace": "AWS/ApiGateway",
    "metricName": "Latency",
    "dimensions": {"ApiId": API_ID, "Method": "GET", "Resource": "/r", "Stage": STAGE},
    "extendedStatistic": "p95",
    "period": 300,
    "comparisonOperator": "GreaterThanThreshold",
    "threshold": 100,
    "evaluationPeriods": 3,
    "datapointsToAlarm": 2,
    "treatMissingData": "notBreaching",
}


def in_period(index: int, latency_ms: float) -> Request:
    """One request in the index-th 5-minute period before END (0 is the latest)."""
    return Request(END - dt.timedelta(minutes=5 * index + 1), "GET", "/r", latency_ms)


@pytest.mark.parametrize(
    ("latencies", "state"),
    [
        ({0: 101, 1: 101, 2: 50}, ALARM),  # 2 of 3 periods breach
        ({0: 101, 1: 50, 2: 50}, OK),  # 1 of 3
        ({0: 101, 2: 101}, ALARM),  # a missing period in between changes nothing
        ({0: 101}, OK),  # missing periods are not breaching
        ({0: 100, 1: 100, 2: 100}, OK),  # at the threshold is not above it
        ({3: 500, 4: 500}, OK),  # older than the evaluation periods
    ],
)
def test_the_evaluation_follows_cloudwatchs_m_out_of_n(latencies, state):
    published = published_latency(API_ID, STAGE, [in_period(i, ms) for i, ms in latencies.items()])
    assert alarm_state(ONE_ROUTE_ALARM, published, END) == state


def test_p95_is_the_nearest_rank_and_a_route_sees_only_its_own_requests():
    # In each of two periods 19 fast and 1 slow request: p95 of 20 is the 19th value.
    requests = [in_period(i, ms) for i in (0, 1) for ms in [10] * 19 + [1000]]
    others = [Request(r.at, "GET", "/other", 5000) for r in requests]
    published = published_latency(API_ID, STAGE, requests + others)
    assert alarm_state(ONE_ROUTE_ALARM, published, END) == OK
    slower = [in_period(i, ms) for i in (0, 1) for ms in [10] * 18 + [1000] * 2]
    assert alarm_state(ONE_ROUTE_ALARM, published_latency(API_ID, STAGE, slower), END) == ALARM
