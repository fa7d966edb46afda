"""One local stack (`python -m local`) per test session, for the tests that talk to it over HTTP.

Use it with `from tests.local_stack import local_stack_fixture` in a test
module, and take `local_stack` as an argument. The
stack runs as a subprocess on a free port (PORT=0) with its own JWT secret
and is stopped (SIGTERM, then wait) when the session ends.

pytest makes one fixture definition per module that imports a fixture, so a
session fixture imported into two modules would start two stacks: the
process-wide `_shared` slot makes every definition use the same one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from local.token import mint

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 20
REQUEST_TIMEOUT_SECONDS = 60
JWT_SECRET = "e2e-test-secret-not-the-local-default"
_READY = re.compile(r"local API ready at (http://127\.0\.0\.1:\d+)")


@dataclass
class LocalStack:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def token(self, customer_id: str = "acme") -> str:
        return mint(customer_id, JWT_SECRET)

    def auth(self, customer_id: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(customer_id)}"}

    def call(
        self,
        method: str,
        path: str,
        customer: str | None = "acme",
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> requests.Response:
        """An HTTP request to the stack, with a token for `customer` (None: no token)."""
        all_headers = {**(self.auth(customer) if customer else {}), **(headers or {})}
        return requests.request(
            method,
            f"{self.base_url}{path}",
            headers=all_headers,
            timeout=REQUEST_TIMEOUT_SECONDS,
            **options,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_local_stack(log_path: Path) -> LocalStack:
    """Starts `python -m local` and waits for its ready line (raises with its log otherwise)."""
    environment = {**os.environ, "PORT": "0", "ANALYTICS_JWT_SECRET": JWT_SECRET}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        output = log_path.read_text(errors="replace")
        ready = _READY.search(output)
        if ready:
            return LocalStack(ready.group(1), process, log_path)
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited with {process.returncode}:\n{output}")
        time.sleep(0.2)
    stack = LocalStack("", process, log_path)
    stack.stop()
    raise RuntimeError(
        f"the local stack was not ready within {READY_TIMEOUT_SECONDS} s:\n{stack.log()}"
    )


_shared: dict[str, LocalStack] = {}


@pytest.fixture(scope="session", name="local_stack")
def local_stack_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    if "stack" not in _shared:
        _shared["stack"] = start_local_stack(tmp_path_factory.mktemp("local") / "stack.log")
    stack = _shared["stack"]
    yield stack
    stack.stop()
