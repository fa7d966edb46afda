"""make graph: writes graphs/<stack>.json for every stack from the program under mocks."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from graphs import GRAPH_DIR, STACKS
from graphs.build import relative, write_graphs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graphs", description=__doc__)
    parser.add_argument("--stack", choices=STACKS, action="append", help="default: every stack")
    parser.add_argument("--output-dir", type=Path, default=GRAPH_DIR)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paths = write_graphs(tuple(args.stack or STACKS), args.output_dir)
    print(
        f"wrote {', '.join(relative(p) for p in paths)} in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
