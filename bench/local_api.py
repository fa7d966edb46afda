"""Latency of the local stack (`python -m local`) under 500 requests at concurrency 20, twice.

The stack runs as its own process, exactly as `make run` starts it (moto in a
child process of its own, the real authorizer and handlers behind the HTTP
front door, seeded by the real aggregator), on a free port. The requests are GETs over the read
routes for two tenants, with several periods and breakdowns. Each distinct
request is sent once before the clock starts (loading the handlers and filling
the query cache, as a portal's first page views would), so both runs measure
the same thing: the front door and a cache hit under a crowd. They are sent
two ways:

- `keep_alive`: the 20 client threads share 20 open HTTP/1.1 connections
  (opened before the clock starts), as a portal's HTTP client does;
- `new_connection`: every request opens its own connection and closes it
  (`Connection: close`), as curl and many scripts do; this is what a small
  listen backlog punishes (dropped connection attempts retried a second later).

Latency is measured per request (keep-alive: send to last body byte; new
connection: connect to last body byte); an error is an exception or a
non-2xx status. The machine's 1-minute load average when the stack is ready
goes with the figures: taken on a busy machine, they say more about it. So
each run also records the CPU time its processes spent per request
(`cpu_ms_per_request`: the front door's process and the emulator's, from
/proc), which the machine's load barely moves.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from bench.aws import offline_environment
from bench.process import REPO_ROOT
from bench.progress import Progress, say
from local.config import DEFAULT_JWT_SECRET
from local.token import mint

REQUESTS = 500
CONCURRENCY = 20
TENANTS = ("acme", "globex")
PATHS = (
    "/analytics/usage?period=1d",
    "/analytics/usage?period=7d",
    "/analytics/usage?period=30d",
    "/analytics/usage?period=90d",
    "/analytics/usage?period=12w",
    "/analytics/compliance",
    "/analytics/costs?period=30d",
    "/analytics/costs?period=90d&breakdown=service",
    "/analytics/costs?period=7d&breakdown=region",
)
STARTUP_TIMEOUT_SECONDS = 180
STOP_TIMEOUT_SECONDS = 15
REQUEST_TIMEOUT_SECONDS = 30
_READY = re.compile(r"ready at (http://127\.0\.0\.1:\d+)")


@dataclass(frozen=True)
class Outcome:
    seconds: float
    ok: bool


def request_plan(count: int) -> list[tuple[str, str]]:
    """(tenant, path) for every request: each path for each tenant in turn."""
    pairs = [(tenant, path) for path in PATHS for tenant in TENANTS]
    return [pairs[index % len(pairs)] for index in range(count)]


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the values fall (nearest rank)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[rank - 1]


def _wait_until_ready(process: subprocess.Popen[bytes], log: IO[str]) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        log.seek(0)
        found = _READY.search(log.read())
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.2)
    log.seek(0)
    raise RuntimeError(f"the local stack did not become ready:\n{log.read()[-2000:]}")


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stack_processes(pid: int) -> dict[str, int]:
    """The stack's processes: `front_door` (`python -m local`) and its child, the `emulator`."""
    [emulator] = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {"front_door": pid, "emulator": int(emulator)}


