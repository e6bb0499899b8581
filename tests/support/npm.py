"""Third-party npm packages for tests, installed from the registry at a pinned version into .run/.

Nothing is vendored: the first test run installs the package with the machine's npm (seconds), later
runs reuse it. A test skips, with the exact reason, only when node/npm is missing or the registry
cannot be reached; any other install failure fails the test.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

from tests.support.env import REPO_ROOT

NPM_ROOT = REPO_ROOT / ".run" / "npm"
INSTALL_TIMEOUT_S = 300
_UNREACHABLE = re.compile(r"E(NOTFOUND|AI_AGAIN|CONNREFUSED|CONNRESET|TIMEDOUT|NETUNREACH)|network", re.I)


class Unavailable(Exception):
    """node/npm or the registry is not there: the message says which (a reason to skip)."""


def installed_version(prefix: Path, name: str) -> str | None:
    try:
        return json.loads((prefix / "node_modules" / name / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


async def ensure_package(name: str, version: str) -> Path:
    """The folder whose node_modules holds ``name@version`` (installed now if it is not yet)."""
    prefix = NPM_ROOT / f"{name}-{version}"
    if installed_version(prefix, name) == version:
        return prefix
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} is not installed on this machine")
    prefix.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        "npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
        "--save-exact", f"{name}@{version}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), INSTALL_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise Unavailable(f"npm install {name}@{version} did not finish in {INSTALL_TIMEOUT_S}s") from None
    text = output.decode(errors="replace")
    if process.returncode != 0:
        if _UNREACHABLE.search(text):
            raise Unavailable(f"the npm registry is unreachable: {text.strip().splitlines()[-1]}")
        raise AssertionError(f"npm install {name}@{version} failed:\n{text}")
    if installed_version(prefix, name) != version:
        raise AssertionError(f"npm install {name}@{version} left another version:\n{text}")
    return prefix
