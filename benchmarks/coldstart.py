"""6. Cold start: the handler's import time and first invocation, as Lambda runs them from the zip.

Lambda's init phase imports the handler module from the unpacked deployment package, in a fresh
interpreter, from a read-only ``/var/task``: whatever bytecode the zip does not carry is compiled on
every cold start and cannot be cached. This benchmark reproduces that on the x86_64 build of the zip
(the same package as the arm64 one, for the machine it runs on):

* the zip is built with ``build.sh`` (or reused when newer than its inputs) and unpacked to a scratch
  folder that stands in for ``/var/task``;
* every measurement is a fresh ``python -I -S -B`` whose only third-party code is that folder: ``-I``
  drops the environment and the user site, ``-S`` every site-packages, and ``-B`` stops Python from
  writing ``__pycache__`` so that each run pays what a read-only filesystem makes it pay;
* the environment is the one the function has in Lambda (``LAMBDA_TASK_ROOT``, the function's name,
  memory and log group, region, credentials, the settings, active tracing with a trace header per
  invocation), so that libraries which behave differently inside Lambda (the X-Ray recorder does) take
  the branch they take there;
* the import is timed inside the child around ``import data_aggregator.app``, after the few stdlib
  modules the Lambda runtime itself has loaded by then (``json``, ``os``, ``time``);
* the first invocation is a real batch: small files uploaded to Landing in the project's emulator
  (moto's server in a child process, so requests cross a socket as they do in AWS), one SQS record per
  file, handled end to end (claims, GETs, both bundle PUTs, commit). A second batch of the same size in
  the same process is the warm figure; the difference is what the first invocation pays for being first
  (clients, endpoint resolution, service models, connections).

Baselines in the same run: a bare interpreter start (``python -I -S -B -c pass``), ``import boto3`` from
the same folder, and, when the zip carries bytecode, the same folder with every ``__pycache__``
removed (the package as it was built before it shipped bytecode). Variants take turns round by round
so that drift in the machine's load spreads over all of them.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import MB, Result, Scale, Table, Target
from benchmarks.world import ARCHIVE, DISTRIBUTION, ENV, MotoWorld, notification, provisioned_world, sqs_record

ROOT = Path(__file__).resolve().parents[1]
ZIP = ROOT / "dist" / "lambda-x86_64.zip"
# What the zip is made of: a newer file here means the zip on disk is stale.
ZIP_INPUTS = ("build.sh", "uv.lock", "pyproject.toml", "src/data_aggregator")

# The commit before the cold-start work: its zip, built by its own build.sh, is the same-run baseline.
BASELINE_COMMIT = "9a0ff0d"
BASELINE_ZIP = ROOT / "dist" / f"lambda-x86_64-{BASELINE_COMMIT}.zip"
TARGET_FRACTION = 0.5
AS_BUILT = "as built"
SOURCES_ONLY = "as built, no bytecode"
BASELINE = BASELINE_COMMIT

# Rounds per Scale.repeats: an import costs a second at most, and medians need more than three samples
# on a shared machine.
ROUNDS_PER_REPEAT = 5
FILES_PER_BATCH = 10
FILE_BYTES = 1_000

# Runs in the child. Kept free of anything but the stdlib modules Lambda's runtime has already imported.
CHILD = r"""
import json, os, sys, time

root, what, out = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, root)
figures = {}
if what == "boto3":
    started = time.perf_counter()
    import boto3
    figures["import_s"] = time.perf_counter() - started
    origin = boto3.__file__
else:
    started = time.perf_counter()
    import data_aggregator.app as app
    figures["import_s"] = time.perf_counter() - started
    origin = app.__file__
    figures["modules"] = len(sys.modules)
if not origin.startswith(root):
    raise SystemExit(f"imported from {origin}, not from the unpacked zip")

class Context:
    # The attributes Powertools and the handler read from Lambda's context object.
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
    log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
    log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]

    def __init__(self, request_id, timeout_s):
        self.aws_request_id = request_id
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)

if what == "invoke":
    events = json.load(sys.stdin)
    for index, event in enumerate(events):
        # Lambda sets a fresh trace header for each invocation; tracing is Active in the deployment.
        os.environ["_X_AMZN_TRACE_ID"] = "Root=1-67000000-%024x;Parent=%016x;Sampled=1" % (index + 1, index + 1)
        started = time.perf_counter()
        response = app.handler(event, Context("request-%d" % index, 900))
        figures["invoke_%d_s" % index] = time.perf_counter() - started
        figures["invoke_%d_failures" % index] = len(response["batchItemFailures"])
with open(out, "w") as stream:
    json.dump(figures, stream)
