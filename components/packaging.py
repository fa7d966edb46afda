"""Builds the Lambda artifacts: one code archive per function and the dependency layers.

Both are deterministic zips (sorted entries, fixed timestamp and permissions, fixed
compression level), so the same inputs always give the same bytes, the same
`source_code_hash` and therefore no diff in `pulumi preview`.

- Function code: exactly the files in FUNCTION_FILES (reviewed by hand; a test checks each
  list against the handler's static import closure), written content-addressed to
  `.build/functions/`, so rebuilding an unchanged handler writes nothing.
- Layers: `components/layers/<name>/requirements.txt` pins every wheel by version and sha256. The layer
  is `pip download`ed for the Lambda platform, unpacked under `python/` and cached in
  `.build/layers/` under the hash of the requirements and the build recipe, so a fresh clone
  builds it once on its first preview and never again until a pin changes.

Nothing here creates Pulumi resources; components turn a BuiltArchive into `code`/`source_code_hash`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType

import pulumi

from components.functions import ARCHITECTURE, RUNTIME, FunctionSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / ".build"
LAYERS_DIR = REPO_ROOT / "components" / "layers"
LAYER_NAMES: tuple[str, ...] = ("reporting", "auth")

# Function key -> the repo-relative files its archive holds, and nothing else: the handler
# module and every repo module it imports (package __init__ files included). Written by hand
# and reviewed; tests/test_packaging.py fails when a list differs from the handler's imports.
FUNCTION_FILES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "authorizer": (
            "handlers/__init__.py",
            "handlers/authorizer.py",
            "handlers/shared/__init__.py",
            "handlers/shared/env.py",
            "handlers/shared/metrics_layout.py",
            "handlers/shared/telemetry.py",
        ),
        "query": (
            "handlers/__init__.py",
            "handlers/query.py",
            "handlers/shared/__init__.py",
            "handlers/shared/analytics.py",
            "handlers/shared/api_gateway.py",
            "handlers/shared/cost_categories.py",
            "handlers/shared/dynamo.py",
            "handlers/shared/env.py",
            "handlers/shared/http.py",
            "handlers/shared/metrics_layout.py",
            "handlers/shared/metrics_reader.py",
            "handlers/shared/periods.py",
            "handlers/shared/query_cache.py",
            "handlers/shared/routes.py",
            "handlers/shared/telemetry.py",
            "handlers/shared/usage_metrics.py",
        ),
        "reporter": (
            "handlers/__init__.py",
            "handlers/reporter.py",
            "handlers/shared/__init__.py",
            "handlers/shared/analytics.py",
            "handlers/shared/cost_categories.py",
            "handlers/shared/dynamo.py",
            "handlers/shared/env.py",
            "handlers/shared/http.py",
            "handlers/shared/metrics_layout.py",
            "handlers/shared/metrics_reader.py",
            "handlers/shared/periods.py",
            "handlers/shared/reports/__init__.py",
            "handlers/shared/reports/builder.py",
            "handlers/shared/reports/cells.py",
            "handlers/shared/reports/idempotency.py",
            "handlers/shared/reports/ids.py",
            "handlers/shared/reports/jobs.py",
            "handlers/shared/reports/model.py",
            "handlers/shared/reports/pending.py",
            "handlers/shared/reports/render.py",
            "handlers/shared/reports/render_csv.py",
            "handlers/shared/reports/render_json.py",
            "handlers/shared/reports/render_pdf.py",
            "handlers/shared/reports/render_xlsx.py",
            "handlers/shared/reports/service.py",
            "handlers/shared/reports/store.py",
            "handlers/shared/reports/times.py",
            "handlers/shared/routes.py",
            "handlers/shared/telemetry.py",
            "handlers/shared/usage_metrics.py",
        ),
        "report-engine": (
            "handlers/__init__.py",
            "handlers/report_engine.py",
            "handlers/shared/__init__.py",
            "handlers/shared/analytics.py",
            "handlers/shared/cost_categories.py",
            "handlers/shared/dynamo.py",
            "handlers/shared/env.py",
            "handlers/shared/http.py",
            "handlers/shared/mail/__init__.py",
            "handlers/shared/mail/consent.py",
            "handlers/shared/mail/customers.py",
            "handlers/shared/mail/links.py",
            "handlers/shared/mail/mailer.py",
            "handlers/shared/mail/recipients.py",
            "handlers/shared/metrics_layout.py",
            "handlers/shared/metrics_reader.py",
            "handlers/shared/periods.py",
            "handlers/shared/reports/__init__.py",
            "handlers/shared/reports/builder.py",
            "handlers/shared/reports/cells.py",
            "handlers/shared/reports/ids.py",
            "handlers/shared/reports/jobs.py",
            "handlers/shared/reports/model.py",
            "handlers/shared/reports/pending.py",
            "handlers/shared/reports/render.py",
            "handlers/shared/reports/render_csv.py",
            "handlers/shared/reports/render_json.py",
            "handlers/shared/reports/render_pdf.py",
            "handlers/shared/reports/render_xlsx.py",
            "handlers/shared/reports/schedule_store.py",
            "handlers/shared/reports/schedules.py",
            "handlers/shared/reports/service.py",
            "handlers/shared/reports/store.py",
            "handlers/shared/reports/times.py",
            "handlers/shared/routes.py",
            "handlers/shared/tables.py",
            "handlers/shared/telemetry.py",
            "handlers/shared/usage_metrics.py",
        ),
        "aggregator": (
            "handlers/__init__.py",
            "handlers/aggregator.py",
            "handlers/shared/__init__.py",
            "handlers/shared/aggregation/__init__.py",
            "handlers/shared/aggregation/cloudwatch_queries.py",
            "handlers/shared/aggregation/compliance.py",
            "handlers/shared/aggregation/compliance_slots.py",
            "handlers/shared/aggregation/costs.py",
            "handlers/shared/aggregation/hours.py",
            "handlers/shared/aggregation/rollups.py",
            "handlers/shared/aggregation/shards.py",
            "handlers/shared/aggregation/tenants.py",
            "handlers/shared/aggregator/__init__.py",
            "handlers/shared/aggregator/ledger.py",
            "handlers/shared/aggregator/runtime.py",
            "handlers/shared/aggregator/usage.py",
            "handlers/shared/dynamo.py",
            "handlers/shared/env.py",
            "handlers/shared/metrics_layout.py",
            "handlers/shared/tables.py",
            "handlers/shared/telemetry.py",
            "handlers/shared/usage_metrics.py",
        ),
        "aggregator-shard": (
            "handlers/__init__.py",
            "handlers/aggregator_shard.py",
            "handlers/shared/__init__.py",
            "handlers/shared/aggregation/__init__.py",
            "handlers/shared/aggregation/cloudwatch_queries.py",
            "handlers/shared/aggregation/hours.py",
            "handlers/shared/aggregation/rollups.py",
            "handlers/shared/aggregation/shards.py",
            "handlers/shared/aggregator/__init__.py",
            "handlers/shared/aggregator/ledger.py",
            "handlers/shared/aggregator/runtime.py",
            "handlers/shared/aggregator/usage.py",
            "handlers/shared/dynamo.py",
            "handlers/shared/env.py",
            "handlers/shared/metrics_layout.py",
            "handlers/shared/tables.py",
            "handlers/shared/telemetry.py",
            "handlers/shared/usage_metrics.py",
        ),
        "email-consent": (
            "handlers/__init__.py",
            "handlers/email_consent.py",
            "handlers/shared/__init__.py",
            "handlers/shared/dynamo.py",
            "handlers/shared/env.py",
            "handlers/shared/http.py",
            "handlers/shared/mail/__init__.py",
            "handlers/shared/mail/consent.py",
            "handlers/shared/mail/links.py",
            "handlers/shared/mail/mailer.py",
            "handlers/shared/mail/recipients.py",
            "handlers/shared/metrics_layout.py",
            "handlers/shared/reports/__init__.py",
            "handlers/shared/reports/times.py",
            "handlers/shared/routes.py",
            "handlers/shared/telemetry.py",
        ),
        "phase2-monitor": (
            "handlers/__init__.py",
            "handlers/phase2_monitor.py",
            "handlers/shared/__init__.py",
            "handlers/shared/env.py",
            "handlers/shared/monitoring/__init__.py",
            "handlers/shared/monitoring/alarms.py",
            "handlers/shared/monitoring/config.py",
            "handlers/shared/monitoring/evaluate.py",
            "handlers/shared/monitoring/queries.py",
            "handlers/shared/monitoring/render.py",
            "handlers/shared/monitoring/units.py",
            "handlers/shared/telemetry.py",
        ),
    }
)

# Zip normalisation: what makes two builds of the same files byte-identical.
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can record
_ZIP_FILE_MODE = 0o100644  # regular file, rw-r--r-- (Lambda needs read, nothing needs exec)
_ZIP_UNIX = 3  # "made by" Unix, so the mode above is honoured when unpacked
_ZIP_LEVEL = 6  # zlib's default; 9 takes three times as long for a 0.5% smaller layer

# Bump when the way a layer is assembled changes, so cached layers are rebuilt.
_LAYER_RECIPE_VERSION = "1"
# Lambda's python3.11 runtime is Amazon Linux 2 (glibc 2.26): manylinux2014 (glibc 2.17)
# wheels run there, the newer manylinux_2_28/2_34 ones do not.
_WHEEL_PLATFORMS: Mapping[str, str] = MappingProxyType(
    {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
)
_PYTHON_VERSION = RUNTIME.removeprefix("python")  # "3.11"
_CPYTHON_ABI = "cp" + _PYTHON_VERSION.replace(".", "")  # "cp311"
# Byte-code is compiled by the runtime on first import; tests are dead weight.
_EXCLUDED_DIRECTORIES = frozenset({"__pycache__", "tests", "test"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# Installed files a layer leaves out (globs on the site-packages path), beyond the above.
_LAYER_OMISSIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # Pillow is here only because reportlab.lib.utils imports PIL.Image; the reports draw
        # no raster images. Its AVIF codec (a quarter of the layer) is an optional Pillow
        # extension that only AvifImagePlugin loads, and nothing else links libavif.
        "reporting": ("PIL/_avif.*.so", "pillow.libs/libavif-*"),
    }
)


class LayerBuildError(RuntimeError):
    """pip could not fetch a layer's pinned wheels (network, index or hash mismatch)."""


