"""The documentation cannot drift from the code.

- every config key `components/settings.py` reads is in docs/configuration.md's key table, and
  every key documented there is read;
- every error code a handler can answer is in docs/api.md;
- every route of the route table (`DEPLOYED_ROUTES`) is in docs/api.md;
- every relative link and `#anchor` between README.md and docs/*.md resolves;
- docs/performance.md holds the table `python -m bench --markdown` prints from the committed
  results; the README stays within 2,500 words; each docs file opens with its reader.

Each check is a function of the texts it reads, so the negative cases below run it on modified
copies and show what it reports. (`make help` listing every target: tests/test_makefile.py.)
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from bench import results
from bench.run import DEFAULT_OUTPUT as BENCH_RESULTS
from components import settings
from components.settings import PROJECT, parse_settings
from handlers.shared.routes import DEPLOYED_ROUTES
from tests.pulumi_program import STACKS, stack_config

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_SOURCE = ROOT / "components" / "settings.py"
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
API_DOC = ROOT / "docs" / "api.md"
PERFORMANCE_DOC = ROOT / "docs" / "performance.md"
OPENAPI = ROOT / "handlers" / "openapi.yaml"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def documents() -> dict[Path, str]:
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {path: read(path) for path in paths}


def handler_sources() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): read(path)
        for path in sorted((ROOT / "handlers").rglob("*.py"))
    }


def code_spans(markdown: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", markdown)


# Config keys


def _values_methods() -> set[str]:
    """The readers of settings._Values whose first argument is a key name."""
    return {
        name
        for name, member in vars(settings._Values).items()
        if callable(member) and not name.startswith("_")
    }


def config_keys_read(source: str) -> set[str]:
    """Full keys of every `<values>.<reader>("key", ...)` call: the `aws` reader's keys are in
    the `aws:` namespace, every other one in the project's."""
    readers = _values_methods()
    keys = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.attr in readers
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            namespace = "aws" if node.func.value.id == "aws" else PROJECT
            keys.add(f"{namespace}:{node.args[0].value}")
    return keys


def documented_config_keys(markdown: str) -> set[str]:
    """The keys in the first column of the `| key | ...` table; a key without a namespace is in
    the project's."""
    keys = set()
    in_table = False
    for line in markdown.splitlines():
        if re.match(r"\|\s*key\s*\|", line):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            in_table = False
        if in_table and not line.startswith("|---"):
            first_cell = line.split("|")[1]
            for span in code_spans(first_cell):
                keys.add(span if ":" in span else f"{PROJECT}:{span}")
    return keys


def config_drift(source: str, markdown: str) -> tuple[list[str], list[str]]:
    """(read but undocumented, documented but never read)."""
    read_keys, documented = config_keys_read(source), documented_config_keys(markdown)
    return sorted(read_keys - documented), sorted(documented - read_keys)


def test_every_config_key_read_is_documented_and_every_documented_key_is_read():
    undocumented, unread = config_drift(read(SETTINGS_SOURCE), read(CONFIGURATION_DOC))

    assert undocumented == [], f"add these keys to docs/configuration.md: {undocumented}"
    assert unread == [], f"docs/configuration.md documents keys the settings never read: {unread}"


@pytest.mark.parametrize("variant", [{}, {f"{PROJECT}:phase2ApiType": "http"}])
@pytest.mark.parametrize("stack", STACKS)
def test_the_static_reading_finds_every_key_the_settings_really_read(stack, variant):
    """Reading parse_settings' calls from its source misses nothing it asks for when it runs."""
    config = stack_config(stack) | variant
    config.setdefault(f"{PROJECT}:phase2ApiId", "abcde12345")
    asked: set[str] = set()

    def lookup(key: str) -> str | None:
        asked.add(key)
        return config.get(key)

    parse_settings(lookup, stack)

    assert asked <= config_keys_read(read(SETTINGS_SOURCE))


def test_the_config_check_fails_on_drift():
    source, markdown = read(SETTINGS_SOURCE), read(CONFIGURATION_DOC)
    with_new_key = source.replace(
        "        aggregator=_parse_aggregator(values),",
        '        aggregator=_parse_aggregator(values),\n        x=values.integer("newKnob", 1),',
    )
    without_row = "\n".join(
        line for line in markdown.splitlines() if not line.startswith("| `costRefreshHours`")
    )
    with_stale_row = markdown.replace(
        "| `costRefreshHours` |", "| `retiredKey` | gone | |\n| `costRefreshHours` |"
    )
    assert with_new_key != source and without_row != markdown and with_stale_row != markdown

    assert config_drift(with_new_key, markdown) == ([f"{PROJECT}:newKnob"], [])
    assert config_drift(source, without_row) == ([f"{PROJECT}:costRefreshHours"], [])
    assert config_drift(source, with_stale_row) == ([], [f"{PROJECT}:retiredKey"])
    with_aws_key = source.replace('aws.string("region"', 'aws.string("profile"')
    assert config_drift(with_aws_key, markdown) == (["aws:profile"], ["aws:region"])


