"""The local stack's own routes, never deployed: what AWS would do on a schedule, on demand.

- `POST /_local/report-engine/run`: the report engine's 15-minute scheduled
  run, now. `?now=2026-11-24T06:00:00Z` runs it as of that time instead
  (`handlers.report_engine.run_due(now=...)`), which sends every schedule
  due by then without waiting for it; the reports cover the window ending
  that day. Answers the run's summary: `{due, sent, failed, skipped, deferred}`.
- `GET /_local/emails`: what the report engine emailed (SES in the
  emulator), oldest first; `?to=<address>` keeps one recipient's. Each
  shows its kind (`confirm`, `report`), its one-click unsubscribe headers
  and the links in it (`confirm_url`, `unsubscribe_url`), which work
  against the front door.
- `POST /_local/report-jobs/pause` and `/resume`: stop and restart handing
  deferred reports to the report engine (they stay queued and pending
  meanwhile; pause answers once the job in progress is done), e.g. to watch
  the pending-report cap. Answers `{"paused": ...}`.
- `GET /_local/report-jobs`: the report ids of the deferred-report jobs the
  report engine was given, in the order it got them:
  `{"paused": ..., "delivered": [...]}`.

Each takes the query parameters and returns a JSON body, or raises ApiError
for a bad parameter (answered as the API answers: `{"error", "code"}`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from handlers.shared.http import bad_request
from local import jobs
from local.emulator import sent_emails
from local.frontdoor import LocalAction, invoke

SCHEDULED_EVENT = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}


def parse_moment(raw: str, parameter: str) -> dt.datetime:
    """An ISO-8601 time with a zone (`2026-11-24T06:00:00Z`); else ApiError(400)."""
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise bad_request(parameter, "an ISO-8601 time with a zone, e.g. 2026-11-24T06:00:00Z", raw)
    return moment.astimezone(dt.UTC)


def run_report_engine(query: Mapping[str, str]) -> dict[str, int]:
    if "now" not in query:
        return invoke("report-engine", SCHEDULED_EVENT)
    from handlers import report_engine

    return report_engine.run_due(now=parse_moment(query["now"], "now"))


def list_emails(query: Mapping[str, str]) -> dict[str, Any]:
    return {"emails": sent_emails(query.get("to"))}


def pause_report_jobs(query: Mapping[str, str]) -> dict[str, bool]:
    jobs.pause()
    return {"paused": True}


def resume_report_jobs(query: Mapping[str, str]) -> dict[str, bool]:
    jobs.resume()
    return {"paused": False}


def list_report_jobs(query: Mapping[str, str]) -> dict[str, Any]:
    return {"paused": jobs.is_paused(), "delivered": jobs.delivered()}


LOCAL_ACTIONS: dict[str, LocalAction] = {
    "POST /_local/report-engine/run": run_report_engine,
    "GET /_local/emails": list_emails,
    "POST /_local/report-jobs/pause": pause_report_jobs,
    "POST /_local/report-jobs/resume": resume_report_jobs,
    "GET /_local/report-jobs": list_report_jobs,
}
