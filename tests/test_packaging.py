"""Function archives and Lambda layers: deterministic, exactly the right files, built for Lambda.

The function lists in FUNCTION_FILES are written by hand; the tests here recompute each
handler's repo-local import closure statically and fail, naming the files, when a list is
missing something or carries something unneeded. Layer tests download the pinned wheels from
PyPI once and reuse the cached layer under .build/layers/.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import platform
import re
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

import pulumi
import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pypdf import PdfReader

from components import packaging
from components.functions import ALL_FUNCTIONS, QUERY, REPORTER, FunctionSpec
from components.packaging import (
    FUNCTION_FILES,
    LAYER_NAMES,
    BuiltArchive,
    deterministic_zip,
    function_archive,
    layer_archive,
    layer_cache_path,
)

ROOT = packaging.REPO_ROOT
REPORTING_LAYER_LIMIT_BYTES = 8_300_000
# What pip evaluates requirement markers against on Lambda (python3.11, arm64).
LAMBDA_MARKER_ENVIRONMENT = {
    **default_environment(),
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
    "python_full_version": "3.11.0",  # the lowest 3.11: markers compare against 3.x bounds
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "os_name": "posix",
    "extra": "",
}
ELF_MACHINE_AARCH64 = 0xB7


def landed(spec: FunctionSpec) -> FunctionSpec:
    """The spec, or a skip while the handler module is still being written."""
    if not (ROOT / spec.source_file).is_file():
        pytest.skip(f"{spec.source_file} has not landed yet")
    return spec


HANDLERS = pytest.mark.parametrize("spec", ALL_FUNCTIONS, ids=lambda spec: spec.key)


# --- the import closure a function archive must hold ------------------------------------


def module_file(module: str) -> Path | None:
    """The repo file that `import module` executes, or None for anything not in the repo."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# Modules a file loads by name at run time (importlib.import_module), which no static reading
# can see: file -> the modules it may load. An undeclared dynamic import fails the closure test.
DYNAMIC_IMPORTS = {
    "handlers/shared/reports/render.py": tuple(
        f"handlers.shared.reports.render_{fmt}" for fmt in ("csv", "json", "pdf", "xlsx")
    ),
}


def loads_modules_by_name(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in ("import_module", "__import__"):
                return True
    return False


def runtime_imports(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that runs at import or call time (not `if TYPE_CHECKING:`)."""
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from runtime_imports(node.orelse)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        else:
            yield from runtime_imports(ast.iter_child_nodes(node))


def imported_modules(module: str, path: Path) -> set[str]:
    """Dotted names the module imports, each a module or an attribute of one."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    relative = path.relative_to(ROOT).as_posix()
    if loads_modules_by_name(tree):
        assert relative in DYNAMIC_IMPORTS, (
            f"{relative} imports modules by name: declare them in DYNAMIC_IMPORTS"
        )
    names: set[str] = set(DYNAMIC_IMPORTS.get(relative, ()))
    for node in runtime_imports(tree.body):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, node.module] if node.module else anchor)
        else:
            base = node.module or ""
        names.add(base)
        # `from pkg import name` imports pkg.name when that is a submodule.
        names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_closure(module: str) -> set[str]:
    """Repo-relative files that importing `module` executes: modules and package __init__s."""
    files: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        parts = name.split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        for depth in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:depth]))
            if path is None:
                continue
            relative = path.relative_to(ROOT).as_posix()
            if relative not in files:
                files.add(relative)
                pending.extend(imported_modules(".".join(parts[:depth]), path))
    return files


