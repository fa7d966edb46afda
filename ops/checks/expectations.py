"""What a healthy stack looks like, taken from the code that deploys it.

Nothing here is restated: tables come from `handlers.shared.tables`, the
functions and their runtime, architecture, sizing and layers from
`components.functions`, the routes and analytics schedules from
`components.api`, the monitor's schedule and observation window from
`components.phase2_monitor`, the bucket rules from `components.bucket_rules`,
and every per-stack number (log retention, throttling, report expiry, alert
emails, the window's dates) from the stack's own `Pulumi.<stack>.yaml`,
parsed by `components.settings` exactly as the program parses it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.api import ANALYTICS_SCHEDULES, REPORT_JOBS_MAX_RECEIVES
from components.functions import ALL_FUNCTIONS, AUTHORIZER, PHASE2_MONITOR, FunctionSpec
from components.observability import ACCESS_LOG_KEY
from components.phase2_monitor import SCHEDULE_EXPRESSION, schedule_window
from components.settings import StackSettings, parse_settings
from handlers.shared.routes import CUSTOM, DEPLOYED_ROUTES, Route
from handlers.shared.tables import ALL_TABLES, TableSpec

REPO_ROOT = Path(__file__).resolve().parents[2]

# The authorizer reads the bearer token from this header.
AUTHORIZATION_IDENTITY_SOURCE = "$request.header.Authorization"
API_ACCESS_LOG_KEY = ACCESS_LOG_KEY  # log_group_names key of the stage's access logs


@dataclass(frozen=True)
class ExpectedSchedule:
    function: str  # function key, also the schedule_names key
    expression: str
    enabled: bool
    why_disabled: str = ""


@dataclass(frozen=True)
class ExpectedWorkQueue:
    key: str  # "report-jobs"
    output: str  # the stack output holding its URL
    max_receives: int  # deliveries before its dead-letter queue


@dataclass(frozen=True)
class Expectations:
    stack: str
    settings: StackSettings
    now: dt.datetime
    tables: tuple[TableSpec, ...] = ALL_TABLES
    functions: tuple[FunctionSpec, ...] = ALL_FUNCTIONS

    @property
    def environment(self) -> str:
        return self.settings.environment

    @property
    def is_production(self) -> bool:
        return self.settings.is_production

    def resource_name(self, what: str) -> str:
        return self.settings.resource_name(what)

    @property
    def routes(self) -> tuple[Route, ...]:
        return DEPLOYED_ROUTES

    @property
    def api_functions(self) -> tuple[str, ...]:
        """Function keys API Gateway invokes: the authorizer and every route's target."""
        return tuple(dict.fromkeys([AUTHORIZER.key, *(route.function for route in self.routes)]))

    @property
    def smoke_routes(self) -> tuple[Route, ...]:
        """GET routes behind the authorizer without path parameters: callable with nothing
        but a token. (The signed-link routes answer 400 without a link's token.)"""
        return tuple(
            r
            for r in self.routes
            if r.method == "GET" and "{" not in r.path and r.authorization == CUSTOM
        )

    @property
    def work_queues(self) -> tuple[ExpectedWorkQueue, ...]:
        """Queues that feed a function: each redrives to a dead-letter queue."""
        return (
            ExpectedWorkQueue("report-jobs", "report_jobs_queue_url", REPORT_JOBS_MAX_RECEIVES),
            ExpectedWorkQueue(
                "aggregator-shards",
                "aggregator_shards_queue_url",
                self.settings.aggregator.shard_max_attempts,
            ),
        )

    @property
    def schedules(self) -> tuple[ExpectedSchedule, ...]:
        phase2 = self.settings.phase2
        # The program deploys the monitor's schedule disabled once the window is over.
        window = schedule_window(phase2.window_start, phase2.window_days, self.now)
        return (
            *(
                ExpectedSchedule(s.function.key, s.expression, enabled=True)
                for s in ANALYTICS_SCHEDULES
            ),
            ExpectedSchedule(
                PHASE2_MONITOR.key,
                SCHEDULE_EXPRESSION,
                enabled=window.enabled,
                why_disabled=f"the observation window ended on {phase2.window_end}",
            ),
        )


# Stands for an encrypted value: the settings see the key set (production requires
# alertWebhookUrl) without the validator ever decrypting it.
ENCRYPTED_STAND_IN = "https://encrypted.invalid/"


def load_expectations(stack: str, now: dt.datetime, root: Path | None = None) -> Expectations:
    return Expectations(stack=stack, settings=load_stack_settings(stack, root), now=now)


def load_stack_settings(
    stack: str, root: Path | None = None, *, secrets_set_elsewhere: Iterable[str] = ()
) -> StackSettings:
    """The stack's settings from its committed config file (secret values left out).

    `secrets_set_elsewhere`: secret keys to take as set although the file lacks them
    (for callers that need none of their values, in a clone without the operator's secrets).
    """
    path = (root or REPO_ROOT) / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    config: dict[str, Any] = document.get("config") or {}
    assumed = frozenset(secrets_set_elsewhere)

    def lookup(full_key: str) -> str | None:
        value = config.get(full_key)
        if value is None:
            return ENCRYPTED_STAND_IN if full_key in assumed else None
        # Encrypted values ({"secure": "v1:..."}) are never needed to validate.
        if isinstance(value, dict) and "secure" in value:
            return ENCRYPTED_STAND_IN
        return _config_string(value)

    return parse_settings(lookup, stack)


def _config_string(value: Any) -> str:
    """A YAML value as the Pulumi CLI hands it to the program."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)
