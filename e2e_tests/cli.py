"""``python -m e2e_tests``: run scenarios, print the table, exit non-zero on any violated invariant.

Exit codes: 0 every scenario passed, 1 a scenario failed, 2 bad usage or an invalid config (nothing
was run: every config is validated before the first scenario starts).
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from data_aggregator.sandbox.backends import BACKENDS, DEFAULT_BACKEND, BackendName, backend_class
from data_aggregator.sandbox.emulator import EmulatorUnavailableError
from data_aggregator.sandbox.local_aws import BackendStartError, LocalAwsTools
from e2e_tests.aws import AwsTarget, DeploymentError, UnsupportedScenarioError, read_deployment
from e2e_tests.config import ConfigFileError, ScenarioConfig, load_config
from e2e_tests.report import render
from e2e_tests.runner import ScenarioResult, TargetFactory, run_scenario

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m e2e_tests",
        description="Run end-to-end scenarios against the embedded pipeline (local) or a deployed environment "
        "(aws) and check that no file is lost, doubled or corrupted.",
    )
    parser.add_argument(
        "--config",
        action="extend",
        nargs="+",
        type=Path,
        required=True,
        metavar="FILE",
        help="scenario file(s), e.g. e2e_tests/configs/*.json",
    )
    parser.add_argument("--target", choices=("local", "aws"), default="local", help="where to run (default local)")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=DEFAULT_BACKEND,
        help="the emulator behind the local target: moto (default) or local-aws (LocalStack + DynamoDB Local)",
    )
    parser.add_argument("--env", help="environment under infra/environments (aws target), e.g. dev")
    parser.add_argument("--profile", help="AWS profile (aws target)")
    parser.add_argument("--workdir", type=Path, help="keep logs and extracted files under this directory")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the work directory of passing scenarios")
    return parser


def load_all(paths: Sequence[Path]) -> list[ScenarioConfig]:
    """Every config, validated; the names must be unique. Raises ConfigFileError naming file and field."""
    configs = [load_config(path) for path in paths]
    seen: dict[str, Path] = {}
    for path, config in zip(paths, configs, strict=True):
        if config.name in seen:
            raise ConfigFileError(f"{path}: name {config.name!r} is already used by {seen[config.name]}")
        seen[config.name] = path
    return configs


def runnable_on_aws(configs: Sequence[ScenarioConfig]) -> tuple[list[ScenarioConfig], list[str]]:
    """The scenarios a deployment can run, and a line for each one it cannot (they need the local target)."""
    runnable = [config for config in configs if not config.local_only]
    skipped = [
        f"{config.name}: uses {', '.join(config.local_only)}; run it with --target local"
        for config in configs
        if config.local_only
    ]
    if not runnable:
        raise UnsupportedScenarioError("no scenario can run on a deployment: " + "; ".join(skipped))
    return runnable, skipped


def runnable_on_backend(
    configs: Sequence[ScenarioConfig], backend: BackendName
) -> tuple[list[ScenarioConfig], list[str]]:
    """The scenarios a local backend can run faithfully, and a line for each one it cannot, saying why."""
    unfaithful = backend_class(backend).unfaithful_paths
    runnable = [config for config in configs if config.notification_path not in unfaithful]
    skipped = [
        f"{config.name}: {unfaithful[config.notification_path]}"
        for config in configs
        if config.notification_path in unfaithful
    ]
    return runnable, skipped


def _factory(args: argparse.Namespace) -> TargetFactory:
    if args.target == "local":
        from e2e_tests.local import LocalTarget  # noqa: PLC0415 - needs the emulator only when used

        if args.backend == "local-aws":
            LocalAwsTools.locate()  # not installed: say so before the first scenario, not in its middle
        return functools.partial(LocalTarget, backend=args.backend)
    if not args.env:
        raise UnsupportedScenarioError("the aws target needs --env (an environment under infra/environments)")
    deployment = read_deployment(args.env)

    def make(config: ScenarioConfig, workdir: Path) -> AwsTarget:
        return AwsTarget(config, workdir, deployment, profile=args.profile)

    return make


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    skipped: list[str] = []
    try:
        configs = load_all(args.config)
        if args.target == "aws":
            configs, skipped = runnable_on_aws(configs)
        else:
            configs, skipped = runnable_on_backend(configs, args.backend)
        factory = _factory(args)
    except (ConfigFileError, UnsupportedScenarioError, DeploymentError, EmulatorUnavailableError) as exc:
        print(f"e2e: {exc}", file=sys.stderr)
        return EXIT_USAGE
    base = args.workdir or Path(tempfile.mkdtemp(prefix="data-aggregator-e2e-"))
    base.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=base / "runner.log", level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    results: list[ScenarioResult] = []
    started = time.monotonic()
    for config in configs:
        workdir = base / config.name
        try:
            result = run_scenario(config, factory, workdir)
        except BackendStartError as exc:
            print(f"e2e: {config.name}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        results.append(result)
        if result.passed and not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
            result.workdir = None
    passed = all(result.passed for result in results)
    print(render(results))
    for line in skipped:
        where = "the aws target" if args.target == "aws" else f"the {args.backend} backend"
        print(f"skipped on {where}: {line}")
    if passed and not args.keep_workdir and args.workdir is None:
        shutil.rmtree(base, ignore_errors=True)
        print(f"total time {time.monotonic() - started:.0f} s")
    else:
        print(f"total time {time.monotonic() - started:.0f} s; logs under {base}")
    return EXIT_OK if passed else EXIT_FAILED
