"""Regenerate the Python stubs from the .proto files in this folder.

    .venv/bin/python -m shared.lightning.protos.build

protoc writes ``import lightning_pb2`` (a top-level module) into the router/invoices stubs; we
rewrite those imports to the package path so the stubs import as ``shared.lightning.protos.*``
and only one copy of ``lightning.proto`` is ever registered in the descriptor pool.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PACKAGE = "shared.lightning.protos"
PROTO_FILES = ("lightning.proto", "router.proto", "invoices.proto")
_IMPORT_RE = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def generated_names() -> list[str]:
    """The file names the build writes, for the freshness test."""
    names = []
    for proto in PROTO_FILES:
        stem = proto.removesuffix(".proto")
        names += [f"{stem}_pb2.py", f"{stem}_pb2_grpc.py"]
    return names


def build(out_dir: Path = PROTO_DIR) -> None:
    """Compile the protos into ``out_dir`` and fix the cross-file imports."""
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    include = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(PROTO_DIR / name) for name in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    for name in generated_names():
        path = Path(out_dir) / name
        text = path.read_text()
        fixed = _IMPORT_RE.sub(rf"from {PACKAGE} import \1 as \2", text)
        if fixed != text:
            path.write_text(fixed)


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_DIR)
