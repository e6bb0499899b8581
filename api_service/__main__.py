"""`python -m api_service` serves the API; `python -m api_service seed` and `create-admin` manage users."""

from __future__ import annotations

import sys

from api_service.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
