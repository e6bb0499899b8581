"""lnd_simnet: a stand-in for LND that speaks LND's own gRPC API (DESIGN §7).

    python -m lnd_simnet serve --dir .run/simnet [--alice-port 10009 --bob-port 10010]
    python -m lnd_simnet invoice --node bob --amt 1000 [--memo M]
    python -m lnd_simnet pay --node alice <bolt11> [--fee-limit-sat N] [--timeout S]
    python -m lnd_simnet info|balance --node alice
    python -m lnd_simnet release <payment_hash> --outcome succeed|fail [--reason no_route]
    python -m lnd_simnet configure --node bob [--fail no_route] [--hold] [--delay-ms N]

Memo markers in the payee's invoice memo steer a payment to it: ``simnet:no_route``,
``simnet:insufficient_balance``, ``simnet:timeout``, ``simnet:fail=<reason>``, ``simnet:hold``
(stays IN_FLIGHT until ``release``) and ``simnet:delay=MS``.
"""
