"""Chaos soak (issue 14): the whole system under mixed load and faults, then an audit of every cent.

    make soak                                   # 5 minutes of load, seed 7
    make soak SOAK_ARGS='--minutes 3 --seed 7'
    python -m bench.soak --minutes 1 --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/x_soak

Starts on 127.0.0.1, by itself, and stops it all at the end (also on Ctrl-C or SIGTERM): the database
``lightning_wallet_soak`` on the server of ``DATABASE_URL`` (dropped, created, migrated; left in place
afterwards for inspection), a private redis-server under ``.run/soak/redis``, a fresh lnd_simnet, two
API processes and two lightning workers (directly, not through ``make run``), and a webhook
receiver. Then: a seeded mixed workload at a steady rate (``workload``), faults on a seeded schedule
(``faults``), a bounded quiesce and the audit against the database and the node (``audit``), and the
report ``bench/results/soak.json`` + ``soak.md`` (``report``). Exit status 1 on any violation (each
listed with its ids), 2 when the stack could not be started.
"""
