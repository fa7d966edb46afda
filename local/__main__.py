"""`python -m local` (`make run`): the whole API on 127.0.0.1:$PORT over an embedded AWS emulator.

It takes the port first, before anything is started or seeded: a port in
use ends it at once with one line naming it. Ctrl-C or SIGTERM stops it
cleanly at any point, during startup too: what was started is stopped, last
started first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from local.config import LocalConfig

if TYPE_CHECKING:
    from local.frontdoor import FrontDoorServer


def progress(message: str) -> None:
    print(message, flush=True)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    # `kill`, `docker stop` and a test's terminate() stop the stack as Ctrl-C does.
    raise KeyboardInterrupt


def main() -> int:
    started = time.monotonic()
    config = LocalConfig.from_env()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    from local.frontdoor import PortInUse, listen

    try:
        server = listen(config.port)
    except PortInUse as taken:
        print(f"{taken}; set PORT=... (PORT=0 picks a free one)", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"cannot listen on 127.0.0.1:{config.port}: {error.strerror}", file=sys.stderr)
        return 1
    with contextlib.ExitStack() as running:
        running.callback(server.server_close)
        try:
            start(config, running, started, server)
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            progress("\nStopping")
    return 0


def start(
    config: LocalConfig, running: contextlib.ExitStack, started: float, server: FrontDoorServer
) -> None:
    """Starts every part behind the listening `server`, registering how to stop each on
    `running`; the server is not yet serving."""
    from local.emulator import CORS_ORIGINS, Emulator, provision

    emulator = Emulator()
    emulator.start()
    running.callback(emulator.stop)
    emulator.use()
    progress(f"Started the AWS emulator (moto) on {emulator.endpoint}")
    host, port = server.server_address[:2]
    base_url = f"http://{host}:{port}"
    os.environ.update(provision(config.jwt_secret, base_url))
    progress(
        "Created the analytics tables, the reports bucket, the JWT secret and the report-jobs queue"
    )

    from local.seed import seed_and_aggregate

    seed_and_aggregate(dt.datetime.now(dt.UTC), progress)

    from handlers.shared.api_gateway import cors_configuration
    from local.actions import LOCAL_ACTIONS
    from local.frontdoor import FrontDoor
    from local.jobs import ReportJobPoller
    from local.token import mint

    server.front_door = FrontDoor(cors_configuration(CORS_ORIGINS), local_actions=LOCAL_ACTIONS)
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
        f" report engine; GET {base_url}/_local/emails lists what it emailed"
        " (confirmations and reports, with their confirm and unsubscribe links)."
    )
    progress("Press Ctrl-C to stop.")


if __name__ == "__main__":
    sys.exit(main())
