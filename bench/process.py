"""Running measurements in fresh interpreter processes of the repository's own Python."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def python(*arguments: str, env: Mapping[str, str] | None = None) -> str:
    """Runs `python <arguments>` from the repository root; its stdout, or RuntimeError."""
    completed = subprocess.run(  # noqa: S603 - this interpreter, arguments from the bench itself
        [sys.executable, *arguments],
        cwd=REPO_ROOT,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"python {' '.join(arguments)} exited {completed.returncode}:\n"
            f"{completed.stderr[-2000:]}"
        )
    return completed.stdout


def worker(module: str, *arguments: str) -> dict[str, Any]:
    """Runs `python -m <module> <arguments>`; the JSON object on its last output line."""
    return json.loads(python("-m", module, *arguments).splitlines()[-1])
