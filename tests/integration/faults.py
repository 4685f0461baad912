"""Fault injection at the HTTP layer of real boto3 clients (so botocore's own retries are exercised)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ConnectionClosedError


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._body


def _headers(content_type: str) -> HTTPHeaders:
    headers = HTTPHeaders()
    headers["Content-Type"] = content_type
    return headers


def _s3_error(code: str, status: int) -> AWSResponse:
    body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    return AWSResponse("https://s3.injected", status, _headers("application/xml"), _Raw(body))


def _dynamodb_error(code: str, status: int) -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"}).encode()
    headers = _headers("application/x-amz-json-1.0")
    return AWSResponse("https://dynamodb.injected", status, headers, _Raw(body))


@dataclass
class Fault:
    """Fail the first ``times`` calls of one operation (after ``skip`` successful ones).

    By default the error comes back as the service's response. botocore still hands the request to
    the emulator's own hook, so the call may have taken effect: that models a response lost after
    the server acted (the ambiguous case). ``connection_error=True`` instead resets the connection
    before anything is sent, so the call certainly did not happen.
    """

    service: str
    operation: str
    code: str
    status: int
    times: int
    skip: int = 0
    url_contains: str | None = None
    connection_error: bool = False
    seen: int = 0
    injected: int = 0

    def __call__(self, request: Any, **_kwargs: Any) -> AWSResponse | None:
        if self.url_contains is not None and self.url_contains not in request.url:
            return None
        self.seen += 1
        if self.seen <= self.skip or self.injected >= self.times:
            return None
        self.injected += 1
        if self.connection_error:
            raise ConnectionClosedError(endpoint_url=request.url)
        maker = _s3_error if self.service == "s3" else _dynamodb_error
        return maker(self.code, self.status)


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    crashes: list[CrashAfter] = field(default_factory=list)

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def crash(self, crash: CrashAfter) -> CrashAfter:
        self.crashes.append(crash)
        return crash

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        for fault in self.faults:
            if fault.service == service:
                # Ahead of the emulator's own before-send hook, so the fault wins.
                client.meta.events.register_first(f"before-send.{service}.{fault.operation}", fault)


class Crash(BaseException):
    """The invocation dies here: no except clause of ours catches a BaseException."""


@dataclass
class CrashAfter:
    """Kill the invocation at the first matching call; every AWS call after that dies too."""

    operation: str
    url_contains: str | None = None
    before: bool = True  # crash instead of performing the call (False: after it succeeded)
    triggered: bool = False

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register_first(f"before-send.{service}", self._before)
        client.meta.events.register(f"after-call.{service}", self._after)

    def _matches(self, operation: str, url: str) -> bool:
        return operation == self.operation and (self.url_contains is None or self.url_contains in url)

    def _before(self, request: Any, **kwargs: Any) -> None:
        if self.triggered:
            raise Crash("process is dead")
        operation = kwargs["event_name"].rsplit(".", 1)[-1]
        if self.before and self._matches(operation, request.url):
            self.triggered = True
            raise Crash(f"killed before {operation}")

    def _after(self, http_response: Any, model: Any, **_kwargs: Any) -> None:
        if not self.before and not self.triggered and self._matches(model.name, http_response.url):
            self.triggered = True
            raise Crash(f"killed after {model.name}")
