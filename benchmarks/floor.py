"""6. CPU against the floor: the handler's CPU-seconds next to the least work any correct bundler must do.

The floor is one process that GETs every object of the batch from the same emulator, computes each
object's SHA-256, compresses the concatenated stream with ISA-L level 1 and hashes the compressed
output once. Any implementation that publishes a verified bundle of these objects does at least that;
everything the handler spends above it (tar framing, the manifest, thread hand-offs, claims, the two
uploads, Powertools) is overhead, and this benchmark says how much.

Both run in fresh child interpreters against one emulator in a third process (``EmulatorProcess``),
so neither pays for moto serving the requests, and each child reports its own CPU time
(``getrusage(RUSAGE_SELF)``: every thread of the process) for the measured work only. Imports and
client construction are excluded from both, as in a warm Lambda: the handler child first serves an
``s3:TestEvent`` (which builds its clients and touches nothing), then the measured batch. Peak RSS is
the child's ``VmHWM`` (PITFALLS, "Measuring"). The two take turns, round by round, and the ratio is
the median of the per-round ratios, so a busy neighbour slows both sides of a ratio alike.

The corpus: JSON-lines telemetry with one file in ten incompressible (random bytes), 400 files,
100 MB, one SQS message per object, as one batch of the event source mapping.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from benchmarks import corpus
from benchmarks.common import GB, MB, Result, Scale, Table, Target
from benchmarks.world import ARCHIVE, DISTRIBUTION, ENV, LANDING, MotoWorld, notification, sqs_record

if TYPE_CHECKING:
    from data_aggregator.sandbox.emulator import Clients

CPU_RATIO_LIMIT = 1.3
RSS_LIMIT_BYTES = 120 * MB
BINARY_EVERY = 10  # one file in ten is incompressible
ROOT = Path(__file__).resolve().parents[1]
KINDS = ("floor", "handler")


def run(scale: Scale) -> Result:
    from data_aggregator.sandbox.emulator import EmulatorProcess

    result = Result(name="floor", title="6. CPU against the floor", scale=scale.name)
    files = corpus.plan(files=scale.floor_files, total_bytes=scale.floor_bytes, binary_every=BINARY_EVERY)
    with EmulatorProcess() as emulator:
        clients = emulator.clients()
        world = prepare(clients)
        records = upload(world, files)
        env = {**os.environ, **ENV, **emulator.environment()}
        reports: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for _ in range(max(1, scale.repeats)):
            for kind in KINDS:
                reset(world, clients)
                report = child(kind, records, env)
                if kind == "handler":
                    report.update(inspect_bundle(clients))
                reports[kind].append(report)
    summarise(result, reports, corpus.total_bytes(files), len(files))
    return result


def prepare(clients: Clients) -> MotoWorld:
    """Landing and Archive versioned, as deployed; Distribution plain; a claims table."""
    for bucket in (LANDING, ARCHIVE, DISTRIBUTION):
        clients.s3.create_bucket(Bucket=bucket)
    for bucket in (LANDING, ARCHIVE):
        clients.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return MotoWorld(s3=clients.s3, dynamodb=clients.dynamodb)


def upload(world: MotoWorld, files: list[corpus.CorpusFile]) -> list[dict[str, Any]]:
    """PUT the corpus into Landing; returns the S3 notification record of each object, in order."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda f: world.upload(f.key, f.data()), files))


def reset(world: MotoWorld, clients: Clients) -> None:
    """A fresh claims table and empty output buckets: every run bundles the same new batch."""
    world.reset_table()
    for bucket in (ARCHIVE, DISTRIBUTION):
        page = clients.s3.list_object_versions(Bucket=bucket)
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if doomed:
            clients.s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})  # type: ignore[typeddict-item]


