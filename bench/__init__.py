"""Benchmarks of lightning-wallet (DESIGN §9), run end to end by ``make bench`` / ``python -m bench``.

    python -m bench                      # full run, about 8-10 minutes on 2 cores, bounded at 11.5
    python -m bench --quick              # about 1.5 s per cell: a smoke test (about 2-3 minutes)
    python -m bench --only create_invoice,lnbits --concurrency 1,16 --duration 3

Writes ``bench/results/latest.md`` (the table), ``latest.json`` (the same, machine readable) and
``latest.png`` (throughput and latency percentiles per concurrency). Figures are reported, never
asserted; the exit status is 1 only when a phase failed (listed under "Problems" in the report).

What one run starts (all on 127.0.0.1, free ports, stopped at the end even on Ctrl-C or SIGTERM):
the database ``lightning_wallet_bench`` (dropped, created, ``alembic upgrade head``) on the server
of ``DATABASE_URL``; Redis db 14 of ``REDIS_URL`` (flushed before and after); a fresh lnd_simnet in a
temp dir (default settings: 20 ms payment delay); LNbits 1.6.2 from ``bench/.lnbits-venv`` (created
on first run) with its ``LndWallet`` on the same simnet alice; a bare aiohttp server; a bare arq
worker; then our API (``python -m api_service``, bcrypt cost 12, rate limits lifted) and one worker
(``python -m lightning_worker``). The references run first, each alone; our services start after
them, so nothing of ours runs (or listens to alice's invoice stream) while LNbits is measured.

Workloads (``--only`` names), each at concurrency 1, 16 and 64 unless said otherwise:
- ``create_invoice``: POST /api/v1/invoices. Success is a 201 with ``state: "open"``; a 202 (the
  job did not finish within INVOICE_WAIT_S) or any other state counts as an error, not followed.
- ``reads``: GET /api/v1/invoices?page=1&pageSize=20 as 16 users who each own 20+ invoices.
- ``pay_external``: POST /api/v1/payments of Bob's invoices (made over gRPC before each cell);
  success is a 200 ``status: "succeeded"`` (202 = error). Users are funded by Bob paying them.
- ``pay_internal``: one user pays another user's open invoice (settled inside Postgres).
- ``settlement``: Bob pays N of our invoices (64 at a time) and we time until Postgres shows all N
  settled (live), then again with the worker stopped while Bob pays and started afterwards
  (backlog replay: our ingestion alone, not bounded by the simnet's payment rate).
- ``scaling``: creates and reads at c=16 again with 2 API processes (``API_WORKERS=2``, gunicorn),
  then 1 API + 2 workers, then 2 + 2 (the main worker is stopped meanwhile: one queue).
- ``login_storm``: 50 logins at once (bcrypt cost 12) while GET /healthz is probed sequentially;
  also /healthz alone for comparison.
- references: ``lnbits`` (create invoice and pay Bob, same concurrencies), ``bare_json`` (the HTTP
  ceiling: bare aiohttp+uvloop handler serving a 20-item JSON page), ``arq_roundtrip`` (the queue
  ceiling: enqueue -> trivial job -> result, worker poll_delay as ours), ``simnet`` (AddInvoice over
  gRPC on our alice, and ``bench/simnet_bench.py``'s own figures). Two lean references run in the same
  phase as ours, on the same database, users and tokens, and are the "ours/ceiling" of the table:
  ``lean_reads`` (bench/lean_reads.py: aiohttp + asyncpg, HS256 JWT, the active-user read, our
  activity statement with its total, the same JSON) and ``lean_pipeline`` (bench/lean_pipeline.py:
  aiohttp -> insert -> arq enqueue -> a bare worker doing AddInvoice + update -> publish -> 201).

CPU per operation (bench/cpu.py): around every timed cell, utime + stime from /proc of the API
processes, the workers, the Postgres backends of the bench database, Redis, the simnet and the
bench process (the load generator), divided by the cell's successes. Redis is shared with other
users of the machine (an upper bound); a background cost (a poll loop) shows more per operation
when operations are slow. On a shared machine it is steadier than ops/s.

Method: one closed-loop load generator (``loadgen``): N asyncio tasks in the bench process, each
awaiting one request at a time, aiohttp client on uvloop, for a fixed duration after a warm-up (or
until a pool of pre-made invoices runs dry). The same generator drives every row, including the
ceilings, so ratios compare like with like. It runs in its own process, but on a 2-core machine it
shares the cores with the servers (it needs ~1 ms of CPU per request); ``wrk`` would load the
servers harder, but would measure the references differently from the wallet. Throughput counts
successes per second of wall time; percentiles are over successes; every failure is counted by kind
in the errors column, and a target measured on a cell with errors is marked missed.
"""
