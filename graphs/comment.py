"""Posts the graph difference on a pull request, or updates the comment already there.

    python -m graphs.comment --body-file diff.md

One comment per pull request: the first comment by COMMENT_AUTHOR (the
workflow token's bot) that starts with graphs.diff.MARKER is edited in place;
without one, a new comment is posted. Reads GITHUB_TOKEN, GITHUB_REPOSITORY,
PULL_REQUEST and GITHUB_API_URL (all set in the workflow).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from graphs.diff import MARKER

COMMENT_AUTHOR = "github-actions[bot]"
PER_PAGE = 100


class GitHub:
    def __init__(self, api_url: str, token: str, repository: str):
        if not api_url.startswith(("https://", "http://127.0.0.1:")):
            raise ValueError(f"GITHUB_API_URL must be https (got {api_url!r})")
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.repository = repository

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
            f"{self.api_url}/repos/{self.repository}/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "securebase-analytics-graph-comment",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.load(response)


def find_comment(github: GitHub, pull_request: int, author: str) -> dict[str, Any] | None:
    page = 1
    while True:
        comments = github.request(
            "GET", f"issues/{pull_request}/comments?per_page={PER_PAGE}&page={page}"
        )
        for comment in comments:
            if comment["user"]["login"] == author and comment["body"].startswith(MARKER):
                return comment
        if len(comments) < PER_PAGE:
            return None
        page += 1


def upsert(github: GitHub, pull_request: int, body: str, author: str = COMMENT_AUTHOR) -> str:
    """Creates or updates the comment; returns what it did and the comment's URL."""
    existing = find_comment(github, pull_request, author)
    if existing is None:
        created = github.request("POST", f"issues/{pull_request}/comments", {"body": body})
        return f"created {created['html_url']}"
    if existing["body"] == body:
        return f"unchanged {existing['html_url']}"
    github.request("PATCH", f"issues/comments/{existing['id']}", {"body": body})
    return f"updated {existing['html_url']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m graphs.comment", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--body-file", type=Path, required=True)
    args = parser.parse_args(argv)
    missing = [
        name
        for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "PULL_REQUEST")
        if not os.environ.get(name)
    ]
    if missing:
        print(f"graphs.comment: set {', '.join(missing)}", file=sys.stderr)
        return 2
    github = GitHub(
        os.environ.get("GITHUB_API_URL", "https://api.github.com"),
        os.environ["GITHUB_TOKEN"],
        os.environ["GITHUB_REPOSITORY"],
    )
    author = os.environ.get("COMMENT_AUTHOR", COMMENT_AUTHOR)
    try:
        print(upsert(github, int(os.environ["PULL_REQUEST"]), args.body_file.read_text(), author))
    except urllib.error.HTTPError as error:
        print(
            f"graphs.comment: GitHub answered {error.code}: {error.read().decode()[:500]}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
