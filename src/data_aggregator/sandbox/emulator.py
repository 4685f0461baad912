"""Run moto's server in-process and hand out boto3 clients pointed at it.

The handler under test builds its own clients from the environment, so the emulator's address is
published through boto3's standard ``AWS_ENDPOINT_URL`` (see :meth:`Emulator.environment`) rather than
a custom variable; the same code then runs unchanged against real AWS.
"""

from __future__ import annotations

import logging
import os
import subprocess  # nosec B404
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, ClassVar, Literal, Self

import boto3
from botocore.config import Config

from data_aggregator.sandbox.server import PORT_LINE_PREFIX

# subprocess (bandit B404, B603 reviewed): only ever starts our own emulator module with this interpreter.

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

DEFAULT_REGION = "us-east-1"
# The emulator accepts any credentials; these only keep boto3 from searching for real ones.
FAKE_CREDENTIALS = dict.fromkeys(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "testing")


class EmulatorUnavailableError(RuntimeError):
    """moto is not installed: the demo needs the optional ``demo`` extra."""


@dataclass
class Clients:
    """The three clients the sandbox needs, all bound to one endpoint and region."""

    s3: S3Client
    sqs: SQSClient
    dynamodb: DynamoDBClient
    # Where the three came from, so that a rarely needed fourth (SNS, EventBridge) can be built alike.
    session: boto3.session.Session | None = field(default=None, repr=False)
    endpoint_url: str | None = None
    config: Config | None = field(default=None, repr=False)

    def client_for(self, service: Literal["sns", "events"]) -> Any:  # noqa: ANN401 - no type stubs for these in the lock
        """A client for SNS or EventBridge on the same endpoint, region and credentials as the other three."""
        if self.session is None:
            raise RuntimeError(f"these clients were not built by Clients.for_endpoint: no {service} client")
        if service == "sns":
            return self.session.client("sns", endpoint_url=self.endpoint_url, config=self.config)
        return self.session.client("events", endpoint_url=self.endpoint_url, config=self.config)

    @classmethod
    def for_endpoint(
        cls,
        endpoint_url: str | None,
        region: str = DEFAULT_REGION,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        dynamodb_endpoint_url: str | None = None,
    ) -> Clients:
        """Clients with a connection pool large enough for the uploader's and the ESM's threads.

        ``dynamodb_endpoint_url`` serves a backend whose DynamoDB is a server of its own (local-aws).
        """
        config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 5})
        session = boto3.session.Session(
            region_name=region, aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key
        )
        return cls(
            s3=session.client("s3", endpoint_url=endpoint_url, config=config),
            sqs=session.client("sqs", endpoint_url=endpoint_url, config=config),
            dynamodb=session.client("dynamodb", endpoint_url=dynamodb_endpoint_url or endpoint_url, config=config),
            session=session,
            endpoint_url=endpoint_url,
            config=config,
        )


def _require_moto() -> None:
    """Fail with the install hint rather than a bare ImportError deep inside a start-up."""
    try:
        import moto  # noqa: F401, PLC0415 - optional dependency, imported only to probe
    except ImportError as exc:
        raise EmulatorUnavailableError(
            "the embedded AWS emulator needs the optional 'demo' dependencies: "
            "install with `uv sync --extra demo` or `pip install 'data-aggregator[demo]'`"
        ) from exc


def emulator_clients(endpoint_url: str, region: str, dynamodb_endpoint_url: str | None = None) -> Clients:
    """Clients for an emulator with throwaway credentials; DynamoDB at its own endpoint when it has one."""
    return Clients.for_endpoint(
        endpoint_url,
        region,
        access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        dynamodb_endpoint_url=dynamodb_endpoint_url,
    )


def emulator_environment(endpoint_url: str, region: str, dynamodb_endpoint_url: str | None = None) -> dict[str, str]:
    """Variables that point any boto3 client at an emulator (DynamoDB through boto3's per-service variable)."""
    dynamodb = {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint_url} if dynamodb_endpoint_url else {}
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        **dynamodb,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        **FAKE_CREDENTIALS,
    }


def stop_child(process: subprocess.Popen[str], *, grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL after ``grace_seconds``; reaps the child and closes its stdout pipe."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def read_port_line(process: subprocess.Popen[str], timeout_seconds: float) -> int | None:
    """The port a child announces as its first stdout line (``PORT <n>``); None if it says anything else."""
    found: list[str] = []

    def read() -> None:
        if process.stdout is not None:
            found.append(process.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_seconds)
    line = found[0].strip() if found else ""
    return int(line.removeprefix(PORT_LINE_PREFIX)) if line.startswith(PORT_LINE_PREFIX) else None


@dataclass
class Emulator:
    """moto's threaded server on 127.0.0.1 and a free port; a context manager."""

    backend: ClassVar[str] = "moto"
    unfaithful_paths: ClassVar[dict[str, str]] = {}
    region: str = DEFAULT_REGION
    endpoint_url: str = ""
    _server: Any = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        """None: this server shares the process (and its memory figure) with its caller."""
        return None

    def server_pids(self) -> dict[str, int]:
        """The server process by name; none when it runs in this process."""
        return {"moto": self.pid} if self.pid is not None else {}

    def start(self) -> Self:
        """Start the server; raises :class:`EmulatorUnavailableError` without the ``demo`` extra."""
        _require_moto()
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - optional dependency

        from data_aggregator.sandbox.server import notifications_like_s3  # noqa: PLC0415 - needs moto

        notifications_like_s3()

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def clients(self) -> Clients:
        """Fresh clients for this emulator with throwaway credentials."""
        return emulator_clients(self.endpoint_url, self.region)

    def environment(self) -> dict[str, str]:
        """Variables that point any boto3 client in this process at the emulator."""
        return emulator_environment(self.endpoint_url, self.region)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class EmulatorProcess(Emulator):
    """The same emulator in a child process (see ``sandbox.server``), with DynamoDB requests serialised.

    Use it when the process under test is measured (memory) or runs concurrent invocations: the
    in-process server shares the interpreter with the handler and lets moto's DynamoDB race.
    ``log_path`` receives the child's stderr.
    """

    log_path: Path | None = None
    startup_timeout_seconds: float = 60.0
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)
    _log: IO[str] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> Self:
        """Start the child and wait until it reports its port."""
        _require_moto()
        self._log = self.log_path.open("a", encoding="utf-8") if self.log_path else None
        # Fixed argv: this interpreter and our module (bandit B603 reviewed).
        self._process = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "data_aggregator.sandbox.server", "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        port = read_port_line(self._process, self.startup_timeout_seconds)
        if port is None:
            self.stop()
            raise RuntimeError(f"the emulator process did not start; see its log {self.log_path}")
        self.endpoint_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Terminate the child (idempotent)."""
        process, self._process = self._process, None
        if process is not None:
            stop_child(process, grace_seconds=10)
        if self._log is not None:
            self._log.close()
            self._log = None
