"""Run moto's server in-process and hand out boto3 clients pointed at it.

The handler under test builds its own clients from the environment, so the emulator's address is
published through boto3's standard ``AWS_ENDPOINT_URL`` (see :meth:`Emulator.environment`) rather than
a custom variable; the same code then runs unchanged against real AWS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

DEFAULT_REGION = "us-east-1"
# The emulator accepts any credentials; these only keep boto3 from searching for real ones.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # nosec B105


class EmulatorUnavailableError(RuntimeError):
    """moto is not installed: the demo needs the optional ``demo`` extra."""


@dataclass
class Clients:
    """The three clients the sandbox needs, all bound to one endpoint and region."""

    s3: S3Client
    sqs: SQSClient
    dynamodb: DynamoDBClient

    @classmethod
    def for_endpoint(
        cls,
        endpoint_url: str | None,
        region: str = DEFAULT_REGION,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> Clients:
        """Clients with a connection pool large enough for the uploader's and the ESM's threads."""
        config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 5})
        session = boto3.session.Session(
            region_name=region, aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key
        )
        return cls(
            s3=session.client("s3", endpoint_url=endpoint_url, config=config),
            sqs=session.client("sqs", endpoint_url=endpoint_url, config=config),
            dynamodb=session.client("dynamodb", endpoint_url=endpoint_url, config=config),
        )


@dataclass
class Emulator:
    """moto's threaded server on 127.0.0.1 and a free port; a context manager."""

    region: str = DEFAULT_REGION
    endpoint_url: str = ""
    _server: Any = field(default=None, repr=False)

    def start(self) -> Self:
        """Start the server; raises :class:`EmulatorUnavailableError` without the ``demo`` extra."""
        try:
            from moto.server import ThreadedMotoServer  # noqa: PLC0415 - optional dependency
        except ImportError as exc:
            raise EmulatorUnavailableError(
                "the embedded AWS emulator needs the optional 'demo' dependencies: "
                "install with `uv sync --extra demo` or `pip install 'data-aggregator[demo]'`"
            ) from exc
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
        return Clients.for_endpoint(
            self.endpoint_url,
            self.region,
            access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def environment(self) -> dict[str, str]:
        """Variables that point any boto3 client in this process at the emulator."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **FAKE_CREDENTIALS,
        }

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
