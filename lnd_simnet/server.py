"""`python -m lnd_simnet serve`: every node as its own grpc.aio server, one process, one loop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import grpc

from lnd_simnet.auth import MacaroonInterceptor
from lnd_simnet.control import control_handler
from lnd_simnet.files import NETWORK_FILE, prepare_node, write_atomic, write_network_file
from lnd_simnet.network import NODE_NAMES, Settings, open_network
from lnd_simnet.servicers import add_servicers

log = logging.getLogger("lnd_simnet")
_SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", 50 * 1024 * 1024),
    ("grpc.max_send_message_length", 50 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
    # LND's keepalive settings: the server pings an idle client every minute (20 s to answer) and
    # accepts client pings as often as every 5 s, with or without a call open.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 2),
)


async def serve(
    data_dir: Path, host: str, ports: dict[str, int], settings: Settings, extra_domains: tuple[str, ...] = ()
) -> None:
    # Startup file work happens before anything listens, so blocking here delays no request.
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    (data_dir / NETWORK_FILE).unlink(missing_ok=True)
    node_files = {name: prepare_node(data_dir, name, (host, *extra_domains)) for name in NODE_NAMES}
    network = open_network(data_dir, settings, {n: f.key for n, f in node_files.items()})
    servers, info = [], {"pid": os.getpid(), "host": host, "nodes": {}}
    for name, files in node_files.items():
        server = grpc.aio.server(
            interceptors=[MacaroonInterceptor(files.macaroon_root_key)], options=_SERVER_OPTIONS
        )
        add_servicers(server, network, network.nodes[name])
        server.add_generic_rpc_handlers((control_handler(network, network.nodes[name]),))
        creds = grpc.ssl_server_credentials([(files.tls_key_pem, files.tls_cert_pem)])
        port = server.add_secure_port(f"{host}:{ports[name]}", creds)
        if not port:
            raise SystemExit(f"cannot listen on {host}:{ports[name]}")
        await server.start()
        servers.append(server)
        write_atomic(files.root / "rpc.port", str(port).encode(), 0o644)
        info["nodes"][name] = {
            "rpcserver": f"{host}:{port}",
            "host": host,
            "port": port,
            "pubkey": network.nodes[name].pubkey.hex(),
            "tls_cert": str(files.tls_cert_path.resolve()),
            "admin_macaroon": str(files.macaroon_path("admin").resolve()),
            "invoice_macaroon": str(files.macaroon_path("invoice").resolve()),
            "readonly_macaroon": str(files.macaroon_path("readonly").resolve()),
        }
    network.start()
    write_network_file(data_dir, info)  # the readiness signal: everything above is listening
    log.info("lnd_simnet ready: %s", {n: v["rpcserver"] for n, v in info["nodes"].items()})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await asyncio.gather(*(s.stop(grace=1.0) for s in servers))
    await network.close()
    (data_dir / NETWORK_FILE).unlink(missing_ok=True)
