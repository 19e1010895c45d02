"""The server under test, in its own process: the product service plus the bench-only echo RPC.

Prints `PORT <n>` on stdout once serving; stops gracefully when stdin closes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from auditlog.app import create_service
from auditlog.config import Config
from bench.echo import echo_handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--max-workers", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = Config(
        database_url=args.database_url, data_dir=args.data_dir, grpc_host="127.0.0.1", grpc_port=0
    )
    service = create_service(config, database_url=args.database_url, max_workers=args.max_workers)
    # Generic handlers are looked up per call, so adding one after start serves it at once.
    service.server.add_generic_rpc_handlers((echo_handler(),))
    print(f"PORT {service.port}", flush=True)
    sys.stdin.read()  # until the harness closes our stdin
    service.stop(grace=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
