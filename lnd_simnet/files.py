"""The data directory, laid out like LND's per node:

<dir>/network.json                      written once all nodes listen (pid, host:port, paths)
<dir>/simnet.sqlite3                    state of the whole network
<dir>/<node>/tls.cert, tls.key          self-signed ECDSA P-256
<dir>/<node>/rpc.port                   the gRPC port actually bound
<dir>/<node>/identity.key               node secp256k1 secret (hex)
<dir>/<node>/data/macaroons.rootkey     macaroon root key (LND keeps it in macaroons.db)
<dir>/<node>/data/chain/bitcoin/regtest/{admin,invoice,readonly}.macaroon
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import coincurve

from lnd_simnet import macaroons, tlscert

NETWORK_FILE = "network.json"
MACAROON_DIR = Path("data/chain/bitcoin/regtest")


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class NodeFiles:
    name: str
    root: Path
    key: coincurve.PrivateKey
    tls_cert_pem: bytes
    tls_key_pem: bytes
    macaroon_root_key: bytes

    @property
    def tls_cert_path(self) -> Path:
        return self.root / "tls.cert"

    def macaroon_path(self, kind: str = "admin") -> Path:
        return self.root / MACAROON_DIR / f"{kind}.macaroon"


def prepare_node(data_dir: Path, name: str, extra_hosts: tuple[str, ...] = ()) -> NodeFiles:
    """Create (first start) or load a node's identity, TLS pair and macaroons."""
    root = data_dir / name
    (root / MACAROON_DIR).mkdir(parents=True, exist_ok=True)
    key_path = root / "identity.key"
    if not key_path.exists():
        write_atomic(key_path, coincurve.PrivateKey().secret.hex().encode())
    key = coincurve.PrivateKey(bytes.fromhex(key_path.read_text().strip()))
    cert_path, tls_key_path = root / "tls.cert", root / "tls.key"
    if not cert_path.exists() or not tls_key_path.exists():
        cert_pem, key_pem = tlscert.make_cert(extra_hosts)
        write_atomic(tls_key_path, key_pem)
        write_atomic(cert_path, cert_pem, 0o644)
    root_key_path = root / "data" / "macaroons.rootkey"
    if not root_key_path.exists():
        write_atomic(root_key_path, os.urandom(32).hex().encode())
    root_key = bytes.fromhex(root_key_path.read_text().strip())
    files = NodeFiles(name, root, key, cert_path.read_bytes(), tls_key_path.read_bytes(), root_key)
    for kind, ops in (
        ("admin", macaroons.ADMIN_OPS),
        ("invoice", macaroons.INVOICE_OPS),
        ("readonly", macaroons.READONLY_OPS),
    ):
        if not files.macaroon_path(kind).exists():
            write_atomic(files.macaroon_path(kind), macaroons.mint(root_key, ops))
    return files


def write_network_file(data_dir: Path, info: dict) -> None:
    write_atomic(data_dir / NETWORK_FILE, json.dumps(info, indent=2).encode(), 0o644)


def read_network_file(data_dir: Path) -> dict:
    return json.loads((data_dir / NETWORK_FILE).read_text())