def inspect_bundle(clients: Clients) -> dict[str, Any]:
    """The run wrote one bundle to both buckets, and its bytes match its ``content-sha256``."""
    listed = clients.s3.list_objects_v2(Bucket=ARCHIVE).get("Contents", [])
    if len(listed) != 1:
        raise RuntimeError(f"expected one bundle in Archive, found {len(listed)}")
    key = listed[0]["Key"]
    clients.s3.head_object(Bucket=DISTRIBUTION, Key=key)
    response = clients.s3.get_object(Bucket=ARCHIVE, Key=key)
    data = response["Body"].read()
    if hashlib.sha256(data).hexdigest() != response["Metadata"].get("content-sha256"):
        raise RuntimeError(f"bundle {key} does not match its content-sha256")
    return {"output_bytes": len(data)}


def child(kind: str, records: list[dict[str, Any]], env: dict[str, str]) -> dict[str, Any]:
    """Run ``kind`` in a fresh interpreter (the spec on stdin) and return its JSON report."""
    completed = subprocess.run(  # noqa: S603 - our own module, our own interpreter
        [sys.executable, "-m", "benchmarks.floor", "--child", kind],
        cwd=ROOT,
        input=json.dumps(records),
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env=env,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({completed.returncode}): {completed.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


def summarise(result: Result, reports: dict[str, list[dict[str, Any]]], input_bytes: int, files: int) -> None:
    def median(kind: str, field: str) -> float:
        return statistics.median(float(r[field]) for r in reports[kind])

    ratios = [h["cpu_seconds"] / f["cpu_seconds"] for f, h in zip(reports["floor"], reports["handler"], strict=True)]
    cpu_ratio = statistics.median(ratios)
    rows: list[tuple[str | int | float, ...]] = []
    for kind, label in (
        ("floor", "floor: GET + SHA-256 per object, ISA-L level 1 over the stream, SHA-256 of the output"),
        ("handler", "data_aggregator.app.handler, one batch (claims, bundle, 2 PUTs, commit)"),
    ):
        cpu = median(kind, "cpu_seconds")
        walls = [float(r["wall_seconds"]) for r in reports[kind]]
        rows.append(
            (
                label,
                cpu,
                cpu / (input_bytes / GB),
                cpu_ratio if kind == "handler" else 1.0,
                median(kind, "peak_bytes") / MB,
                input_bytes / median(kind, "output_bytes"),
                f"{min(walls):.2f}-{max(walls):.2f}",
            )
        )
        result.figures[f"{kind}_cpu_s"] = cpu
        result.figures[f"{kind}_cpu_s_per_gb"] = cpu / (input_bytes / GB)
        result.figures[f"{kind}_peak_mb"] = median(kind, "peak_bytes") / MB
        result.figures[f"{kind}_compression_ratio"] = input_bytes / median(kind, "output_bytes")
    result.figures["cpu_ratio"] = cpu_ratio
    repeats = len(ratios)
    result.tables.append(
        Table(
            title=f"Handler CPU against the floor: {files:,} files, {input_bytes / MB:,.0f} MB in one batch",
            headers=("variant", "CPU s", "CPU s/GB", "x floor", "peak RSS MB", "ratio", "wall s (min-max)"),
            rows=tuple(rows),
            notes=(
                f"median of {repeats} run(s), taking turns, each in a fresh child process; CPU is the child's "
                "user + system time (all threads) for the measured work only: imports and client construction "
                "excluded from both, as in a warm Lambda",
                "x floor is the median of the per-round ratios; the emulator runs in a process of its own, "
                "so its CPU counts for neither",
                "peak RSS is the child's VmHWM (interpreter and imports included); ratio is input bytes / "
                "output bytes (the handler's output is the published .tar.gz, tar framing and manifest included)",
                f"corpus: JSON lines with one file in {BINARY_EVERY} random bytes; shipped settings",
            ),
        )
    )
    handler_peak = result.figures["handler_peak_mb"] * MB
    result.targets.extend(
        [
            Target(
                f"handler CPU <= {CPU_RATIO_LIMIT}x the floor",
                cpu_ratio <= CPU_RATIO_LIMIT,
                f"{cpu_ratio:.2f}x ({result.figures['handler_cpu_s']:.2f} vs {result.figures['floor_cpu_s']:.2f} "
                f"CPU s; per-round {', '.join(f'{r:.2f}' for r in ratios)})",
            ),
            Target(
                f"handler peak RSS <= {RSS_LIMIT_BYTES / MB:.0f} MB for the batch",
                handler_peak <= RSS_LIMIT_BYTES,
                f"{handler_peak / MB:.0f} MB (floor process: {result.figures['floor_peak_mb']:.0f} MB)",
            ),
            Target(
                "handler compression ratio >= the floor's",
                result.figures["handler_compression_ratio"] >= result.figures["floor_compression_ratio"],
                f"{result.figures['handler_compression_ratio']:.4f} vs {result.figures['floor_compression_ratio']:.4f}",
            ),
        ]
    )


# ---------------------------------------------------------------------------------------- the child


def vm_hwm_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not in /proc/self/status (Linux only)")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def system_seconds() -> float:
    """Kernel time alone: socket reads, thread switches, page faults and /tmp writes show up here."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def floor_main(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The least work: GET, SHA-256 per object, ISA-L level 1 over the stream, SHA-256 of the output."""
    import boto3
    from isal import isal_zlib

    s3 = boto3.session.Session().client("s3")
    requests = []
    for record in records:
        obj = record["s3"]["object"]
        request = {"Bucket": LANDING, "Key": unquote_plus(obj["key"])}
        if "versionId" in obj:
            request["VersionId"] = obj["versionId"]
        requests.append(request)

    cpu0, sys0, wall0 = cpu_seconds(), system_seconds(), time.perf_counter()
    compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)  # a gzip stream
    bundle_digest = hashlib.sha256()
    input_bytes = output_bytes = 0
    for request in requests:
        data = s3.get_object(**request)["Body"].read()  # type: ignore[arg-type]
        hashlib.sha256(data).digest()
        input_bytes += len(data)
        out = compressor.compress(data)
        bundle_digest.update(out)
        output_bytes += len(out)
    out = compressor.flush()
    bundle_digest.update(out)
    output_bytes += len(out)
    bundle_digest.hexdigest()
    return {
        "cpu_seconds": cpu_seconds() - cpu0,
        "system_seconds": system_seconds() - sys0,
        "wall_seconds": time.perf_counter() - wall0,
        "peak_bytes": vm_hwm_bytes(),
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
    }


def handler_main(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The real handler: a warm-up ``s3:TestEvent`` (clients built, nothing written), then the batch."""
    from data_aggregator import app
    from data_aggregator.sandbox.context import LambdaContext

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext(function_name="data-aggregator", timeout_seconds=300, memory_limit_in_mb=1769)
        with redirect_stdout(io.StringIO()):  # EMF metrics and any log line
            response: dict[str, Any] = app.handler(event, context)
        return response

    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": LANDING})
    if invoke({"Records": [sqs_record(test_event)]})["batchItemFailures"]:
        raise RuntimeError("the warm-up test event failed")
    event = {"Records": [sqs_record(notification(record)) for record in records]}
    before = vm_hwm_bytes()

    cpu0, sys0, wall0 = cpu_seconds(), system_seconds(), time.perf_counter()
    response = invoke(event)
    cpu, system, wall = cpu_seconds() - cpu0, system_seconds() - sys0, time.perf_counter() - wall0

    if response["batchItemFailures"]:
        raise RuntimeError(f"the handler failed {len(response['batchItemFailures'])} messages")
    return {
        "cpu_seconds": cpu,
        "system_seconds": system,
        "wall_seconds": wall,
        "peak_bytes": vm_hwm_bytes(),
        "peak_before_bytes": before,
        "input_bytes": sum(int(r["s3"]["object"]["size"]) for r in records),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="floor benchmark child (run by benchmarks.floor)")
    parser.add_argument("--child", required=True, choices=KINDS)
    kind = parser.parse_args().child
    spec: list[dict[str, Any]] = json.loads(sys.stdin.read())
    print(json.dumps(floor_main(spec) if kind == "floor" else handler_main(spec)))
