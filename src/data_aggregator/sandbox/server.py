"""moto's server as a child process: ``python -m data_aggregator.sandbox.server [--host H] [--port P]``.

Running the emulator in its own process keeps its CPU work and its memory (it holds every object)
apart from the process under test, so a memory figure measured there is the pipeline's own, and on
two cores the emulator no longer competes for one interpreter lock with the handler.

moto's DynamoDB is not safe under concurrent requests: ``TransactWriteItems`` checks conditions and
writes without a lock and restores a deep copy of the whole table when it cancels, which can undo a
neighbour's writes. Real DynamoDB serialises conflicting writes per item, so this server serialises
all DynamoDB requests; S3 and SQS requests still run concurrently.

The chosen port is printed as the first line on stdout (``PORT <n>``) so that the parent can ask for
port 0 and still learn the port without a race.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PORT_LINE_PREFIX = "PORT "


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, everything else passes straight through."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            with self._lock:
                # Consume the response inside the lock: the handler may still be working lazily.
                return list(self._app(environ, start_response))
        return self._app(environ, start_response)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(prog="python -m data_aggregator.sandbox.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - optional dependency, child process only
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = SerialisedDynamoDB(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    sys.stdout.write(f"{PORT_LINE_PREFIX}{server.server_port}\n")
    sys.stdout.flush()
    # Nobody reads stdout after the port line: point it at /dev/null so a stray print cannot block.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    server.serve_forever()


if __name__ == "__main__":
    main()