"""


@dataclass(frozen=True, slots=True)
class PackageSize:
    zipped: int
    unzipped: int
    files: int
    bytecode: int  # bytes of .pyc among the unzipped ones
    botocore_services: int


@dataclass(frozen=True, slots=True)
class Package:
    """One unpacked package to measure: ``invoke`` adds the invocation child to each round."""

    label: str
    root: Path
    invoke: bool


def run(scale: Scale) -> Result:
    result = Result(name="coldstart", title="6. Cold start from the Lambda zip", scale=scale.name)
    rounds = max(1, scale.repeats) * ROUNDS_PER_REPEAT if scale.name != "smoke" else 1
    built = ensure_zip()
    before = baseline_zip()
    with tempfile.TemporaryDirectory(prefix="coldstart-") as scratch:
        work = Path(scratch)
        sizes = {AS_BUILT: unpack(built, work / "task")}
        packages = [Package(AS_BUILT, work / "task", invoke=True)]
        if sizes[AS_BUILT].bytecode:
            plain = work / "task-sources-only"
            shutil.copytree(work / "task", plain, ignore=shutil.ignore_patterns("__pycache__"))
            packages.append(Package(SOURCES_ONLY, plain, invoke=False))
        if before is not None:
            sizes[BASELINE] = unpack(before, work / "task-baseline")
            packages.append(Package(BASELINE, work / "task-baseline", invoke=True))
        samples = measure_rounds(packages, work, rounds)
    report(result, samples, sizes, rounds)
    return result


def report(result: Result, samples: dict[str, list[float]], sizes: dict[str, PackageSize], rounds: int) -> None:
    def ms(name: str) -> float:
        return statistics.median(samples[name]) * 1000 if samples.get(name) else math.nan

    bare = ms("bare interpreter")
    rows: list[tuple[str | int | float, ...]] = [
        ("bare interpreter start (python -I -S -B -c pass)", "-", bare, 1.0, len(samples["bare interpreter"])),
        ("import boto3", AS_BUILT, ms("boto3 import"), ms("boto3 import") / bare, len(samples["boto3 import"])),
    ]
    for label in (AS_BUILT, SOURCES_ONLY, BASELINE):
        if samples.get(f"{label}: import"):
            value = ms(f"{label}: import")
            rows.append(("import data_aggregator.app", label, value, value / bare, len(samples[f"{label}: import"])))
    for label in (AS_BUILT, BASELINE):
        if not samples.get(f"{label}: first"):
            continue
        first, warm = ms(f"{label}: first"), ms(f"{label}: second")
        runs = len(samples[f"{label}: first"])
        rows += [
            (f"first invocation ({FILES_PER_BATCH} files)", label, first, first / bare, runs),
            (f"second invocation, warm ({FILES_PER_BATCH} files)", label, warm, warm / bare, runs),
            (
                "init + first invocation",
                label,
                ms(f"{label}: import") + first,
                (ms(f"{label}: import") + first) / bare,
                runs,
            ),
        ]
    result.tables.append(
        Table(
            title="Init and first invocation (fresh interpreter, only the unpacked x86_64 zip on sys.path)",
            headers=("measurement", "package", "median ms", "x bare interpreter", "runs"),
            rows=tuple(rows),
            notes=(
                f"{rounds} round(s), packages and baselines taking turns; medians; -B stands in for Lambda's "
                "read-only /var/task",
                f"{AS_BUILT}: this checkout's zip; {SOURCES_ONLY}: the same files without their bytecode; "
                f"{BASELINE}: the zip build.sh made at {BASELINE_COMMIT}, before the cold-start work",
                f"invocations run a real batch ({FILES_PER_BATCH} files of {FILE_BYTES:,} B, one SQS record each) "
                "against the emulator in a child process (moto's server): claims, GETs, both bundle PUTs and "
                "the commit cross a socket; the second batch runs in the same process, as on a warm start",
                "init + first invocation adds the medians: the time from a cold start to the first batch's reply",
            ),
        )
    )
    size_rows: list[tuple[str | int | float, ...]] = []
    for label, size in sizes.items():
        size_rows.append(
            (label, size.zipped / MB, size.unzipped / MB, size.files, size.bytecode / MB, size.botocore_services)
        )
    result.tables.append(
        Table(
            title="Deployment package (x86_64; the arm64 zip differs only in its native extensions)",
            headers=("package", "zip MB", "unzipped MB", "files", "bytecode MB", "botocore service models"),
            rows=tuple(size_rows),
        )
    )

    handler = ms(f"{AS_BUILT}: import")
    result.figures |= {
        "bare_ms": bare,
        "boto3_import_ms": ms("boto3 import"),
        "import_ms": handler,
        "first_invocation_ms": ms(f"{AS_BUILT}: first"),
        "second_invocation_ms": ms(f"{AS_BUILT}: second"),
        "zip_bytes": sizes[AS_BUILT].zipped,
        "unzipped_bytes": sizes[AS_BUILT].unzipped,
        "modules_imported": statistics.median(samples["modules"]),
    }
    if samples.get(f"{SOURCES_ONLY}: import"):
        result.figures["import_sources_only_ms"] = ms(f"{SOURCES_ONLY}: import")
    failures = int(sum(samples["failures"]))
    invocations = 2 * sum(len(samples[f"{label}: first"]) for label in (AS_BUILT, BASELINE))
    result.targets.append(
        Target(
            "every measured invocation bundled its batch",
            failures == 0,
            f"{failures} batch item failure(s) over {invocations} invocation(s)",
        )
    )
    if samples.get(f"{BASELINE}: import"):
        before = ms(f"{BASELINE}: import")
        first, first_before = ms(f"{AS_BUILT}: first"), ms(f"{BASELINE}: first")
        result.figures |= {
            "baseline_import_ms": before,
            "baseline_first_invocation_ms": first_before,
            "import_fraction_of_baseline": handler / before,
        }
        result.targets.append(
            Target(
                f"handler import at most {TARGET_FRACTION:.0%} of the {BASELINE_COMMIT} package's, same run",
                handler <= TARGET_FRACTION * before,
                f"{handler:.0f} ms against {before:.0f} ms: {handler / before:.0%}",
            )
        )
        result.targets.append(
            Target(
                "no cost moved into the first invocation: it and init + first invocation below the baseline's",
                first < first_before and handler + first < before + first_before,
                f"{handler + first:.0f} ms against {before + first_before:.0f} ms "
                f"(first invocation {first:.0f} ms against {first_before:.0f} ms)",
            )
        )


def ensure_zip() -> Path:
    """The x86_64 zip, rebuilt when any of its inputs is newer than it."""
    newest = max(_mtimes(ROOT / name) for name in ZIP_INPUTS)
    if ZIP.exists() and ZIP.stat().st_mtime >= newest:
        return ZIP
    subprocess.run(  # noqa: S603 - the project's own build script
        [_tool("bash"), str(ROOT / "build.sh"), "--arch", "x86_64", "--output", str(ZIP)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return ZIP


def _tool(name: str) -> str:
    """A program from PATH, by its full path; FileNotFoundError when missing, as subprocess would raise."""
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(name)
    return found


def _mtimes(path: Path) -> float:
    if path.is_dir():
        # Bytecode caches are rewritten by every test run and never enter the zip.
        files = (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        return max((p.stat().st_mtime for p in files), default=0.0)
    return path.stat().st_mtime if path.exists() else 0.0


def baseline_zip() -> Path | None:
    """The zip as the baseline commit built it: its own build.sh, lock and sources, built once and kept.

    None when the checkout has no git history to take it from (a source tarball, say).
    """
    if BASELINE_ZIP.exists():
        return BASELINE_ZIP
    paths = ["build.sh", "pyproject.toml", "uv.lock", ".python-version", "src/data_aggregator"]
    try:
        archive = subprocess.run(  # noqa: S603 - git on this repository
            [_tool("git"), "-C", str(ROOT), "archive", "--format=tar", BASELINE_COMMIT, *paths],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    if archive.returncode != 0:
        return None
    with tempfile.TemporaryDirectory(prefix="coldstart-baseline-") as scratch:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(scratch, filter="data")
        BASELINE_ZIP.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(  # noqa: S603 - the baseline commit's own build script
            [_tool("bash"), "build.sh", "--arch", "x86_64", "--output", str(BASELINE_ZIP)],
            cwd=scratch,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return BASELINE_ZIP


def unpack(package: Path, target: Path) -> PackageSize:
    with zipfile.ZipFile(package) as archive:
        infos = archive.infolist()
        archive.extractall(target)  # noqa: S202 - the zip build.sh just wrote
    services = target / "botocore" / "data"
    return PackageSize(
        zipped=package.stat().st_size,
        unzipped=sum(i.file_size for i in infos),
        files=len(infos),
        bytecode=sum(i.file_size for i in infos if i.filename.endswith(".pyc")),
        botocore_services=sum(1 for p in services.iterdir() if p.is_dir()) if services.is_dir() else 0,
    )


def lambda_environment(task_root: Path, home: Path, endpoint: Mapping[str, str]) -> dict[str, str]:
    """What the Lambda python3.13 runtime puts in the function's environment, plus its settings."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": "data_aggregator.app.handler",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": "data-aggregator",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/data-aggregator",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
        # Nothing listens there: the X-Ray emitter's UDP datagrams are sent and dropped, as cheaply as in Lambda.
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "POWERTOOLS_SERVICE_NAME": "data-aggregator",
        "POWERTOOLS_METRICS_NAMESPACE": "DataAggregator",
        "ARCHIVE_BUCKET_NAME": ARCHIVE,
        "DISTRIBUTION_BUCKET_NAME": DISTRIBUTION,
        "IDEMPOTENCY_TABLE_NAME": ENV["IDEMPOTENCY_TABLE_NAME"],
        "AWS_SESSION_TOKEN": "testing",
        **endpoint,
    }


