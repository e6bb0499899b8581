"""Developer tooling behind the Makefile: finding or starting Postgres and Redis, and `make run`.

Nothing here is imported by the services themselves; it only prepares a machine for them.
`devtools.services` decides where the databases come from, `devtools.private_postgres` and
`devtools.private_redis` start private instances under `.run/`, and `devtools.run` supervises
the processes of `make run`.
"""