def entries(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def test_declared_dynamic_imports_exist():
    for source, modules in DYNAMIC_IMPORTS.items():
        if not (ROOT / source).is_file():
            continue  # not landed yet; nothing imports it
        for module in modules:
            assert module_file(module) is not None, f"{source} loads {module}, which does not exist"


def test_every_function_has_a_file_list():
    assert set(FUNCTION_FILES) == {spec.key for spec in ALL_FUNCTIONS}


@HANDLERS
def test_file_list_is_exactly_the_handlers_import_closure(spec):
    listed = FUNCTION_FILES[landed(spec).key]
    closure = import_closure(spec.module)
    assert list(listed) == sorted(set(listed)), (
        f"{spec.key}: keep FUNCTION_FILES sorted, no repeats"
    )
    missing, unneeded = sorted(closure - set(listed)), sorted(set(listed) - closure)
    assert not missing and not unneeded, (
        f"FUNCTION_FILES[{spec.key!r}] is out of date: "
        f"add {missing} (imported by {spec.module}), remove {unneeded} (never imported)"
    )


@HANDLERS
def test_file_list_holds_only_existing_handler_sources(spec):
    for name in FUNCTION_FILES[landed(spec).key]:
        path = PurePosixPath(name)
        assert (ROOT / name).is_file(), f"{spec.key}: {name} does not exist"
        assert path.parts[0] == "handlers", f"{spec.key}: {name} is outside handlers/"
        assert "__pycache__" not in path.parts and path.suffix != ".pyc", name
        assert not {"tests", "test"} & set(path.parts), f"{spec.key}: {name} is a test"
        assert not path.name.startswith("test_"), f"{spec.key}: {name} is a test"


# --- function archives --------------------------------------------------------------------


@HANDLERS
def test_function_archive_is_reproducible_and_holds_exactly_its_files(spec):
    first, second = function_archive(landed(spec)), function_archive(spec)
    content = first.path.read_bytes()
    assert first == second
    assert first.path.parent == ROOT / ".build" / "functions"
    assert first == BuiltArchive.of_bytes(first.path, content)
    assert sorted(entries(content)) == sorted(FUNCTION_FILES[spec.key])
    assert all(entries(content)[name] == (ROOT / name).read_bytes() for name in entries(content))


@pytest.fixture
def scratch_repo(tmp_path, monkeypatch) -> Path:
    """A repo of two tiny handlers sharing one module, built into its own .build/."""
    sources = {
        "handlers/__init__.py": "",
        "handlers/shared/__init__.py": "",
        "handlers/shared/env.py": "NAME = 'env'\n",
        "handlers/query.py": "from handlers.shared import env\n",
        "handlers/reporter.py": "from handlers.shared import env\n",
    }
    for name, source in sources.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    monkeypatch.setattr(packaging, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(packaging, "BUILD_DIR", tmp_path / ".build")
    shared = ("handlers/__init__.py", "handlers/shared/__init__.py", "handlers/shared/env.py")
    monkeypatch.setattr(
        packaging,
        "FUNCTION_FILES",
        {"query": (*shared, "handlers/query.py"), "reporter": (*shared, "handlers/reporter.py")},
    )
    return tmp_path


def test_two_builds_give_the_same_bytes_and_hash_and_the_second_writes_nothing(scratch_repo):
    first = function_archive(QUERY)
    written = first.path.stat().st_mtime_ns
    second = function_archive(QUERY)
    assert second == first
    assert second.path.stat().st_mtime_ns == written
    assert [path.name for path in (scratch_repo / ".build" / "functions").iterdir()] == [
        f"query-{first.sha256_hex}.zip"
    ]


def test_archive_ignores_file_times_permissions_and_byte_code(scratch_repo):
    before = function_archive(QUERY)
    handler = scratch_repo / "handlers" / "query.py"
    handler.chmod(0o755)
    handler.touch()
    (scratch_repo / "handlers" / "__pycache__").mkdir()
    (scratch_repo / "handlers" / "__pycache__" / "query.cpython-311.pyc").write_bytes(b"\0")
    assert function_archive(QUERY) == before


def test_archive_entries_are_normalised(scratch_repo):
    with zipfile.ZipFile(function_archive(QUERY).path) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr >> 16 == 0o100644
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert not info.is_dir()


def test_a_changed_handler_changes_only_its_own_archive(scratch_repo):
    query, reporter = function_archive(QUERY), function_archive(REPORTER)
    (scratch_repo / "handlers" / "reporter.py").write_text(
        "from handlers.shared import env  # v2\n"
    )
    changed = function_archive(REPORTER)
    assert changed.sha256_hex != reporter.sha256_hex
    assert changed.base64_sha256 != reporter.base64_sha256
    assert changed.path != reporter.path
    assert entries(changed.path.read_bytes())["handlers/reporter.py"].endswith(b"# v2\n")
    assert function_archive(QUERY) == query


def test_a_changed_shared_module_changes_every_archive_that_ships_it(scratch_repo):
    query, reporter = function_archive(QUERY), function_archive(REPORTER)
    (scratch_repo / "handlers" / "shared" / "env.py").write_text("NAME = 'env2'\n")
    assert function_archive(QUERY).sha256_hex != query.sha256_hex
    assert function_archive(REPORTER).sha256_hex != reporter.sha256_hex


def test_a_listed_file_that_does_not_exist_is_named(scratch_repo):
    (scratch_repo / "handlers" / "shared" / "env.py").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"FUNCTION_FILES\['query'\].*handlers/shared/env\.py"
    ):
        function_archive(QUERY)


def test_archive_is_a_pulumi_file_archive_with_lambdas_hash_format(scratch_repo):
    built = function_archive(QUERY)
    assert isinstance(built.archive(), pulumi.FileArchive)
    assert built.archive().path == str(built.path)
    assert len(built.base64_sha256) == 44 and built.size_bytes == built.path.stat().st_size


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_]{1,8}(/[a-z_]{1,8}){0,2}\.py", fullmatch=True),
        st.binary(max_size=200),
        max_size=6,
    ),
    st.randoms(use_true_random=False),
)
def test_deterministic_zip_depends_only_on_names_and_contents(files, random):
    shuffled = list(files.items())
    random.shuffle(shuffled)
    content = deterministic_zip(shuffled)
    assert content == deterministic_zip(sorted(files.items()))
    assert entries(content) == files