# Error codes


class UnresolvedErrorCode(Exception):
    """A handler builds an error code the extraction cannot read."""


def _string(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _enclosing_functions(tree: ast.AST) -> dict[ast.AST, ast.FunctionDef]:
    """Each node's innermost enclosing function (ast.walk visits outer functions first)."""
    enclosing: dict[ast.AST, ast.FunctionDef] = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef):
            for node in ast.walk(function):
                if node is not function:
                    enclosing[node] = function
    return enclosing


def _argument(call: ast.Call, position: int | None, keyword: str) -> ast.AST | None:
    if position is not None and len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _calls(trees: Mapping[str, ast.AST], name: str) -> Iterator[ast.Call]:
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    yield node


def _parameter_values(
    trees: Mapping[str, ast.AST],
    enclosing: Mapping[ast.AST, ast.FunctionDef],
    function: ast.FunctionDef,
    parameter: str,
    where: str,
) -> set[str]:
    """Every string a parameter can hold: its default and what each caller passes, through the
    callers' own parameters when they pass one on."""
    arguments = function.args
    positional = [a.arg for a in (*arguments.posonlyargs, *arguments.args)]
    with_defaults = positional[len(positional) - len(arguments.defaults) :]
    defaults = dict(zip(with_defaults, arguments.defaults, strict=True))
    defaults |= {
        a.arg: d for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True) if d
    }
    values = set()
    if parameter in defaults:
        default = _string(defaults[parameter])
        if default is None:
            raise UnresolvedErrorCode(f"{where}: the default of {parameter!r} is not a string")
        values.add(default)
    index = positional.index(parameter) if parameter in positional else None
    for call in _calls(trees, function.name):
        bound = isinstance(call.func, ast.Attribute) and positional[:1] in (["self"], ["cls"])
        passed = _argument(call, None if index is None else index - bound, parameter)
        if passed is None:
            continue
        value = _string(passed)
        if value is not None:
            values.add(value)
            continue
        caller = enclosing.get(call)
        if not (isinstance(passed, ast.Name) and caller and _is_parameter(caller, passed.id)):
            raise UnresolvedErrorCode(f"{where}: a call of {function.name} passes no string")
        if caller is not function:
            values |= _parameter_values(trees, enclosing, caller, passed.id, where)
    return values


def _is_parameter(function: ast.FunctionDef, name: str) -> bool:
    arguments = function.args
    return name in {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}


def error_codes_answered(sources: Mapping[str, str]) -> set[str]:
    """The `code` of every error a handler can answer, read from the source:
    `ApiError(status, "code", ...)`, `bad_request("parameter", ...)` (`invalid_<parameter>`,
    also through a parameter of the calling function: its default and every caller's string)
    and `{"code": "..."}` in a response body. A code the reading cannot resolve fails."""
    trees = {path: ast.parse(source) for path, source in sources.items()}
    enclosing = {
        node: f for tree in trees.values() for node, f in _enclosing_functions(tree).items()
    }
    codes: set[str] = set()
    for path, tree in trees.items():
        for node in ast.walk(tree):
            where = f"{path}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if _string(key) == "code":
                        code = _string(value)
                        # `{"code": error.code}` renders an ApiError, whose codes are read below.
                        rendered = isinstance(value, ast.Attribute) and value.attr == "code"
                        if code is None and not rendered:
                            raise UnresolvedErrorCode(f"{where}: a response's code is not a string")
                        if code is not None:
                            codes.add(code)
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            function = enclosing.get(node)
            if called == "ApiError":
                code = _string(_argument(node, 1, "code"))
                if code is not None:
                    codes.add(code)
                elif getattr(function, "name", "") != "bad_request":  # read at its callers
                    raise UnresolvedErrorCode(f"{where}: ApiError with a code that is not a string")
            elif called == "bad_request":
                parameter_node = _argument(node, 0, "parameter")
                parameter = _string(parameter_node)
                if parameter is not None:
                    codes.add(f"invalid_{parameter}")
                    continue
                if not (
                    isinstance(parameter_node, ast.Name)
                    and function is not None
                    and _is_parameter(function, parameter_node.id)
                ):
                    raise UnresolvedErrorCode(f"{where}: bad_request with a computed parameter")
                values = _parameter_values(trees, enclosing, function, parameter_node.id, where)
                codes |= {f"invalid_{value}" for value in values}
    return codes