@contextlib.contextmanager
def local_stack(secret: str) -> Iterator[tuple[str, int]]:
    """`python -m local` on a free port; yields its base URL and process id, always stops it."""
    environment = offline_environment()
    environment.update(PORT="0", ANALYTICS_JWT_SECRET=secret, LOG_LEVEL="WARNING")
    with tempfile.TemporaryFile("w+", prefix="bench-local-") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "local"],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield _wait_until_ready(process, log), process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class _Client:
    """Where the stack listens, and a token per tenant."""

    def __init__(self, base_url: str, tokens: dict[str, str]):
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._tokens = tokens

    def _open(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(
            self._host, self._port, timeout=REQUEST_TIMEOUT_SECONDS
        )
        connection.connect()
        return connection

    def _headers(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens[tenant]}"}


class _NewConnections(_Client):
    """A connection of its own for every request, closed after the answer."""

    def get(self, tenant: str, path: str) -> Outcome:
        started = time.perf_counter()
        connection: http.client.HTTPConnection | None = None
        try:
            connection = self._open()
            connection.request(
                "GET", path, headers={**self._headers(tenant), "Connection": "close"}
            )
            response = connection.getresponse()
            response.read()
            ok = 200 <= response.status < 300
        except (OSError, http.client.HTTPException):
            ok = False
        finally:
            if connection is not None:
                connection.close()
        return Outcome(time.perf_counter() - started, ok)

    def close(self) -> None:
        """Nothing stays open."""


class _ConnectionPool(_Client):
    """`size` keep-alive connections, opened one by one before the clock starts."""

    def __init__(self, base_url: str, tokens: dict[str, str], size: int):
        super().__init__(base_url, tokens)
        self._idle: queue.SimpleQueue[http.client.HTTPConnection] = queue.SimpleQueue()
        for _ in range(size):
            self._idle.put(self._open())

    def get(self, tenant: str, path: str) -> Outcome:
        connection = self._idle.get()
        started = time.perf_counter()
        try:
            connection.request("GET", path, headers=self._headers(tenant))
            response = connection.getresponse()
            response.read()
            ok = 200 <= response.status < 300
        except (OSError, http.client.HTTPException):
            connection.close()
            ok = False
        seconds = time.perf_counter() - started
        # A failed connection is replaced (the reconnect is not timed).
        self._idle.put(connection if ok else self._open())
        return Outcome(seconds, ok)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get().close()


def _run(
    client: _ConnectionPool | _NewConnections,
    plan: list[tuple[str, str]],
    processes: dict[str, int],
) -> dict[str, Any]:
    """The plan at CONCURRENCY through `client`: the latency figures, and the CPU time each
    of the stack's `processes` spent per request."""
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        outcomes = list(pool.map(lambda pair: client.get(*pair), plan))
    wall = time.perf_counter() - started
    cpu_ms = {
        name: round((cpu_seconds(pid) - cpu_before[name]) * 1000 / len(plan), 2)
        for name, pid in processes.items()
    }
    client.close()
    latencies_ms = [outcome.seconds * 1000 for outcome in outcomes]
    return {
        "p50_ms": round(statistics.median(latencies_ms), 1),
        "p95_ms": round(percentile(latencies_ms, 0.95), 1),
        "max_ms": round(max(latencies_ms), 1),
        "errors": sum(not outcome.ok for outcome in outcomes),
        "requests_per_s": round(len(outcomes) / wall, 1),
        "cpu_ms_per_request": cpu_ms,
    }


def measure(progress: Progress = say) -> dict[str, Any]:
    """The `local_api` section of the results."""
    secret = DEFAULT_JWT_SECRET
    tokens = {tenant: mint(tenant, secret) for tenant in TENANTS}
    plan = request_plan(REQUESTS)
    started = time.perf_counter()
    results: dict[str, Any] = {"requests": len(plan), "concurrency": CONCURRENCY}
    with local_stack(secret) as (base_url, pid):
        progress(f"  local stack ready at {base_url} in {time.perf_counter() - started:.1f} s")
        processes = stack_processes(pid)
        results["load_average_1m"] = round(os.getloadavg()[0], 2)
        warm_up = _NewConnections(base_url, tokens)
        for tenant, path in dict.fromkeys(plan):
            warm_up.get(tenant, path)
        for mode, client in (
            ("keep_alive", lambda: _ConnectionPool(base_url, tokens, CONCURRENCY)),
            ("new_connection", lambda: _NewConnections(base_url, tokens)),
        ):
            figures = results[mode] = _run(client(), plan, processes)
            cpu = ", ".join(f"{name} {ms}" for name, ms in figures["cpu_ms_per_request"].items())
            progress(
                f"  {mode}: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms,"
                f" {figures['errors']} errors, {figures['requests_per_s']} requests/s;"
                f" CPU ms a request: {cpu}"
            )
    return results