def measure_rounds(packages: list[Package], scratch: Path, rounds: int) -> dict[str, list[float]]:
    """Every variant once per round, in turn; the emulator lives for the whole measurement."""
    samples: dict[str, list[float]] = defaultdict(list)
    with emulated_world() as (world, endpoint):
        for _ in range(rounds):
            env = lambda_environment(packages[0].root, scratch, endpoint)
            started = time.perf_counter()
            _spawn(["-c", "pass"], env, scratch)
            samples["bare interpreter"].append(time.perf_counter() - started)
            samples["boto3 import"].append(child(packages[0].root, "boto3", env, scratch)["import_s"])
            for package in packages:
                env = lambda_environment(package.root, scratch, endpoint)
                imported = child(package.root, "import", env, scratch)
                samples[f"{package.label}: import"].append(imported["import_s"])
                if package.label == AS_BUILT:
                    samples["modules"].append(imported["modules"])
                if not package.invoke:
                    continue
                events = [batch_event(world) for _ in range(2)]
                invoked = child(package.root, "invoke", env, scratch, stdin=json.dumps(events))
                samples[f"{package.label}: import"].append(invoked["import_s"])
                samples[f"{package.label}: first"].append(invoked["invoke_0_s"])
                samples[f"{package.label}: second"].append(invoked["invoke_1_s"])
                samples["failures"].append(invoked["invoke_0_failures"] + invoked["invoke_1_failures"])
    return samples