@dataclass(frozen=True)
class BuiltArchive:
    path: Path
    sha256_hex: str
    base64_sha256: str  # Lambda's `source_code_hash` / `CodeSha256` format
    size_bytes: int

    def archive(self) -> pulumi.FileArchive:
        return pulumi.FileArchive(str(self.path))

    @classmethod
    def of_file(cls, path: Path) -> BuiltArchive:
        return cls.of_bytes(path, path.read_bytes())

    @classmethod
    def of_bytes(cls, path: Path, content: bytes) -> BuiltArchive:
        """Describes `content`, which is (or is about to be) the content of `path`."""
        digest = hashlib.sha256(content)
        return cls(
            path=path,
            sha256_hex=digest.hexdigest(),
            base64_sha256=base64.b64encode(digest.digest()).decode("ascii"),
            size_bytes=len(content),
        )


def function_archive(spec: FunctionSpec) -> BuiltArchive:
    """The function's code: a zip of exactly FUNCTION_FILES[spec.key], at repo-relative paths."""
    files = FUNCTION_FILES.get(spec.key)
    if files is None:
        raise KeyError(
            f"no FUNCTION_FILES entry for function {spec.key!r}; known: {', '.join(FUNCTION_FILES)}"
        )
    missing = [name for name in files if not (REPO_ROOT / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"FUNCTION_FILES[{spec.key!r}] lists files that do not exist: {', '.join(missing)}"
        )
    content = deterministic_zip((name, (REPO_ROOT / name).read_bytes()) for name in files)
    target = BUILD_DIR / "functions" / f"{spec.key}-{hashlib.sha256(content).hexdigest()}.zip"
    if not target.is_file():
        _write_atomically(target, content)
    return BuiltArchive.of_bytes(target, content)


def layer_archive(name: str, architecture: str = ARCHITECTURE) -> BuiltArchive:
    """The layer's zip (wheels unpacked under python/), built on first use, then cached.

    `architecture` is the Lambda architecture to build for; it defaults to the functions'.
    (The tests also build the host's one, to run the layer's code on the test machine.)
    """
    if name not in LAYER_NAMES:
        raise ValueError(f"unknown layer {name!r}; known layers: {', '.join(LAYER_NAMES)}")
    if architecture not in _WHEEL_PLATFORMS:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {', '.join(_WHEEL_PLATFORMS)}"
        )
    requirements = LAYERS_DIR / name / "requirements.txt"
    target = layer_cache_path(name, requirements.read_bytes(), architecture)
    if not target.is_file():
        _build_layer(name, requirements, architecture, target)
    return BuiltArchive.of_file(target)


