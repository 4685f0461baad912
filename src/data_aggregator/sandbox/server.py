"""moto's server as a child process: ``python -m data_aggregator.sandbox.server [--host H] [--port P]``.

Running the emulator in its own process keeps its CPU work and its memory (it holds every object)
apart from the process under test, so a memory figure measured there is the pipeline's own, and on
two cores the emulator no longer competes for one interpreter lock with the handler.

moto's DynamoDB is not safe under concurrent requests: ``TransactWriteItems`` checks conditions and
writes without a lock and restores a deep copy of the whole table when it cancels, which can undo a
neighbour's writes. Real DynamoDB serialises conflicting writes per item, so this server serialises
all DynamoDB requests; S3 and SQS requests still run concurrently.

Two of moto's costs grow with the data and would dominate scenarios with thousands of files, so
:func:`speed_up_moto` replaces them with equivalents (measured with 2000 queued messages and 2000
claims): every SQS call scans the whole queue computing the time through datetime arithmetic twice
per message (0.7 s per ReceiveMessage, and every S3 PUT pays it too through its notification), and
every TransactWriteItems deep-copies the whole table once per item to be able to roll back (2 s and
1.4 GB per claim call).

The chosen port is printed as the first line on stdout (``PORT <n>``) so that the parent can ask for
port 0 and still learn the port without a race.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import os
import sys
import threading
import time
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


def speed_up_moto() -> None:
    """Cheaper equivalents for two of moto's hot spots (see the module docstring)."""
    import moto.dynamodb.models as dynamodb_models  # noqa: PLC0415 - optional dependency, child process only
    import moto.sqs.models as sqs_models  # noqa: PLC0415
    from moto.core import utils as moto_utils  # noqa: PLC0415
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    slow_unix_time = moto_utils.unix_time

    def unix_time(dt: Any = None) -> float:  # noqa: ANN401 - moto's own signature
        # The same value as moto's "naive UTC now minus the epoch", without building two datetimes.
        return time.time() if dt is None else float(slow_unix_time(dt))

    def unix_time_millis(dt: Any = None) -> float:  # noqa: ANN401 - moto's own signature
        return unix_time(dt) * 1000.0

    sqs_models.unix_time = unix_time  # type: ignore[attr-defined]
    sqs_models.unix_time_millis = unix_time_millis  # type: ignore[attr-defined]

    def snapshot(table: Table) -> Table:
        # Enough to roll back Put and Delete operations, which replace or remove whole items: a copy of
        # the item map (one level deeper for tables with a range key), sharing the unchanged items.
        copied = copy.copy(table)
        items = type(table.items)(dict)
        for hash_key, value in table.items.items():
            items[hash_key] = dict(value) if table.has_range_key else value
        copied.items = items
        return copied

    class TableSnapshots:
        """Stands in for the ``copy`` module inside moto's DynamoDB backend."""

        @staticmethod
        def deepcopy(value: object, memo: dict[int, object] | None = None) -> object:
            if isinstance(value, Table):
                return snapshot(value)
            return copy.deepcopy(value, memo)

        def __getattr__(self, name: str) -> object:
            return getattr(copy, name)

    dynamodb_models.copy = TableSnapshots()  # type: ignore[assignment, attr-defined]


def notifications_like_s3() -> None:
    """Give moto's S3 notifications the ``versionId`` and ``sequencer`` that S3's carry.

    S3 names the version in every event from a versioned bucket and gives each event a sequencer;
    moto sends neither, so against moto an object's identity fell back to its ETag alone, and a
    duplicate notification built the way S3 would send it (with the version) named another object.
    With this, both of our backends (moto and local-aws) describe an object as S3 does. Idempotent.
    """
    from moto.s3 import notifications  # noqa: PLC0415 - optional dependency

    original = notifications._get_s3_event
    if getattr(original, "like_s3", False):
        return
    counter = itertools.count(int(time.time() * 1000) << 16)
    lock = threading.Lock()

    def event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, list[dict[str, Any]]]:  # noqa: ANN401
        body = original(event_name, bucket, key, notification_id)
        with lock:
            sequencer = f"{next(counter):016X}"
        for record in body["Records"]:
            obj = record["s3"]["object"]
            if bucket.is_versioned and key.version_id:
                obj["versionId"] = key.version_id
            obj["sequencer"] = sequencer
        return body

    event.like_s3 = True  # type: ignore[attr-defined]
    notifications._get_s3_event = event


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
    speed_up_moto()
    notifications_like_s3()
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
