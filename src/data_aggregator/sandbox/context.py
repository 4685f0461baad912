"""A Lambda context object for invoking the handler outside Lambda.

The handler's timeout guard reads ``get_remaining_time_in_millis()``, so the emulated context counts
down from the configured function timeout against a real clock, exactly as Lambda's does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LambdaContext:
    """The attributes Lambda's Python runtime provides (Powertools' Logger reads several)."""

    function_name: str = "data-aggregator-dev-bundler"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    region: str = "us-east-1"
    account_id: str = "123456789012"
    timeout_seconds: float = 30.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    clock: Callable[[], float] = time.monotonic
    _deadline: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = self.clock() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        """The unqualified ARN, as for an invocation by an event source mapping."""
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        """Where Lambda would write this function's logs."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """A stream name in Lambda's format."""
        return f"sandbox/[{self.function_version}]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the emulated timeout (never negative)."""
        return max(0, int((self._deadline - self.clock()) * 1000))

    @property
    def timed_out(self) -> bool:
        """True once the deadline has passed: Lambda would have killed the invocation."""
        return self.clock() >= self._deadline