def test_the_same_files_give_the_same_archive_on_every_machine():
    # The archive hash is what `pulumi preview` compares, so it must not depend on where the
    # preview runs. Zip metadata is fixed; the DEFLATE output comes from zlib and is the same
    # for every zlib 1.2/1.3 (zlib-ng, e.g. Fedora 40+, compresses differently).
    source = b"\n".join(
        b'def handler_%d(event, context):\n    return {"statusCode": %d}' % (i, 200 + i % 3)
        for i in range(50)
    )
    content = deterministic_zip([("handlers/__init__.py", b""), ("handlers/query.py", source)])
    assert hashlib.sha256(content).hexdigest() == (
        "98a5335e64618b7ba40b00c1b533d2e4d7130847927fa0d13c2aa99dd4c0eb8b"
    ), f"this Python's zlib ({zlib.ZLIB_RUNTIME_VERSION}) builds different archives than CI"


def test_deterministic_zip_refuses_duplicate_names():
    with pytest.raises(ValueError, match=r"duplicate archive entries: python/six\.py"):
        deterministic_zip([("python/six.py", b"a"), ("python/six.py", b"b")])


# --- layers -------------------------------------------------------------------------------

# Libraries a manylinux2014 wheel may expect from the OS, all present on Lambda's Amazon Linux 2.
SYSTEM_LIBRARIES = {
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libz.so.1",
    "ld-linux-aarch64.so.1",
    "ld-linux-x86-64.so.2",
}
SHT_DYNAMIC, DT_NEEDED = 6, 1


def requirement_pins(name: str) -> dict[str, str]:
    """Canonical distribution name -> pinned version, from components/layers/<name>/requirements.txt."""
    text = (ROOT / "components" / "layers" / name / "requirements.txt").read_text()
    pins = {}
    for line in text.replace("\\\n", " ").splitlines():
        requirement = line.split("#", 1)[0].split("--hash", 1)[0].strip()
        if requirement:
            distribution, version = requirement.split("==")
            pins[canonicalize_name(distribution)] = version.strip()
    return pins


def dist_metadata(layer: dict[str, bytes]) -> dict[str, tuple[str, list[Requirement]]]:
    """Canonical name -> (version, declared requirements) of each distribution in the layer."""
    found = {}
    for name, content in layer.items():
        if name.count("/") == 2 and name.endswith(".dist-info/METADATA"):
            metadata = HeaderParser().parsestr(content.decode())
            requires = [Requirement(raw) for raw in metadata.get_all("Requires-Dist") or []]
            found[canonicalize_name(metadata["Name"])] = (metadata["Version"], requires)
    return found


def elf_needed(content: bytes) -> list[str]:
    """The DT_NEEDED libraries of a 64-bit little-endian ELF shared object."""
    assert content[:6] == b"\x7fELF\x02\x01", "not a 64-bit little-endian ELF file"
    (section_offset,) = struct.unpack_from("<Q", content, 0x28)
    entry_size, count = struct.unpack_from("<HH", content, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", content, section_offset + index * entry_size)
        for index in range(count)
    ]
    needed = []
    for _, kind, _, _, offset, size, link, *_ in sections:
        if kind != SHT_DYNAMIC:
            continue
        strings = sections[link][4]
        for entry in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", content, entry)
            if tag == DT_NEEDED:
                start = strings + value
                needed.append(content[start : content.index(b"\0", start)].decode())
    return needed


