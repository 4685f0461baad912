"""The ``data-aggregator`` console script: demo, replay, verify, consume, dlq and cost.

Subcommand modules are imported only when their subcommand runs, so ``verify`` works on a host that
lacks the demo's optional dependencies, and nothing here is ever on the Lambda function's path.

Exit codes, the same for every subcommand (``EXIT_CODES`` is what ``--help`` prints): 0 success,
1 a bad bundle or a failed check, 2 bad usage or configuration (missing or unreadable credentials
included), 3 pending (Glacier restores), 130 interrupted. No user mistake ends in a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from data_aggregator.ops.awserrors import is_configuration_error

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

    from data_aggregator.ops.bundles import ExpansionLimits
    from data_aggregator.ops.consume import Consumer
    from data_aggregator.ops.dlq import DeadLetterQueue
    from data_aggregator.sandbox.backends import Backend
    from data_aggregator.sandbox.demo import DemoOptions
    from data_aggregator.sandbox.demo_report import DemoReport
    from data_aggregator.sandbox.provision import Environment

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "data-aggregator"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PENDING = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_CODES = f"""exit codes (every subcommand):
  {EXIT_OK}    success
  {EXIT_FAILED}    a bad bundle or a failed check (verify, consume, replay, demo, dlq), or an emulator
       that did not start (demo)
  {EXIT_USAGE}    bad usage or configuration, including missing or unreadable credentials
  {EXIT_PENDING}    pending: Glacier restores still running (replay)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)"""


class UsageError(Exception):
    """A command line that cannot work; reported in one line with exit code 2."""


def _s3_client(args: argparse.Namespace) -> S3Client:
    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    config = Config(retries={"mode": "standard", "max_attempts": 8})
    return session.client("s3", endpoint_url=args.endpoint_url, config=config)


def _add_aws_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS connection (defaults: the standard AWS_* environment)")
    group.add_argument("--profile", help="named profile from the shared AWS config")
    group.add_argument("--region", help="AWS region")
    group.add_argument("--endpoint-url", help="S3 endpoint (AWS_ENDPOINT_URL also works)")


def _env_default(name: str, fallback: str | None = None) -> str | None:
    return os.environ.get(name) or fallback


def _number_type[N: (int, float)](parse: Callable[[str], N], kind: str, *, positive: bool) -> Callable[[str], N]:
    """An argparse ``type`` that names what is wrong with the value in one line (never a traceback)."""

    def convert(text: str) -> N:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    return convert


_positive_float = _number_type(float, "a number", positive=True)
_positive_int = _number_type(int, "an integer", positive=True)
_non_negative_int = _number_type(int, "an integer", positive=False)


# -- demo ------------------------------------------------------------------------------------------


def _demo_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on an embedded AWS emulator and report",
        description="Upload synthetic files to an emulated Landing bucket, run the real handler behind an "
        "emulated SQS event source mapping, consume and verify every bundle, and report loss, duplicates, "
        "DLQ depth and latency. Exits 1 if any file was lost or any check failed.",
    )
    p.add_argument("--rate", type=_positive_float, default=10.0, help="files per second (default 10)")
    p.add_argument("--count", type=_non_negative_int, help="files to upload (default 900 unless --duration)")
    p.add_argument("--duration", type=_positive_float, help="seconds to keep uploading")
    p.add_argument("--batch-size", type=int, default=100, help="ESM batch size (default 100)")
    p.add_argument("--window", type=float, default=5.0, help="ESM batching window in seconds (default 5)")
    p.add_argument("--function-timeout", type=float, default=15.0, help="emulated Lambda timeout (default 15 s)")
    p.add_argument(
        "--claim-lease",
        type=int,
        default=45,
        help="CLAIM_LEASE_SECONDS (default 45; the handler extends a lease shorter than timeout + 30 s)",
    )
    p.add_argument(
        "--visibility-timeout", type=int, default=50, help="queue visibility timeout, above the lease (default 50 s)"
    )
    p.add_argument("--max-receive-count", type=int, default=2, help="receives before redrive to the DLQ (default 2)")
    p.add_argument("--pollers", type=int, default=1, help="concurrent ESM pollers (default 1)")
    p.add_argument("--poison", type=_non_negative_int, default=2, help="malformed messages to inject (default 2)")
    p.add_argument(
        "--duplicates",
        type=_non_negative_int,
        default=6,
        help="duplicate notifications to inject (default 6)",
    )
    p.add_argument("--large-every", type=_non_negative_int, default=50, help="one large file in N (0: none)")
    p.add_argument("--seed", type=int, default=1, help="seed for the synthetic content")
    p.add_argument(
        "--stall-timeout",
        type=_positive_float,
        help="give up waiting once nothing has moved for this many seconds (default: two visibility timeouts "
        "plus a function timeout and a window, at least 120)",
    )
    p.add_argument(
        "--drain-timeout",
        type=_positive_float,
        help="also give up this many seconds after the last upload, however much still moves (default: no limit)",
    )
    p.add_argument("--workdir", type=Path, help="keep logs and extracted files here")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temporary work directory")
    p.add_argument(
        "--keep",
        action="store_true",
        help="after the report, keep the emulator running (with the work directory) for verify, replay, "
        "consume and dlq in another shell; Ctrl-C stops it",
    )
    p.add_argument(
        "--backend",
        choices=("moto", "local-aws"),
        default="moto",
        help="the AWS emulator: moto (default, starts in a second) or local-aws (LocalStack's S3 and SQS with "
        "Amazon DynamoDB Local; install with `make local-aws`)",
    )
    p.set_defaults(run=_run_demo)


def demo_options(args: argparse.Namespace) -> DemoOptions:
    """The demo's options from its command line; raises ValueError naming an inconsistent setting.

    The parser states its defaults itself (so ``--help`` shows them without importing the sandbox);
    a test holds them equal to ``DemoOptions``'s own.
    """
    from data_aggregator.sandbox.demo import DemoOptions  # noqa: PLC0415
    from data_aggregator.sandbox.uploader import SizeMix  # noqa: PLC0415

    return DemoOptions(
        rate=args.rate,
        count=args.count if args.count is not None or args.duration is not None else DemoOptions().count,
        duration=args.duration,
        batch_size=args.batch_size,
        window_seconds=args.window,
        function_timeout_seconds=args.function_timeout,
        claim_lease_seconds=args.claim_lease,
        visibility_timeout=args.visibility_timeout,
        max_receive_count=args.max_receive_count,
        pollers=args.pollers,
        poison=args.poison,
        duplicates=args.duplicates,
        seed=args.seed,
        mix=SizeMix(large_every=args.large_every),
        stall_timeout_seconds=args.stall_timeout,
        drain_timeout_seconds=args.drain_timeout,
        workdir=args.workdir,
        keep_workdir=args.keep_workdir or args.keep,
        backend=args.backend,
    )


def _run_demo(args: argparse.Namespace) -> int:
    from data_aggregator.sandbox.demo import (  # noqa: PLC0415
        DemoInterruptedError,
        operator_instructions,
        run_demo,
    )
    from data_aggregator.sandbox.emulator import EmulatorUnavailableError  # noqa: PLC0415
    from data_aggregator.sandbox.local_aws import BackendStartError  # noqa: PLC0415

    shown: list[DemoReport] = []

    def keep_running(report: DemoReport, emulator: Backend, environment: Environment) -> None:
        print(report.render(), flush=True)
        shown.append(report)
        print(operator_instructions(emulator, environment, report.workdir), flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(f"{PROG} demo: stopping the emulator", file=sys.stderr)

    try:
        report = run_demo(demo_options(args), after=keep_running if args.keep else None)
    except (ValueError, EmulatorUnavailableError) as exc:
        raise UsageError(str(exc)) from None
    except BackendStartError as exc:
        print(f"{PROG} demo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except DemoInterruptedError as exc:
        where = f"work directory kept at {exc.workdir}" if exc.workdir else "temporary work directory removed"
        print(f"{PROG} demo: interrupted; {where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not shown:
        print(report.render())
    return EXIT_OK if report.ok else EXIT_FAILED


# -- replay ----------------------------------------------------------------------------------------


def _replay_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "replay",
        help="copy bundles from Archive back to Distribution (restoring from Glacier first)",
        description="Select bundles in the Archive bucket and copy them to Distribution, verifying each "
        "copy's SHA-256 (a copy that fails is deleted again). Selection: --key names exact bundles and "
        "stands alone; --prefix, --since and --until are filters that all apply (intersection). Archived "
        "bundles get a restore request and are copied once restored (--wait keeps polling). Safe to run "
        "again: delivered bundles are skipped. Exit 0 done, 1 failures, 2 usage (including a --key that "
        "is not in Archive), 3 restores still pending.",
    )
    p.add_argument("--archive-bucket", default=_env_default("ARCHIVE_BUCKET_NAME"), help="$ARCHIVE_BUCKET_NAME")
    p.add_argument(
        "--distribution-bucket",
        default=_env_default("DISTRIBUTION_BUCKET_NAME"),
        help="$DISTRIBUTION_BUCKET_NAME",
    )
    p.add_argument("--key", action="append", default=[], help="bundle key (repeatable)")
    p.add_argument("--prefix", help="every bundle under this key prefix")
    p.add_argument("--since", help="bundles filed from this UTC hour on (ISO-8601)")
    p.add_argument("--until", help="bundles filed before this time (ISO-8601, exclusive)")
    p.add_argument("--bundle-prefix", default=_env_default("BUNDLE_PREFIX", "bundles/"), help="key prefix of bundles")
    p.add_argument("--tier", choices=("Bulk", "Standard", "Expedited"), default="Bulk", help="restore tier")
    p.add_argument("--restore-days", type=int, default=7, help="days a restored copy stays readable (default 7)")
    p.add_argument("--wait", action="store_true", help="poll until every restore finished and copy")
    p.add_argument("--poll-interval", type=_positive_float, default=300.0, help="seconds between passes")
    p.add_argument("--wait-timeout", type=_positive_float, help="give up waiting after this many seconds")
    p.add_argument("--dry-run", action="store_true", help="report what would happen; change nothing")
    _add_aws_options(p)
    p.set_defaults(run=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    from data_aggregator.ops.replay import Outcome, Replayer, parse_time  # noqa: PLC0415

    if not args.archive_bucket or not args.distribution_bucket:
        raise UsageError(
            "give --archive-bucket and --distribution-bucket (or set ARCHIVE_BUCKET_NAME and DISTRIBUTION_BUCKET_NAME)"
        )
    if not (args.key or args.prefix or args.since or args.until):
        raise UsageError("select bundles with --key, --prefix, or --since/--until")
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        replayer = Replayer(
            _s3_client(args),
            args.archive_bucket,
            args.distribution_bucket,
            tier=args.tier,
            restore_days=args.restore_days,
            dry_run=args.dry_run,
        )
        keys = replayer.select(
            keys=args.key, prefix=args.prefix, since=since, until=until, bundle_prefix=args.bundle_prefix
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    absent = replayer.missing(args.key)
    if absent:
        raise UsageError(f"not in the archive bucket {args.archive_bucket}: {', '.join(absent)}")

    def progress(index: int, total: int, outcome: Outcome) -> None:
        print(f"[{index}/{total}] {outcome.action.value} {outcome.key}", file=sys.stderr, flush=True)

    if not keys:
        print(f"{PROG} replay: no bundle in {args.archive_bucket} matches the selection", file=sys.stderr)
        return EXIT_FAILED
    print(f"{len(keys)} bundle(s) selected", file=sys.stderr)
    report = replayer.run(
        keys,
        wait=args.wait,
        poll_interval=args.poll_interval,
        wait_timeout=args.wait_timeout,
        on_outcome=progress,
    )
    print(report.render())
    return report.exit_code()


# -- verify ----------------------------------------------------------------------------------------


def _verify_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "verify",
        help="check bundles (S3 objects or local files) against their SHA-256 and manifest",
        description="For each bundle: whole-object SHA-256 against the content-sha256 metadata (S3) or "
        "--sha256 / a .sha256 sidecar (local file), member names and types, and every manifest entry "
        "against its member's bytes. Exit 1 on any mismatch.",
    )
    p.add_argument("targets", nargs="+", metavar="TARGET", help="s3://bucket/key or a local .tar.gz file")
    p.add_argument("--sha256", help="expected SHA-256 of a single local file")
    p.add_argument("--version-id", help="S3 object version (single S3 target only)")
    p.add_argument("--json", action="store_true", help="print one JSON report per line")
    p.add_argument("--members", action="store_true", help="list every member with its digest")
    _add_limit_options(p)
    _add_aws_options(p)
    p.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from data_aggregator.ops.bundles import BundleReport  # noqa: PLC0415
    from data_aggregator.ops.hashing import parse_s3_uri  # noqa: PLC0415
    from data_aggregator.ops.verify import verify_local_bundle, verify_s3_bundle  # noqa: PLC0415

    if (args.sha256 or args.version_id) and len(args.targets) != 1:
        raise UsageError("--sha256 and --version-id apply to a single target")
    s3: S3Client | None = None
    reports: list[BundleReport] = []
    for target in args.targets:
        try:
            if target.startswith("s3://"):
                location = parse_s3_uri(target)
                s3 = s3 or _s3_client(args)
                reports.append(
                    verify_s3_bundle(s3, location.bucket, location.key, args.version_id, limits=_limits(args))
                )
            elif args.version_id:
                raise UsageError("--version-id applies to an S3 target only")
            else:
                reports.append(verify_local_bundle(Path(target), args.sha256, limits=_limits(args)))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    for report in reports:
        print(json.dumps(report.to_dict()) if args.json else report.render(verbose=args.members))
    failed = sum(not report.ok for report in reports)
    if not args.json and len(reports) > 1:
        print(f"{len(reports) - failed} of {len(reports)} bundle(s) OK")
    return EXIT_FAILED if failed else EXIT_OK


# -- consume ---------------------------------------------------------------------------------------


def _consume_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "consume",
        help="the reference on-prem consumer: download, verify, extract, delete",
        description="Poll the Distribution bucket; for each bundle download it, verify it, extract it safely "
        "under TARGET/<YYYY>/<MM>/<DD>/<HH>/<bundle id>/, optionally upload the files to an S3-compatible "
        "store, and only then delete it. Restart-safe and at-least-once. Forwarding credentials come from "
        "UPLOAD_AWS_ACCESS_KEY_ID and UPLOAD_AWS_SECRET_ACCESS_KEY or --upload-profile.",
    )
    p.add_argument(
        "--bucket",
        default=_env_default("DISTRIBUTION_BUCKET_NAME"),
        help="Distribution bucket ($DISTRIBUTION_BUCKET_NAME)",
    )
    p.add_argument("--prefix", default=_env_default("BUNDLE_PREFIX", "bundles/"), help="bundle key prefix")
    p.add_argument("--target", type=Path, required=True, help="directory to extract into")
    p.add_argument("--once", action="store_true", help="consume what is there now, then exit")
    p.add_argument("--interval", type=_positive_float, default=10.0, help="seconds between polls (default 10)")
    p.add_argument("--max-bundles", type=int, help="stop after this many bundles")
    p.add_argument("--no-fsync", action="store_true", help="skip fsync before deleting (faster, less safe)")
    _add_limit_options(p)
    up = p.add_argument_group("forwarding to an S3-compatible store (optional)")
    up.add_argument("--upload-endpoint", help="endpoint URL, e.g. https://minio.example.internal:9000")
    up.add_argument("--upload-bucket", help="bucket to upload the extracted files into")
    up.add_argument("--upload-prefix", default="", help="key prefix for uploaded files")
    up.add_argument("--upload-region", default="us-east-1", help="region name the store expects")
    up.add_argument("--upload-profile", help="named profile holding the store's credentials")
    _add_aws_options(p)
    p.set_defaults(run=_run_consume)


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    from data_aggregator.ops.bundles import DEFAULT_LIMITS  # noqa: PLC0415

    group = parser.add_argument_group("expansion limits (a bundle that expands beyond them is rejected)")
    group.add_argument(
        "--max-expansion-ratio",
        type=_positive_float,
        default=DEFAULT_LIMITS.max_ratio,
        help=f"expanded bytes per compressed byte (default {DEFAULT_LIMITS.max_ratio:g}; "
        f"bundles under {DEFAULT_LIMITS.floor_bytes // 2**20} MiB expanded always pass)",
    )
    group.add_argument(
        "--max-expanded-bytes",
        type=_positive_int,
        default=DEFAULT_LIMITS.max_bytes,
        help=f"absolute maximum expanded size of one bundle (default {DEFAULT_LIMITS.max_bytes:,})",
    )


def _limits(args: argparse.Namespace) -> ExpansionLimits:
    from data_aggregator.ops.bundles import DEFAULT_LIMITS, ExpansionLimits  # noqa: PLC0415

    return ExpansionLimits(
        max_ratio=args.max_expansion_ratio,
        max_bytes=args.max_expanded_bytes,
        floor_bytes=min(DEFAULT_LIMITS.floor_bytes, args.max_expanded_bytes),
    )


def _forwarding_client(args: argparse.Namespace) -> S3Client:
    if args.upload_profile:
        session = boto3.session.Session(profile_name=args.upload_profile, region_name=args.upload_region)
    else:
        key_id = os.environ.get("UPLOAD_AWS_ACCESS_KEY_ID")
        secret = os.environ.get("UPLOAD_AWS_SECRET_ACCESS_KEY")
        if not key_id or not secret:
            raise UsageError(
                "forwarding needs credentials: set UPLOAD_AWS_ACCESS_KEY_ID and UPLOAD_AWS_SECRET_ACCESS_KEY "
                "or pass --upload-profile"
            )
        session = boto3.session.Session(
            aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=args.upload_region
        )
    config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 8})
    return session.client("s3", endpoint_url=args.upload_endpoint, config=config)


def _run_consume(args: argparse.Namespace) -> int:
    from data_aggregator.ops.consume import (  # noqa: PLC0415
        BundleForwarder,
        Consumer,
        ConsumerBusyError,
        StoreConfigurationError,
        TargetMisconfiguredError,
    )

    if not args.bucket:
        raise UsageError("give --bucket (or set DISTRIBUTION_BUCKET_NAME)")
    if bool(args.upload_endpoint) != bool(args.upload_bucket):
        raise UsageError("forwarding needs both --upload-endpoint and --upload-bucket")
    target: Path = args.target
    if target.exists() and not target.is_dir():
        raise UsageError(f"--target {target} exists and is not a directory")
    forwarder = (
        BundleForwarder(_forwarding_client(args), args.upload_bucket, args.upload_prefix)
        if args.upload_bucket
        else None
    )
    try:
        consumer = Consumer(
            _s3_client(args),
            args.bucket,
            target,
            prefix=args.prefix,
            forwarder=forwarder,
            durable=not args.no_fsync,
            limits=_limits(args),
        )
    except (ConsumerBusyError, TargetMisconfiguredError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"--target {target} cannot be used: {exc.strerror or exc}") from None
    with consumer:
        try:
            return _consume_loop(args, consumer)
        except (StoreConfigurationError, TargetMisconfiguredError) as exc:
            raise UsageError(str(exc)) from None


def _consume_loop(args: argparse.Namespace, consumer: Consumer) -> int:
    """Consume until done or stopped; SIGINT stops after the current bundle and exits 130, not 0."""
    stop = threading.Event()
    interrupted = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:
            interrupted.set()
            # A second Ctrl-C interrupts at once (KeyboardInterrupt, exit 130). That is safe: the
            # bundle is deleted only after its files are in place, and a crash discards half-done work.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        print(
            f"signal {signum}: finishing the current bundle, then stopping"
            + (" (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""),
            file=sys.stderr,
        )
        stop.set()

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        return _consume_until_stopped(args, consumer, stop, interrupted)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _consume_until_stopped(
    args: argparse.Namespace, consumer: Consumer, stop: threading.Event, interrupted: threading.Event
) -> int:
    from data_aggregator.ops.consume import REJECTED_FILE, STATE_DIR, PollResult  # noqa: PLC0415

    def report(result: PollResult) -> None:
        for bundle in result.consumed:
            print(f"consumed {bundle.key}: {len(bundle.files)} file(s) -> {bundle.directory}", flush=True)
        for rejected in result.rejected:
            print(f"REJECTED {rejected.key} (left in the bucket): {'; '.join(rejected.problems)}", flush=True)
        for error in result.errors:
            print(f"retry later: {error}", file=sys.stderr, flush=True)

    totals = consumer.run(stop, interval=args.interval, once=args.once, max_bundles=args.max_bundles, on_poll=report)
    earlier = len(set(totals.still_rejected))
    print(
        f"{len(totals.consumed)} bundle(s) consumed, {len(totals.rejected)} rejected, "
        f"{earlier} still rejected from earlier runs, {len(totals.errors)} error(s)"
        + (f" (rejections: {consumer.target / STATE_DIR / REJECTED_FILE})" if totals.rejected or earlier else ""),
        file=sys.stderr,
    )
    if interrupted.is_set():
        return EXIT_INTERRUPTED
    return EXIT_FAILED if totals.rejected or earlier or totals.errors else EXIT_OK


# -- dlq -------------------------------------------------------------------------------------------


def _sqs_client(args: argparse.Namespace) -> SQSClient:
    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    config = Config(retries={"mode": "standard", "max_attempts": 8})
    return session.client("sqs", endpoint_url=args.endpoint_url, config=config)


def _dlq_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "dlq",
        help="list dead-lettered events (decoded) and redrive them to the event queue",
        description="list: every message in the dead-letter queue with the bucket, key and version it names "
        "(decoded), its receive count and age, and its failure class (poison, test-event, or s3-event, whose "
        "cause is in the function's logs); the messages stay in the queue. redrive: move them back to the "
        "event queue, with SQS's move task on AWS or a send-then-delete copy where the endpoint has none.",
        epilog="See docs/runbooks/dlq.md. Exit 0 ok, 1 a message could not be moved, 2 usage or configuration.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dlq",
        default=_env_default("DLQ_URL"),
        help="dead-letter queue URL or name ($DLQ_URL)",
    )
    _add_aws_options(common)
    listing = actions.add_parser("list", parents=[common], help="show the messages; change nothing")
    listing.add_argument("--json", action="store_true", help="one JSON object per message")
    listing.add_argument("--max", type=_positive_int, help="list at most this many messages")
    listing.set_defaults(run=_run_dlq_list)
    redrive = actions.add_parser("redrive", parents=[common], help="move the messages back to the event queue")
    redrive.add_argument("--to", help="event queue URL or name (default: the queue that dead-letters here)")
    redrive.add_argument("--dry-run", action="store_true", help="list what would move; change nothing")
    redrive.add_argument(
        "--method",
        choices=("auto", "move-task", "copy"),
        default="auto",
        help="move-task: SQS StartMessageMoveTask (AWS); copy: send then delete; auto (default): move task, else copy",
    )
    redrive.add_argument("--rate", type=_positive_int, help="messages per second for the move task (AWS)")
    redrive.set_defaults(run=_run_dlq_redrive)


def _dead_letter_queue(args: argparse.Namespace, source: str | None = None) -> DeadLetterQueue:
    from data_aggregator.ops.dlq import DeadLetterQueue  # noqa: PLC0415

    if not args.dlq:
        raise UsageError("give --dlq (or set DLQ_URL)")
    try:
        return DeadLetterQueue(_sqs_client(args), args.dlq, source=source)
    except ClientError as exc:
        if "NonExistentQueue" in _error_code_of(exc):
            raise UsageError(f"no such queue: {exc}") from None
        raise


def _error_code_of(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _run_dlq_list(args: argparse.Namespace) -> int:
    import time  # noqa: PLC0415

    queue = _dead_letter_queue(args)
    letters = queue.peek(args.max)
    now = time.time()
    for letter in letters:
        if args.json:
            print(json.dumps(letter.to_dict(), ensure_ascii=False))
        else:
            print("\n".join(letter.render(now)))
    if not args.json:
        classes = ", ".join(
            f"{sum(x.failure_class == c for x in letters)} {c}" for c in sorted({x.failure_class for x in letters})
        )
        print(f"{len(letters)} message(s) in {queue.url}" + (f": {classes}" if classes else ""), file=sys.stderr)
    return EXIT_OK


def _run_dlq_redrive(args: argparse.Namespace) -> int:
    from data_aggregator.ops.dlq import DeadLetter, Method  # noqa: PLC0415

    queue = _dead_letter_queue(args, args.to)
    try:
        destination = queue.source_url
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def moved(letter: DeadLetter) -> None:
        print(f"moved {letter.message_id} ({letter.failure_class})", file=sys.stderr, flush=True)

    print(f"redrive {queue.url} -> {destination}", file=sys.stderr)
    report = queue.redrive(method=Method(args.method), dry_run=args.dry_run, rate=args.rate, on_move=moved)
    print(report.render())
    return EXIT_FAILED if report.failed else EXIT_OK


# -- cost ------------------------------------------------------------------------------------------

#: option -> help; values stay strings here so that the model's validation reports a bad one in one line.
_COST_OPTIONS = {
    "--files-per-day": "files uploaded a day (default 864000)",
    "--avg-kb": "average file size in KB of 1,024 bytes (default 100)",
    "--region": "region whose price list to use (default eu-west-2)",
    "--memory-mb": "function memory (default 1769)",
    "--batch-size": "ESM batch size (default 1000)",
    "--window-s": "ESM batching window in seconds (default 20)",
    "--files-per-invocation": "files an invocation (default: min(batch, files/s x window))",
    "--cpu-s-per-gb": "CPU seconds per GB of input (default 3.46, measured on x86)",
    "--io-s-per-file": "wall seconds of S3/DynamoDB waits per file (default 0.005)",
    "--overhead-s-per-invocation": "wall seconds per invocation besides that (default 0.2)",
    "--compression-ratio": "input bytes / bundle bytes (default 2.38, measured)",
    "--archive-age-months": "months of bundles already in Archive (default 12)",
    "--consumer-poll-s": "consumer seconds between LIST polls (default 10)",
    "--kms-requests-per-day": "KMS requests a day with S3 Bucket Keys (default 1000)",
    "--usd-per-gbp": "exchange rate for the design estimate (default 1.27)",
}


def _cost_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "cost",
        help="print the monthly cost of a given load, line by line, with each figure's source",
        description="Model the monthly AWS cost of the pipeline for a load: every line item says whether its "
        "quantity is measured or configured and which price list its price comes from; the total is compared "
        "with the design's estimate and with Amazon Data Firehose. Pure arithmetic: no AWS call.",
        epilog="See docs/cost.md. Exit 0 ok, 2 usage (a bad value or a region without a price list).",
    )
    for option, text in _COST_OPTIONS.items():
        p.add_argument(option, metavar="N" if option != "--region" else "REGION", help=text)
    p.add_argument("--json", action="store_true", help="the line items, totals and comparisons as JSON")
    p.set_defaults(run=_run_cost)


def _run_cost(args: argparse.Namespace) -> int:
    from data_aggregator.ops.cost import CostError, estimate, make_inputs, render  # noqa: PLC0415

    values = {option[2:].replace("-", "_"): getattr(args, option[2:].replace("-", "_")) for option in _COST_OPTIONS}
    try:
        report = estimate(make_inputs(**values))
    except CostError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(report.to_dict(), indent=2) if args.json else render(report))
    return EXIT_OK


# -- entry point -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The full command line (also used by the docs tests)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate and demonstrate the data-aggregator pipeline.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo_parser(sub)
    _replay_parser(sub)
    _verify_parser(sub)
    _consume_parser(sub)
    _dlq_parser(sub)
    _cost_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # every error a user can cause ends in one line; anything else is re-raised
        return _exit_code_for(args.command, exc)
    return code


def _exit_code_for(command: str, exc: Exception) -> int:
    """Print one line for an error a user or their environment caused and return its exit code."""
    code = EXIT_USAGE
    if isinstance(exc, UsageError):
        message = str(exc)
    elif isinstance(exc, NoCredentialsError):
        message = "no AWS credentials found (set a profile or AWS_* variables)"
    elif isinstance(exc, ClientError) and is_configuration_error(exc):
        message = f"the credentials were refused: {exc}"
    elif is_configuration_error(exc):
        message = f"AWS configuration: {exc}"
    elif isinstance(exc, (ClientError, BotoCoreError)):
        message, code = str(exc), EXIT_FAILED
    elif isinstance(exc, OSError):  # an unreadable config or credentials file, a full disk
        message = str(exc)
    else:
        raise exc
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
