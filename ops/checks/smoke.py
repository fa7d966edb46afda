"""Smoke test: every parameterless GET route answers 200 with a token and 401 without,
and a browser's preflight from the first configured origin is allowed without one.

The token is either given (`--token`, a short-lived service token for a test
tenant) or minted by the validator itself (`--mint-token`,
ops/checks/smoke_token.py), which adds a check for the minting; without one,
the 200 half is skipped and reported as such. Nothing is created: only GET and
OPTIONS requests are sent.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from email.message import Message
from functools import partial
from urllib.parse import urlparse

from handlers.shared.routes import Route
from ops.checks.base import Check, CheckError, Outcome, failed, passed, skipped
from ops.checks.expectations import Expectations
from ops.checks.outputs import StackOutputs
from ops.checks.smoke_token import MintedToken, minting_check

USER_AGENT = "securebase-deployment-validator"


def smoke_checks(
    outputs: StackOutputs,
    expect: Expectations,
    token: str | MintedToken | None,
    timeout_seconds: float,
) -> list[Check]:
    checks = [minting_check(token)] if isinstance(token, MintedToken) else []
    origin = expect.settings.cors_allowed_origins[0]
    first = expect.smoke_routes[0]
    checks.append(
        Check(
            "smoke",
            f"CORS preflight for {first.key} from {origin}: 204, allowed, no token",
            partial(_preflight, outputs, first, origin, timeout_seconds),
        )
    )
    for route in expect.smoke_routes:
        checks += [
            Check(
                "smoke",
                f"{route.key} with a token: 200 JSON",
                partial(_with_token, outputs, route, token, timeout_seconds),
            ),
            Check(
                "smoke",
                f"{route.key} without a token: 401",
                partial(_without_token, outputs, route, timeout_seconds),
            ),
        ]
    return checks


def _with_token(
    outputs: StackOutputs, route: Route, token: str | MintedToken | None, timeout: float
) -> Outcome:
    if isinstance(token, MintedToken):
        try:
            token = token.value()
        except CheckError:
            return skipped("no token: minting one failed (see the smoke token check)")
    if not token:
        return skipped("no token given (--token, SMOKE_TEST_TOKEN or --mint-token)")
    status, body = _get(outputs, route, {"Authorization": f"Bearer {token}"}, timeout)
    if status != 200:
        return failed(f"HTTP {status}: {_excerpt(body)}")
    try:
        document = json.loads(body)
    except ValueError:
        return failed(f"HTTP 200 but the body is not JSON: {_excerpt(body)}")
    if not isinstance(document, dict):
        return failed(f"HTTP 200 but the body is not a JSON object: {_excerpt(body)}")
    return passed(f"HTTP 200, JSON with {', '.join(sorted(document)[:4])}")


def _without_token(outputs: StackOutputs, route: Route, timeout: float) -> Outcome:
    status, body = _get(outputs, route, {}, timeout)
    if status == 401:
        return passed("HTTP 401")
    return failed(f"HTTP {status}, expected 401: {_excerpt(body)}")


def _preflight(outputs: StackOutputs, route: Route, origin: str, timeout: float) -> Outcome:
    """What a browser sends before calling `route` from the portal: no token."""
    headers = {"Origin": origin, "Access-Control-Request-Method": route.method}
    status, body, answered = _request(outputs, route, "OPTIONS", headers, timeout)
    if status not in (200, 204):
        return failed(f"HTTP {status}, expected 204: {_excerpt(body)}")
    allowed = answered.get("Access-Control-Allow-Origin")
    if allowed != origin:
        return failed(f"HTTP {status} but Access-Control-Allow-Origin is {allowed!r}")
    return passed(f"HTTP {status}, Access-Control-Allow-Origin {origin}")


def _get(
    outputs: StackOutputs, route: Route, headers: dict[str, str], timeout: float
) -> tuple[int, str]:
    status, body, _ = _request(outputs, route, "GET", headers, timeout)
    return status, body


def _request(
    outputs: StackOutputs, route: Route, method: str, headers: dict[str, str], timeout: float
) -> tuple[int, str, Message]:
    base = outputs.text("api_url").rstrip("/")
    if urlparse(base).scheme not in ("https", "http"):
        raise CheckError(f"api_url {base!r} is not an HTTP(S) URL")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        f"{base}{route.path}", headers={"User-Agent": USER_AGENT, **headers}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode("utf-8", "replace"), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace"), error.headers
    except (urllib.error.URLError, TimeoutError) as error:
        raise CheckError(
            f"no answer from {base}{route.path}: {getattr(error, 'reason', error)}"
        ) from error


def _excerpt(body: str, limit: int = 120) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
