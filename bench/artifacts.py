"""Deployment package sizes: each function's code archive and the two layers.

Built by the same code the Pulumi program uses (`components.packaging`), for
Lambda's arm64 runtime, so these are the bytes `pulumi up` uploads. A layer is
built (pip download of its pinned wheels) only if `.build/` lacks it.
"""

from __future__ import annotations

from typing import Any

from bench.progress import Progress, say
from bench.results import function_key
from components.functions import ALL_FUNCTIONS
from components.packaging import function_archive, layer_archive


def measure(progress: Progress = say) -> dict[str, Any]:
    """The `artifacts` section of the results."""
    results: dict[str, Any] = {
        f"{function_key(spec.key)}_bytes": function_archive(spec).size_bytes
        for spec in ALL_FUNCTIONS
    }
    # The reporting layer (ReportLab, openpyxl) is the one the size target is about.
    results["layer_bytes"] = layer_archive("reporting").size_bytes
    results["auth_layer_bytes"] = layer_archive("auth").size_bytes
    progress(
        f"  reporting layer {results['layer_bytes']:,} bytes,"
        f" auth layer {results['auth_layer_bytes']:,} bytes"
    )
    return results