def openapi_error_codes(text: str) -> set[str]:
    """The codes the OpenAPI document names: examples (`code: x`), constants and `code \\`x\\``."""
    codes = set(re.findall(r"\bcode:[ \t]*(?:\{[ \t]*const:[ \t]*)?([a-z][a-z0-9_]+)", text))
    codes |= set(re.findall(r"code `([a-z][a-z0-9_]+)`", text))
    return codes - {"invalid_"}


def undocumented_codes(codes: Iterable[str], markdown: str) -> list[str]:
    spans = set(code_spans(markdown))
    return sorted(code for code in codes if code not in spans)


def test_the_error_codes_are_read_from_every_kind_of_source():
    codes = error_codes_answered(handler_sources())

    # Literal, bad_request literal, bad_request through a parameter's default and its callers,
    # and a response body's code.
    assert {"idempotency_key_reused", "invalid_limit", "invalid_period", "report_failed"} <= codes
    assert {"invalid_format", "invalid_type", "internal_error", "route_not_found"} <= codes


def test_every_error_code_the_handlers_answer_is_in_the_api_doc():
    codes = error_codes_answered(handler_sources()) | openapi_error_codes(read(OPENAPI))

    missing = undocumented_codes(codes, read(API_DOC))

    assert missing == [], f"add these error codes to docs/api.md (Errors): {missing}"


NEW_CODE_SOURCES = {
    "a literal code": 'raise ApiError(409, "report_locked", "locked")\n',
    "a bad parameter": 'raise bad_request("colour", "red or blue", raw)\n',
    "a response body": 'body = {"error": "slow", "code": "report_slow"}\n',
    "a parameter's default": (
        'def parse_shade(raw, parameter="shade"):\n    raise bad_request(parameter, "x", raw)\n'
    ),
    "a caller's argument": (
        'def parse_shade(raw, parameter="shade"):\n    raise bad_request(parameter, "x", raw)\n'
        'parse_shade(raw, "tint")\n'
    ),
}
NEW_CODES = {
    "a literal code": ["report_locked"],
    "a bad parameter": ["invalid_colour"],
    "a response body": ["report_slow"],
    "a parameter's default": ["invalid_shade"],
    "a caller's argument": ["invalid_shade", "invalid_tint"],
}


@pytest.mark.parametrize("case", NEW_CODE_SOURCES)
def test_the_error_code_check_fails_on_a_new_code(case):
    sources = handler_sources() | {"handlers/new.py": NEW_CODE_SOURCES[case]}
    codes = error_codes_answered(sources) | openapi_error_codes(read(OPENAPI))

    assert undocumented_codes(codes, read(API_DOC)) == NEW_CODES[case]


def test_the_error_code_check_fails_on_a_code_dropped_from_the_doc():
    markdown = read(API_DOC).replace("`schedule_limit_reached`", "schedule_limit_reached")
    codes = error_codes_answered(handler_sources())

    assert undocumented_codes(codes, markdown) == ["schedule_limit_reached"]


@pytest.mark.parametrize(
    "source",
    [
        "raise ApiError(400, code_for(x), 'bad')\n",
        "raise bad_request(name.upper(), 'x', raw)\n",
        "def f(raw, parameter):\n    raise bad_request(parameter, 'x', raw)\nf(raw, kind)\n",
    ],
)
def test_a_code_the_check_cannot_read_fails_it(source):
    with pytest.raises(UnresolvedErrorCode):
        error_codes_answered(handler_sources() | {"handlers/new.py": source})


# Routes


def undocumented_routes(route_keys: Iterable[str], markdown: str) -> list[str]:
    """A route is documented by a code span holding its key, optionally with a query string
    (`GET /analytics/usage?period=`)."""
    spans = {span.split("?", 1)[0] for span in code_spans(markdown)}
    return sorted(key for key in route_keys if key not in spans)


def test_every_deployed_route_is_in_the_api_doc():
    missing = undocumented_routes((route.key for route in DEPLOYED_ROUTES), read(API_DOC))

    assert missing == [], f"add these routes to docs/api.md: {missing}"


def test_the_route_check_fails_on_an_undocumented_route():
    keys = [route.key for route in DEPLOYED_ROUTES]
    markdown = read(API_DOC)
    without_usage = markdown.replace("`GET /analytics/usage?period=`", "usage")

    assert undocumented_routes([*keys, "PATCH /analytics/reports/{id}"], markdown) == [
        "PATCH /analytics/reports/{id}"
    ]
    assert undocumented_routes(keys, without_usage) == ["GET /analytics/usage"]


