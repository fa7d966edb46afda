"""What the AWS cases share: an environment that can only reach moto.

Requests are counted with `handlers.shared.telemetry.counting_requests`.
"""

from __future__ import annotations

import os

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
