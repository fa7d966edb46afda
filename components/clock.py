"""The moment a preview or update runs: the one place the program reads the clock.

Only time-bounded resources depend on it (the Phase 2 monitor's schedule
window). Tests run the program at a fixed moment through this seam, so what it
registers does not depend on the day the suite runs.
"""

from __future__ import annotations

import datetime as dt


def deployment_time() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