# Links


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation but `-` and `_`
    dropped, spaces as `-`, repeats numbered `-1`, `-2`, ...; headings in code blocks are text."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        heading = None if in_code else re.match(r"#{1,6} (.*)", line)
        if heading:
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading[1]).strip().lower()
            slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def links(markdown: str) -> list[str]:
    """Inline link targets outside code blocks and code spans."""
    prose = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return re.findall(r"\]\(([^)\s]+)\)", prose)


def broken_links(texts: Mapping[Path, str]) -> list[str]:
    """Relative links to files that do not exist, and `#anchors` no heading of the target has.
    `texts` holds the documents' (possibly modified) contents; other files are read from disk."""
    broken = []
    for path, text in texts.items():
        for target in links(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path
            exists = destination in texts or destination.exists()
            if not exists:
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and destination.suffix == ".md":
                target_text = texts.get(destination) or read(destination)
                if anchor not in github_anchors(target_text):
                    broken.append(f"{path.name}: {target} (no such heading)")
    return broken


def test_every_link_between_the_documents_resolves():
    texts = documents()

    assert ROOT / "docs" / "api.md" in texts
    assert broken_links(texts) == []


def test_the_link_check_fails_on_a_broken_link():
    texts = documents()
    readme, api = ROOT / "README.md", ROOT / "docs" / "api.md"
    renamed_heading = texts[api].replace("## Errors", "## Error codes")
    assert renamed_heading != texts[api] and "](#errors)" in texts[api]

    assert broken_links({**texts, readme: texts[readme] + "\n[x](docs/apis.md)\n"}) == [
        "README.md: docs/apis.md (no such file)"
    ]
    assert broken_links({**texts, readme: texts[readme] + "\n[x](docs/api.md#usage-2)\n"}) == [
        "README.md: docs/api.md#usage-2 (no such heading)"
    ]
    assert "api.md: #errors (no such heading)" in broken_links({**texts, api: renamed_heading})


def test_anchors_follow_github():
    markdown = (
        "# CI/CD\n## Operations: alerts and what to do\n## `make policy`\n## Usage\n## Usage\n"
    )
    markdown += "```\n# not a heading\n```\n"

    assert github_anchors(markdown) == {
        "cicd",
        "operations-alerts-and-what-to-do",
        "make-policy",
        "usage",
        "usage-1",
    }


# Performance


def bench_table(results_document: Mapping[str, object]) -> str:
    """The table `python -m bench --markdown` prints for a results document."""
    return results.markdown_table(results.checks(results_document))


def test_the_performance_doc_shows_the_committed_bench_results():
    table = bench_table(json.loads(read(BENCH_RESULTS)))

    assert table.strip() in read(PERFORMANCE_DOC), (
        "paste `python -m bench --markdown` into docs/performance.md (Latest results)"
    )


def test_the_bench_table_check_fails_on_new_results():
    document = json.loads(read(BENCH_RESULTS))
    document["query"]["dynamodb_requests_warm"] = 2

    assert bench_table(document).strip() not in read(PERFORMANCE_DOC)


# The README and the docs files


def word_count(text: str) -> int:
    """As `wc -w` counts in a UTF-8 locale: runs of characters that are not whitespace (a
    no-break space separates words too)."""
    return len(text.split())


def test_the_readme_is_at_most_2500_words():
    assert word_count(read(ROOT / "README.md")) <= 2500


def test_the_word_count_is_wc_s():
    # `printf 'Set-up: `make run`\u00a0(about 20 s)\n\n| a | b |\n\t--\n' | wc -w` prints 12.
    text = "Set-up: `make run`\u00a0(about 20 s)\n\n| a | b |\n\t--\n"

    assert word_count(text) == 12
    assert word_count(read(ROOT / "README.md") + " one" * 2501) > 2500


def docs_without_their_reader(texts: Mapping[Path, str]) -> list[str]:
    """Docs files that do not open with a title and, after a blank line, `**For:**` who reads it."""
    return sorted(
        path.name
        for path, text in texts.items()
        if not re.match(r"# [^\n]+\n\n\*\*For:\*\* \S", text)
    )


def test_every_docs_file_opens_with_its_reader():
    docs = {path: text for path, text in documents().items() if path.parent.name == "docs"}

    assert len(docs) >= 7
    assert docs_without_their_reader(docs) == []


def test_the_reader_check_fails_on_a_file_without_one():
    docs = {path: text for path, text in documents().items() if path.parent.name == "docs"}
    api = ROOT / "docs" / "api.md"
    without = docs | {api: docs[api].replace("**For:** ", "", 1)}

    assert docs_without_their_reader(without) == ["api.md"]