def layer_cache_path(name: str, requirements: bytes, architecture: str = ARCHITECTURE) -> Path:
    """Where a layer built from these requirements is cached: keyed by them and the recipe."""
    key = hashlib.sha256()
    key.update(requirements)
    recipe = (
        _LAYER_RECIPE_VERSION,
        f"deflate-{_ZIP_LEVEL}",
        *_pip_download_args(architecture),
        *sorted(_EXCLUDED_DIRECTORIES),
        *_EXCLUDED_SUFFIXES,
        *_LAYER_OMISSIONS.get(name, ()),
    )
    key.update("\0".join(recipe).encode())
    return BUILD_DIR / "layers" / f"{name}-{key.hexdigest()}.zip"


def deterministic_zip(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A zip of (posix path, content) pairs whose bytes depend on nothing but those pairs."""
    ordered = sorted(entries)
    counts = Counter(name for name, _ in ordered)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        # Two wheels shipping the same file: which one wins would depend on order.
        raise ValueError(f"duplicate archive entries: {', '.join(duplicates)}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in ordered:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIMESTAMP)
            info.create_system = _ZIP_UNIX
            info.external_attr = _ZIP_FILE_MODE << 16
            archive.writestr(
                info, content, compress_type=zipfile.ZIP_DEFLATED, compresslevel=_ZIP_LEVEL
            )
    return buffer.getvalue()


def _pip_download_args(architecture: str) -> tuple[str, ...]:
    return (
        "download",
        "--only-binary=:all:",
        f"--platform={_WHEEL_PLATFORMS[architecture]}",
        f"--python-version={_PYTHON_VERSION}",
        "--implementation=cp",
        f"--abi={_CPYTHON_ABI}",
        "--require-hashes",
        "--no-deps",  # requirements.txt already pins the whole closure
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar=off",
    )


def _build_layer(name: str, requirements: Path, architecture: str, target: Path) -> None:
    started = time.monotonic()
    pulumi.log.info(
        f"building Lambda layer {name!r} from {requirements} "
        f"(downloading {_WHEEL_PLATFORMS[architecture]} wheels for {RUNTIME}; cached afterwards)"
    )
    with tempfile.TemporaryDirectory(prefix=f"layer-{name}-") as download_dir:
        command = [
            sys.executable,
            "-m",
            "pip",
            *_pip_download_args(architecture),
            "--requirement",
            str(requirements),
            "--dest",
            download_dir,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise LayerBuildError(
                f"pip could not download the wheels of layer {name!r} "
                f"(exit {result.returncode}):\n{result.stderr.strip()}"
            )
        wheels = sorted(Path(download_dir).glob("*.whl"))
        content = deterministic_zip(_layer_entries(wheels, _LAYER_OMISSIONS.get(name, ())))
    _write_atomically(target, content)
    pulumi.log.info(
        f"built Lambda layer {name!r}: {len(wheels)} wheels, {len(content):,} bytes "
        f"in {time.monotonic() - started:.1f}s -> {target}"
    )


def _layer_entries(
    wheels: Iterable[Path], omissions: tuple[str, ...]
) -> Iterator[tuple[str, bytes]]:
    """Each wheel's installed files under python/ (Lambda puts /opt/python on sys.path)."""
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as unpacked:
            for member in unpacked.infolist():
                installed = _installed_path(PurePosixPath(member.filename))
                if member.is_dir() or installed is None:
                    continue
                if any(installed.match(pattern) for pattern in omissions):
                    continue
                yield f"python/{installed}", unpacked.read(member)


def _installed_path(path: PurePosixPath) -> PurePosixPath | None:
    """Where a wheel member lands in site-packages, or None if the layer leaves it out."""
    if _EXCLUDED_DIRECTORIES.intersection(path.parts[:-1]) or path.suffix in _EXCLUDED_SUFFIXES:
        return None
    top = path.parts[0]
    if top.endswith(".data"):
        # <dist>.data/purelib|platlib/... install into site-packages; scripts, headers
        # and data files have no place in a layer.
        if len(path.parts) > 2 and path.parts[1] in ("purelib", "platlib"):
            return PurePosixPath(*path.parts[2:])
        return None
    return path


def _write_atomically(target: Path, content: bytes) -> None:
    # Concurrent builds (pytest-xdist, two previews) each write a private temp file and
    # rename it into place; readers never see a partial zip.
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False) as file:
        file.write(content)
    try:
        os.replace(file.name, target)
    except OSError:
        os.unlink(file.name)
        raise
