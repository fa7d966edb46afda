"""What the AWS cases share: an environment that can only reach moto, and exact request counts."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

REGION = "us-east-1"

# No case may reach a real account: fake credentials, a fixed region, and no
# endpoint override or profile leaking in from the caller's shell.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
_LEAKY_VARIABLES = ("AWS_PROFILE", "AWS_ENDPOINT_URL")


def offline_environment() -> dict[str, str]:
    """This process's environment with fake credentials and no overrides, for a child process."""
    environment = dict(os.environ)
    environment.update(FAKE_CREDENTIALS)
    for name in _LEAKY_VARIABLES:
        environment.pop(name, None)
    return environment


def use_offline_environment() -> None:
    """Applies `offline_environment()` to this process (the in-process moto cases)."""
    os.environ.update(FAKE_CREDENTIALS)
    for name in _LEAKY_VARIABLES:
        os.environ.pop(name, None)


@contextlib.contextmanager
def counting_requests(clients: Iterable[Any]) -> Iterator[Counter[str]]:
    """Every HTTP request the clients send while open, retries included, by "service.Operation".

    A `before-send` hook fires once per request put on the wire, so the
    counts are exact: nothing is sampled or inferred from a run's own report.
    """
    sent: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        sent[event_name.removeprefix("before-send.")] += 1

    hook_id = f"bench-requests-{id(sent)}"
    unique = list({id(client): client for client in clients}.values())
    for client in unique:
        client.meta.events.register("before-send", count, unique_id=hook_id)
    try:
        yield sent
    finally:
        for client in unique:
            client.meta.events.unregister("before-send", unique_id=hook_id)
