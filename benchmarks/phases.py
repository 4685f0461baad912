"""9. Where one large batch's time goes, per backend, on an idle and on a loaded machine.

One batch of 400 files (100 MB, the floor benchmark's corpus) through ``Aggregator.run`` as the handler
composes it, with all the time it wants (900 s): the report's ``phase_seconds`` split its wall time
into claims, bundling (GET, hash, tar, gzip, spool: one overlapped pipeline), the intent, the two
uploads, the commit and the release. Three backends:

* **moto, in this process** - how the demo ran before: the emulator's server threads share this
  interpreter (and its lock) with the handler, and moto copies the claims table for every transaction;
* **moto, own process** - how the demo runs now (``sandbox.server``: serialised DynamoDB, the table
  copy replaced by a snapshot of its item map);
* **local-aws** - LocalStack's S3 with Amazon DynamoDB Local.

Each runs once on the idle machine and once beside two CPU-bound processes (the "slow day" of the
issue: both cores busy with other work). Wall seconds, not CPU: they are what the guard spends.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from unittest import mock

from benchmarks import corpus
from benchmarks.common import LOAD_PROCESSES, MB, Result, Scale, Table, Target, busy_neighbours
from benchmarks.world import ENV, MotoWorld, notification, provisioned_world

if TYPE_CHECKING:
    from data_aggregator.sandbox.backends import Backend

PHASES = ("claim", "recover", "bundle", "intent", "archive", "distribution", "commit", "release")
BINARY_EVERY = 10


def backends(smoke: bool) -> list[tuple[str, Any]]:
    """(label, factory) of every backend to measure; local-aws only where it is installed."""
    from data_aggregator.sandbox.emulator import Emulator, EmulatorProcess, EmulatorUnavailableError
    from data_aggregator.sandbox.local_aws import LocalAws, LocalAwsTools

    found: list[tuple[str, Any]] = [("moto, in this process", Emulator), ("moto, own process", EmulatorProcess)]
    if smoke:
        return found[1:]
    try:
        LocalAwsTools.locate()
    except EmulatorUnavailableError:
        return found
    return [*found, ("local-aws", LocalAws)]


def run(scale: Scale) -> Result:
    result = Result(name="phases", title="9. Where a large batch's time goes, per backend", scale=scale.name)
    files = corpus.plan(files=scale.floor_files, total_bytes=scale.floor_bytes, binary_every=BINARY_EVERY)
    smoke = scale.name == "smoke"
    rows: list[tuple[str | int | float, ...]] = []
    for label, factory in backends(smoke):
        for loaded in (False,) if smoke else (False, True):
            with factory() as backend:
                report = measure(backend, files, loaded=loaded)
            phases = report["phase_seconds"]
            where = f"{label}, {'loaded' if loaded else 'idle'}"
            rows.append(
                (
                    where,
                    *(round(phases.get(name, 0.0), 2) for name in PHASES),
                    round(report["wall_seconds"], 2),
                    report["files"],
                )
            )
            key = where.replace(", ", "_").replace(" ", "_")
            result.figures[f"{key}_wall_s"] = report["wall_seconds"]
            result.figures[f"{key}_claim_store_s"] = sum(phases.get(n, 0.0) for n in ("claim", "intent", "commit"))
    result.tables.append(
        Table(
            title=f"One batch of {len(files)} files, {corpus.total_bytes(files) / MB:,.0f} MB, wall seconds by step",
            headers=("backend, machine", *PHASES, "total", "files"),
            rows=tuple(rows),
            notes=(
                "one run each, Aggregator.run as the handler composes it, with 900 s to spend; "
                "bundle = GET, hash, tar, gzip and spool, overlapped",
                f"loaded: {LOAD_PROCESSES} CPU-bound processes beside it on the 2-core machine",
                "claim, intent and commit are the claim store's (four transactions each for 400 files)",
            ),
        )
    )
    worst = max(rows, key=lambda row: float(row[-2]))
    result.targets.append(
        Target(
            "the whole batch is bundled on every backend",
            all(row[-1] == len(files) for row in rows),
            f"slowest: {worst[0]}, {worst[-2]} s",
        )
    )
    return result


def measure(backend: Backend, files: list[corpus.CorpusFile], *, loaded: bool) -> dict[str, Any]:
    """Upload the corpus to a fresh world on ``backend`` and run one batch over it."""
    from data_aggregator import app
    from data_aggregator.clients import make_clients
    from data_aggregator.config import Settings
    from data_aggregator.core import Deadline, TimeoutGuard, bound_by
    from data_aggregator.models import InboundMessage

    clients = backend.clients()
    world = provisioned_world(clients.s3, clients.dynamodb)
    records = _upload(world, files)
    env = {**ENV, **backend.environment()}
    with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(io.StringIO()):
        settings = Settings.from_env()
        aggregator = app.build_aggregator(settings, make_clients(max_pool_connections=settings.fetch_concurrency + 8))
        messages = [InboundMessage(message_id=str(i), body=notification(r)) for i, r in enumerate(records)]
        started = time.monotonic()

        def remaining() -> float:
            return 900.0 - (time.monotonic() - started)

        guard = TimeoutGuard(remaining, reserve_seconds=10.0, bytes_per_second=settings.guard_bytes_per_second)
        with busy_neighbours(LOAD_PROCESSES) if loaded else contextlib.nullcontext():
            started = time.monotonic()
            with bound_by(Deadline(remaining, reserve_seconds=10.0)):
                report = aggregator.run(messages, guard=guard, owner=uuid.uuid4().hex, lease_seconds=960)
            wall = time.monotonic() - started
    if report.failures:
        raise RuntimeError(f"{len(report.failures)} messages failed: {next(iter(report.failures.values()))}")
    return {"phase_seconds": dict(report.phase_seconds), "wall_seconds": wall, "files": report.files_bundled}


def _upload(world: MotoWorld, files: list[corpus.CorpusFile]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda f: world.upload(f.key, f.data()), files))