@pytest.fixture(scope="module", params=LAYER_NAMES)
def layer(request) -> tuple[str, BuiltArchive, dict[str, bytes]]:
    """A layer as deployed (the functions' architecture) and its files."""
    built = layer_archive(request.param)
    return request.param, built, entries(built.path.read_bytes())


@pytest.fixture(scope="module")
def host_architecture() -> str:
    """The Lambda architecture whose layer this machine can run."""
    architecture = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine())
    if sys.platform != "linux" or architecture is None:
        pytest.skip(f"manylinux wheels do not run on {sys.platform}/{platform.machine()}")
    return architecture


def run_with_only_the_layer(layer: BuiltArchive, script: str, directory: Path) -> dict:
    """Runs `script` on a python whose sys.path is the stdlib plus the layer's python/."""
    with zipfile.ZipFile(layer.path) as archive:
        archive.extractall(directory)
    python = directory / "python"
    prelude = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(python)!r})
        assert not [entry for entry in sys.path if "site-packages" in entry], sys.path
        """
    )
    # -S: no site-packages (the venv's or the user's); -I: no PYTHON* variables, no cwd.
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", prelude + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    for module in outcome.pop("modules"):
        assert Path(module).is_relative_to(python), f"{module} is not from the layer"
    return outcome


def test_layer_is_cached_under_the_hash_of_its_requirements(layer):
    name, built, _ = layer
    requirements = (ROOT / "components" / "layers" / name / "requirements.txt").read_bytes()
    assert built.path == layer_cache_path(name, requirements)
    assert built.path.parent == ROOT / ".build" / "layers"
    assert built == BuiltArchive.of_file(built.path)


def test_layer_cache_key_changes_with_the_requirements_and_the_architecture():
    pinned = b"reportlab==5.1.0 --hash=sha256:59fd\n"
    assert layer_cache_path("reporting", pinned) == layer_cache_path("reporting", pinned)
    assert layer_cache_path("reporting", pinned) != layer_cache_path(
        "reporting", pinned.replace(b"5.1.0", b"5.1.1")
    )
    assert layer_cache_path("reporting", pinned, "arm64") != layer_cache_path(
        "reporting", pinned, "x86_64"
    )
    assert layer_cache_path("reporting", pinned).name.startswith("reporting-")


def test_a_cached_layer_is_not_rebuilt(layer, monkeypatch):
    name, built, _ = layer

    def no_download(*args, **kwargs):
        raise AssertionError("a cached layer must not run pip")

    monkeypatch.setattr(packaging.subprocess, "run", no_download)
    assert layer_archive(name) == built


def test_a_second_layer_build_gives_identical_bytes(layer, tmp_path, monkeypatch):
    name, built, _ = layer
    monkeypatch.setattr(packaging, "BUILD_DIR", tmp_path / ".build")
    rebuilt = layer_archive(name)
    assert rebuilt.path != built.path
    assert rebuilt.path.read_bytes() == built.path.read_bytes()
    assert (rebuilt.sha256_hex, rebuilt.size_bytes) == (built.sha256_hex, built.size_bytes)


def test_unknown_layers_and_architectures_are_refused():
    with pytest.raises(ValueError, match="unknown layer 'charts'; known layers: reporting, auth"):
        layer_archive("charts")
    with pytest.raises(ValueError, match="unknown architecture 'x86'; known: arm64, x86_64"):
        layer_archive("auth", "x86")


def test_layer_has_lambdas_python_layout_and_no_byte_code_or_tests(layer):
    name, _, files = layer
    for entry in files:
        path = PurePosixPath(entry)
        assert path.parts[0] == "python", f"{name}: {entry} is outside python/"
        assert "__pycache__" not in path.parts and path.suffix != ".pyc", f"{name}: {entry}"
        assert not {"tests", "test"} & set(path.parts[:-1]), f"{name}: {entry} is a test"


def test_layer_holds_exactly_the_pinned_distributions_and_everything_they_need(layer):
    name, _, files = layer
    installed = dist_metadata(files)
    assert {dist: version for dist, (version, _) in installed.items()} == requirement_pins(name)
    for dist, (_, requires) in installed.items():
        for requirement in requires:
            if requirement.marker and not requirement.marker.evaluate(LAMBDA_MARKER_ENVIRONMENT):
                continue
            needed = canonicalize_name(requirement.name)
            assert needed in installed, f"{name}: {dist} needs {requirement}, not in the layer"
            assert requirement.specifier.contains(installed[needed][0]), (
                f"{name}: {dist} needs {requirement}, the layer has {installed[needed][0]}"
            )


def test_layer_native_code_is_arm64_and_links_only_the_layer_and_the_os(layer):
    name, _, files = layer
    shipped = {PurePosixPath(entry).name for entry in files}
    for entry, content in files.items():
        if ".so" not in PurePosixPath(entry).suffixes:
            continue
        assert int.from_bytes(content[18:20], "little") == ELF_MACHINE_AARCH64, entry
        unresolved = set(elf_needed(content)) - shipped - SYSTEM_LIBRARIES
        assert not unresolved, f"{name}: {entry} needs {sorted(unresolved)}"


def test_reporting_layer_is_small_and_leaves_out_the_avif_codec():
    built = layer_archive("reporting")
    names = entries(built.path.read_bytes())
    assert built.size_bytes < REPORTING_LAYER_LIMIT_BYTES, f"{built.size_bytes:,} bytes"
    assert "python/PIL/Image.py" in names
    assert not [entry for entry in names if "avif" in entry and ".so" in entry]


def test_reporting_layer_alone_renders_a_pdf_and_an_xlsx_with_charts(host_architecture, tmp_path):
    rendered = run_with_only_the_layer(
        layer_archive("reporting", host_architecture),
        """
        import io
        from openpyxl import Workbook
        from openpyxl.chart import BarChart, Reference
        from PIL import features
        from reportlab.graphics.charts.barcharts import VerticalBarChart
        from reportlab.graphics.charts.lineplots import LinePlot
        from reportlab.graphics.shapes import Drawing
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.styles import getSampleStyleSheet
        from reportlab.platypus import Paragraph, SimpleDocTemplate, Table

        days = list(range(1, 31))
        calls = [1000 + 37 * day for day in days]
        bars = VerticalBarChart()
        bars.x, bars.y, bars.width, bars.height = 40, 220, 340, 160
        bars.data = [calls]
        bars.categoryAxis.categoryNames = [str(day) for day in days]
        line = LinePlot()
        line.x, line.y, line.width, line.height = 40, 20, 340, 160
        line.data = [list(zip(days, calls))]
        drawing = Drawing(400, 400)
        drawing.add(bars)
        drawing.add(line)
        pdf = io.BytesIO()
        SimpleDocTemplate(pdf, pagesize=A4).build([
            Paragraph("Usage report acme", getSampleStyleSheet()["Title"]),
            drawing,
            Table([["day", "calls"], *zip(days, calls)]),
        ])

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("usage")
        sheet.append(["day", "calls"])
        for row in zip(days, calls):
            sheet.append(row)
        chart = BarChart()
        chart.add_data(Reference(sheet, min_col=2, min_row=1, max_row=31), titles_from_data=True)
        sheet.add_chart(chart, "D2")
        xlsx = io.BytesIO()
        workbook.save(xlsx)

        print(json.dumps({
            "pdf": pdf.getvalue().hex(),
            "xlsx": xlsx.getvalue().hex(),
            "avif": features.check_module("avif"),
            "modules": [sys.modules[name].__file__ for name in ("reportlab", "openpyxl", "PIL")],
        }))
        """,
        tmp_path,
    )
    assert rendered["avif"] is False
    pdf = PdfReader(io.BytesIO(bytes.fromhex(rendered["pdf"])))
    assert "Usage report acme" in pdf.pages[0].extract_text()
    with zipfile.ZipFile(io.BytesIO(bytes.fromhex(rendered["xlsx"]))) as xlsx:
        assert re.search(rb"<(\w+:)?barChart>", xlsx.read("xl/charts/chart1.xml"))


def test_auth_layer_alone_verifies_rs256_and_es256_tokens(host_architecture, tmp_path):
    verified = run_with_only_the_layer(
        layer_archive("auth", host_architecture),
        """
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        claims = {"customer_id": "acme", "iss": "securebase", "aud": "analytics", "exp": 4102444800}
        keys = {"RS256": rsa.generate_private_key(65537, 2048), "ES256": ec.generate_private_key(ec.SECP256R1())}
        decoded = {
            algorithm: jwt.decode(
                jwt.encode(claims, key, algorithm=algorithm), key.public_key(),
                algorithms=[algorithm], audience="analytics", issuer="securebase",
            )["customer_id"]
            for algorithm, key in keys.items()
        }
        import cryptography
        print(json.dumps({"decoded": decoded, "modules": [jwt.__file__, cryptography.__file__]}))
        """,
        tmp_path,
    )
    assert verified == {"decoded": {"RS256": "acme", "ES256": "acme"}}
