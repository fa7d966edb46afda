"""`python -m local` (`make run`): the whole API on 127.0.0.1:$PORT over an embedded AWS emulator.

Ctrl-C or SIGTERM stops it cleanly at any point, during startup too: what
was started is stopped, last started first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from local.config import LocalConfig


def progress(message: str) -> None:
    print(message, flush=True)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    # `kill`, `docker stop` and a test's terminate() stop the stack as Ctrl-C does.
    raise KeyboardInterrupt


def main() -> int:
    started = time.monotonic()
    config = LocalConfig.from_env()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with contextlib.ExitStack() as running:
        try:
            server = start(config, running, started)
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            progress("\nStopping")
    return 0


def start(
    config: LocalConfig, running: contextlib.ExitStack, started: float
) -> ThreadingHTTPServer:
    """Starts every part, registering how to stop it on `running`; returns the server, not yet serving."""
    from local.emulator import CORS_ORIGINS, Emulator, provision

    emulator = Emulator()
    emulator.start()
    running.callback(emulator.stop)
    progress(f"Started the AWS emulator (moto) on {emulator.endpoint}")
    os.environ.update(provision(config.jwt_secret))
    progress(
        "Created the analytics tables, the reports bucket, the JWT secret and the report-jobs queue"
    )

    from local.seed import seed_and_aggregate

    seed_and_aggregate(dt.datetime.now(dt.UTC), progress)

    from local.actions import LOCAL_ACTIONS
    from local.frontdoor import FrontDoor, serve
    from local.jobs import ReportJobPoller
    from local.token import mint

    server = serve(FrontDoor(CORS_ORIGINS, local_actions=LOCAL_ACTIONS), config.port)
    running.callback(server.server_close)
    stop_polling = threading.Event()
    poller = threading.Thread(
        target=ReportJobPoller(os.environ["REPORT_JOBS_QUEUE_URL"]).run,
        args=(stop_polling,),
        name="report-jobs",
        daemon=True,
    )
    poller.start()
    # Stopped before the emulator, so that its last poll does not fail.
    running.callback(poller.join, timeout=5)
    running.callback(stop_polling.set)

    host, port = server.server_address[:2]
    base_url = f"http://{host}:{port}"
    token = mint("acme", config.jwt_secret)
    progress("")
    progress(
        f"SecureBase Analytics local API ready at {base_url} ({time.monotonic() - started:.1f} s)"
    )
    progress(f"  OpenAPI description: {base_url}/openapi.yaml")
    progress(
        "  Try it (token for tenant acme, valid 12 hours; `make token CUSTOMER=globex` for another):"
    )
    progress(f"  curl -s -H 'Authorization: Bearer {token}' '{base_url}/analytics/usage?period=7d'")
    progress(
        f"  Local only: POST {base_url}/_local/report-engine/run[?now=<ISO time>] runs the"
        f" report engine; GET {base_url}/_local/emails lists what it emailed."
    )
    progress("Press Ctrl-C to stop.")
    return server


if __name__ == "__main__":
    sys.exit(main())
