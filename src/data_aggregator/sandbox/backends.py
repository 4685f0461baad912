"""The AWS backends the sandbox runs on, behind one interface: ``moto`` (default) and ``local-aws``.

``moto`` is pure Python and starts in about a second; ``local-aws`` is LocalStack's own S3 and SQS with
Amazon DynamoDB Local, independently written servers that catch what moto's reading of AWS would
miss (docs/e2e.md lists what each verifies). Everything above this module - the demo, the e2e
runner, the benchmarks - asks for a backend by name and never special-cases one.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal, Protocol, Self, get_args

from data_aggregator.sandbox.emulator import Clients, Emulator, EmulatorProcess

BackendName = Literal["moto", "local-aws"]
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)
DEFAULT_BACKEND: BackendName = "moto"


class Backend(Protocol):
    """A running set of AWS endpoints on loopback, and how to reach them."""

    backend: ClassVar[str]
    unfaithful_paths: ClassVar[dict[str, str]]
    """Notification paths on which this backend's events differ from AWS's, with the difference: the
    runner skips scenarios on them and says why, rather than teach our code a backend's quirk."""
    region: str
    endpoint_url: str

    @property
    def pid(self) -> int | None:
        """The process that holds the objects and messages (its memory is the emulator's), when it is a child."""

    def server_pids(self) -> dict[str, int]:
        """Each server process by name (none for an in-process server): what the emulator's CPU is spent in."""

    def clients(self) -> Clients:
        """Fresh clients for every service, each at its endpoint."""

    def environment(self) -> dict[str, str]:
        """Variables that point any boto3 client in a process at this backend."""

    def stop(self) -> None:
        """Stop every server (idempotent)."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def backend_class(name: BackendName) -> type[Backend]:
    """The class behind a backend name, for what it declares (``unfaithful_paths``) before it starts."""
    if name == "local-aws":
        from data_aggregator.sandbox.local_aws import LocalAws  # noqa: PLC0415 - only when asked for

        return LocalAws
    return EmulatorProcess


def backend_for(name: BackendName, workdir: Path | None = None, *, own_process: bool = True) -> Backend:
    """A backend, not yet started (use it as a context manager).

    ``own_process`` puts moto in a child process (needed when this process is measured or runs
    concurrent invocations); local-aws's servers are always children. ``workdir`` receives the logs.
    """
    if name == "local-aws":
        from data_aggregator.sandbox.local_aws import LocalAws  # noqa: PLC0415 - only when asked for

        return LocalAws(workdir=workdir)
    if own_process:
        return EmulatorProcess(log_path=workdir / "emulator.log" if workdir is not None else None)
    return Emulator()
