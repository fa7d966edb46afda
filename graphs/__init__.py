"""The resource graph: what each stack's program registers, committed per stack.

`make graph` (python -m graphs) writes graphs/<stack>.json from the real
program under Pulumi mocks. make test fails when a committed graph is stale and
when, compared with the merge base, a stateful resource would be deleted or
replaced without an entry in graphs/acknowledged-replacements.yaml. Pull
requests get the difference as a comment (graphs.diff, graphs.comment).
"""

from pathlib import Path

GRAPH_DIR = Path(__file__).resolve().parent
ROOT = GRAPH_DIR.parent
STACKS = ("staging", "production")
ACKNOWLEDGEMENTS = GRAPH_DIR / "acknowledged-replacements.yaml"


def graph_path(stack: str, directory: Path = GRAPH_DIR) -> Path:
    return directory / f"{stack}.json"