def batch_event(world: MotoWorld) -> dict[str, Any]:
    """An SQS batch of fresh objects, so that every invocation claims and bundles new files."""
    prefix = f"coldstart/{uuid.uuid4().hex}"
    records = [world.upload(f"{prefix}/{i:03d}.json", b"{}\n".ljust(FILE_BYTES, b" ")) for i in range(FILES_PER_BATCH)]
    return {"Records": [sqs_record(notification(record)) for record in records]}


@contextmanager
def emulated_world() -> Iterator[tuple[MotoWorld, dict[str, str]]]:
    """Landing, Archive, Distribution and the claims table in the emulator, and the variables that reach it."""
    from data_aggregator.sandbox.emulator import EmulatorProcess

    with EmulatorProcess() as emulator:
        clients = emulator.clients()
        yield provisioned_world(clients.s3, clients.dynamodb), emulator.environment()


def child(task_root: Path, what: str, env: dict[str, str], scratch: Path, stdin: str = "") -> dict[str, Any]:
    out = scratch / f"figures-{uuid.uuid4().hex}.json"
    _spawn(["-c", CHILD, str(task_root), what, str(out)], env, scratch, stdin=stdin)
    figures: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return figures


def _spawn(args: list[str], env: dict[str, str], cwd: Path, stdin: str = "") -> None:
    """This interpreter, isolated; the handler's logs and metrics (stdout) are discarded."""
    completed = subprocess.run(  # noqa: S603 - this interpreter and the script above
        [sys.executable, "-I", "-S", "-B", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"cold-start child failed ({completed.returncode}): {completed.stderr[-2000:]}")


def compare(zips: Mapping[str, Path], rounds: int) -> Table:
    """Two or more zips side by side, in the same rounds: how the figures for one change were taken."""
    with tempfile.TemporaryDirectory(prefix="coldstart-compare-") as scratch:
        work = Path(scratch)
        packages = []
        for index, (label, package) in enumerate(zips.items()):
            unpack(package, work / f"task-{index}")
            packages.append(Package(label, work / f"task-{index}", invoke=True))
        samples = measure_rounds(packages, work, rounds)

    def ms(name: str) -> float:
        return statistics.median(samples[name]) * 1000

    rows = tuple(
        (
            label,
            ms(f"{label}: import"),
            ms(f"{label}: first"),
            ms(f"{label}: second"),
            ms(f"{label}: import") + ms(f"{label}: first"),
        )
        for label in zips
    )
    return Table(
        title=f"Same rounds, {rounds} of them (bare interpreter {ms('bare interpreter'):.1f} ms)",
        headers=("zip", "import ms", "first invocation ms", "second invocation ms", "init + first ms"),
        rows=rows,
        notes=(f"{int(sum(samples['failures']))} batch item failure(s)",),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.coldstart",
        description="Compare the cold start of several x86_64 zips in the same rounds (LABEL=PATH ...).",
    )
    parser.add_argument("zips", nargs="+", metavar="LABEL=ZIP")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    zips = {label: Path(path) for label, _, path in (item.partition("=") for item in args.zips)}
    print(compare(zips, max(1, args.rounds)).render())


if __name__ == "__main__":
    main()
