"""How a case reports what it is doing while it runs."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def say(message: str) -> None:
    print(message, flush=True)
