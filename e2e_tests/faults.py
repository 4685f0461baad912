"""Fault injection for boto3 clients, driven by configuration: failed calls, broken streams, killed invocations.

Faults are botocore event hooks on the clients of the code under test, so the SDK's own retries, the
facades' Range resumes and the claim logic meet each fault exactly where they would meet a real one;
nothing in the product knows it is being tested. One mechanism serves the end-to-end scenarios
(JSON configs) and the in-process integration tests (rules built in code).

What each kind of fault means:

* ``throttle`` - the service refuses the request (S3 503 ``SlowDown``, DynamoDB
  ``ThrottlingException``, SQS ``RequestThrottled``); it never took effect.
* ``server_error`` - a 500. With ``applied`` the request reached the service and took effect and only
  the answer was lost: the case idempotency has to survive (a claim that went through, a bundle
  that was written, messages that were received).
* ``connection_reset`` - the connection drops: before the request was sent, or with ``applied``
  after it took effect (a lost response without any status).
* ``stream_cut`` - a GetObject body breaks after a random number of bytes.
* ``access_denied`` - what IAM answers a call the role may not make (S3 403 ``AccessDenied``, also
  for a HEAD or GET of a missing key when the role lacks ``s3:ListBucket``; DynamoDB
  ``AccessDeniedException``); it never took effect. The emulators allow every call: this is how a
  test says what AWS would refuse.
* ``slow`` - the service takes ``seconds`` longer to answer, then answers as usual. Within an
  invocation the wait is bounded like a real slow answer: when the deadline comes first, the call
  ends in a read timeout at the deadline (``clients.deadline_budget``).

A rule fires at chosen matching calls (``at_calls``, 1-based, counting every HTTP attempt) or with a
``probability`` per attempt, from a seeded generator.

Kills model an invocation whose process dies at a point of the batch's life: after its claims were
written, while fetching, after the Archive write, or after the Distribution write but before the
claims were committed. The handler thread gets an :class:`InvocationKilled` (a ``BaseException``, so
no ``except Exception`` of ours can swallow it) and every later call of that invocation dies too: a
dead process releases no claim and writes nothing more.

Emulator notes: against moto's server (``sandbox.server``) an error response without ``applied``
never reaches it. Under in-process moto (``mock_aws``) moto's own hook serves every request whatever
an earlier hook answered, so ``throttle`` and ``server_error`` always take effect there (lost-response
semantics); ``connection_reset`` raises before moto's hook and never does. A request is only ever
sent twice to a loopback endpoint, never to a real service.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.client import BaseClient
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from botocore.httpsession import URLLib3Session
from botocore.model import OperationModel
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from urllib3.exceptions import ProtocolError
from urllib3.response import BaseHTTPResponse

from data_aggregator.clients import AwsClients, deadline_budget

log = logging.getLogger(__name__)

FaultKind = Literal["throttle", "server_error", "connection_reset", "stream_cut", "slow", "access_denied"]
KillPoint = Literal["after_claim", "during_fetch", "after_archive_write", "after_distribution_write"]
Handler = Callable[[dict[str, Any], Any], Any]

_CALL = re.compile(r"^(s3|dynamodb|sqs):(\*|[A-Z][A-Za-z0-9]+)$")
# Sending these twice changes nothing, so an "applied" fault on them needs no real request.
_READ_ONLY = frozenset(
    {"GetObject", "HeadObject", "ListObjectsV2", "ListObjectVersions", "GetItem", "Scan", "Query", "GetQueueAttributes"}
)
_NOWHERE = "http://fault-injected.invalid/"
_ORIGINAL_URL = "fault-injector-original-url"
_ERRORS: dict[str, dict[str, tuple[int, str]]] = {
    "throttle": {
        "s3": (503, "SlowDown"),
        "dynamodb": (400, "ThrottlingException"),
        "sqs": (400, "RequestThrottled"),
    },
    "server_error": {
        "s3": (500, "InternalError"),
        "dynamodb": (500, "InternalServerError"),
        "sqs": (500, "InternalError"),
    },
    "access_denied": {
        "s3": (403, "AccessDenied"),
        "dynamodb": (400, "AccessDeniedException"),
        "sqs": (403, "AccessDenied"),
    },
}


class _Trigger(BaseModel):
    """When a rule fires: at chosen matching calls, or with a probability per call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    probability: Annotated[float, Field(gt=0, le=1)] | None = None
    at_calls: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, min_length=1)
    max_injections: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _exactly_one_trigger(self) -> Self:
        if (self.probability is None) == (self.at_calls is None):
            raise ValueError("give exactly one of 'probability' (per call) or 'at_calls' (1-based call numbers)")
        return self


class FaultRule(_Trigger):
    """Make matching calls fail. ``call`` is ``service:Operation`` (``s3:GetObject``) or ``service:*``."""

    call: str
    kind: FaultKind
    applied: bool = False
    bucket: str | None = None
    """For S3 calls: a bucket role (``landing``, ``archive``, ``distribution``) or a bucket name."""
    url_contains: str | None = None
    """Only requests whose URL contains this text (a key, for example)."""
    seconds: Annotated[float, Field(gt=0, le=900)] | None = None
    """For ``slow``: how much longer the answer takes."""

    @field_validator("call")
    @classmethod
    def _call_shape(cls, value: str) -> str:
        if not _CALL.match(value):
            raise ValueError(
                "must be 'service:Operation' with service s3, dynamodb or sqs (e.g. 's3:GetObject', 'sqs:*')"
            )
        return value

    @model_validator(mode="after")
    def _kind_fits_call(self) -> Self:
        if self.kind == "stream_cut" and self.call != "s3:GetObject":
            raise ValueError("kind 'stream_cut' applies to 's3:GetObject' only")
        if self.applied and self.kind not in ("server_error", "connection_reset"):
            raise ValueError("'applied' is meaningful for 'server_error' and 'connection_reset' only")
        if self.bucket is not None and self.service != "s3":
            raise ValueError("'bucket' filters S3 calls only")
        if (self.kind == "slow") != (self.seconds is not None):
            raise ValueError("'seconds' is required for kind 'slow' and meaningful for it only")
        return self

    @property
    def service(self) -> str:
        """The botocore service name: s3, dynamodb or sqs."""
        return self.call.split(":", 1)[0]

    @property
    def operation(self) -> str:
        """The operation name, or ``*``."""
        return self.call.split(":", 1)[1]

    def describe(self) -> str:
        """A short label for reports."""
        where = f" {self.bucket}" if self.bucket else ""
        slow = f" {self.seconds:g} s" if self.seconds is not None else ""
        return f"{self.call}{where} {self.kind}{slow}{' (applied)' if self.applied else ''}"


class KillRule(_Trigger):
    """Kill the invocation that reaches ``point`` (at chosen occurrences, or with a probability)."""

    point: KillPoint

    def describe(self) -> str:
        """A short label for reports."""
        return f"kill {self.point.replace('_', ' ')}"


class InvocationKilled(BaseException):
    """The invocation's process died here; a BaseException so that no ``except Exception`` catches it."""


class KilledInvocationError(RuntimeError):
    """How the emulated Lambda service reports a killed invocation to the event source mapping."""


@dataclass(slots=True)
class ActiveFault:
    """A rule in use, with what it has seen and done so far."""

    rule: FaultRule
    matched: int = 0
    injected: int = 0


@dataclass(slots=True)
class ActiveKill:
    """A kill rule in use, with how often its point was reached and how often it killed."""

    rule: KillRule
    matched: int = 0
    injected: int = 0


@dataclass(frozen=True, slots=True)
class InjectionCount:
    """One line of the fault report: a rule, how often it could have fired and how often it did."""

    what: str
    kind: str
    """The fault kind (``throttle``...), or ``kill`` for a kill rule."""
    matched: int
    injected: int
    applied: bool = False


@dataclass(slots=True)
class _Invocation:
    dead: bool = False


@dataclass(slots=True)
class _State:
    """Everything the hooks share across threads; guarded by ``lock``."""

    rng: random.Random
    lock: threading.Lock = field(default_factory=threading.Lock)
    invocations: dict[int, _Invocation] = field(default_factory=dict)
    killed_bundle_keys: list[str] = field(default_factory=list)
    unconfirmed_writes: dict[str, int] = field(default_factory=dict)


class _RawBody:
    """The minimal raw-stream interface ``AWSResponse`` reads an error body through."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: object) -> Iterator[bytes]:
        yield self._body


class _CutStream:
    """A response body that breaks after ``cut_after`` bytes, like a connection reset mid-transfer."""

    def __init__(self, raw: BaseHTTPResponse, cut_after: int) -> None:
        self._raw = raw
        self._left = cut_after

    def read(self, amt: int | None = None) -> bytes:
        if self._left <= 0:
            raise ProtocolError("Connection broken: connection reset by peer (injected)")
        data = self._raw.read(self._left if amt is None else min(amt, self._left))
        self._left -= len(data)
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._raw, name)


def error_response(service: str, kind: str, url: str) -> AWSResponse:
    """The error a service sends for ``kind``, in its own protocol (S3 XML, DynamoDB/SQS JSON)."""
    status, code = _ERRORS[kind][service]
    headers = HTTPHeaders()
    if service == "s3":
        headers["Content-Type"] = "application/xml"
        body = f"<Error><Code>{code}</Code><Message>injected fault</Message></Error>".encode()
    else:
        headers["Content-Type"] = "application/x-amz-json-1.0"
        body = json.dumps({"__type": code, "message": "injected fault"}).encode()
    return AWSResponse(url, status, headers, _RawBody(body))


def s3_bucket_of(url: str) -> str | None:
    """The bucket an S3 request URL addresses (path style, or virtual-hosted ``bucket.s3...``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ".s3." in host or host.endswith(".s3.amazonaws.com"):
        return host.split(".s3", 1)[0]
    segment = parts.path.lstrip("/").split("/", 1)[0]
    return unquote(segment) or None


def s3_key_of(url: str) -> str:
    """The object key of a path-style S3 request URL."""
    parts = urlsplit(url)
    path = parts.path.lstrip("/")
    host = parts.hostname or ""
    if ".s3." not in host:
        path = path.split("/", 1)[1] if "/" in path else ""
    return unquote(path)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FaultInjector:
    """Holds the rules and their counters; attach it to clients, run invocations inside it.

    ``buckets`` maps roles (``landing``, ``archive``, ``distribution``) to bucket names, for rules that
    filter by role and for the write kills.
    """

    def __init__(
        self,
        faults: Sequence[FaultRule] = (),
        kills: Sequence[KillRule] = (),
        *,
        buckets: Mapping[str, str] | None = None,
        seed: int = 0,
    ) -> None:
        self.faults: list[ActiveFault] = [ActiveFault(rule) for rule in faults]
        self.kills: list[ActiveKill] = [ActiveKill(rule) for rule in kills]
        self.buckets = dict(buckets or {})
        self._state = _State(rng=random.Random(seed))  # reproducible faults, not secrets
        self._local = threading.local()
        self._http: URLLib3Session | None = None

    # -- configuration ---------------------------------------------------------------------------

    def add_fault(self, rule: FaultRule) -> ActiveFault:
        """Add a rule; the returned handle counts its matches and injections."""
        active = ActiveFault(rule)
        self.faults.append(active)
        return active

    def add_kill(self, rule: KillRule) -> ActiveKill:
        """Add a kill rule; the returned handle counts how often it killed."""
        active = ActiveKill(rule)
        self.kills.append(active)
        return active

    def clear(self) -> None:
        """Drop every rule (their handles keep their counts): the outage is over."""
        self.faults = []
        self.kills = []

    def attach(self, client: BaseClient) -> None:
        """Hook into one boto3 client (S3, DynamoDB or SQS)."""
        service = client.meta.service_model.service_name
        # First, so that a fault answers before anything (including in-process moto) sends the request.
        # A before-send handler may return the response to use; the stubs only know handlers returning None.
        client.meta.events.register_first(f"before-send.{service}", self._before_send)  # type: ignore[arg-type]
        client.meta.events.register(f"after-call.{service}", self._after_call)

    # -- invocations -----------------------------------------------------------------------------

    @contextmanager
    def invocation(self) -> Iterator[None]:
        """Run one handler invocation on this thread; a kill ends it and every call it makes later."""
        current = _Invocation()
        ident = threading.get_ident()
        self._local.invocation = current
        with self._state.lock:
            self._state.invocations[ident] = current
        try:
            yield
        finally:
            self._local.invocation = None
            with self._state.lock:
                self._state.invocations.pop(ident, None)

    def wrap_handler(self, handler: Handler, *, report_as_error: bool = True) -> Handler:
        """A handler that runs each invocation inside :meth:`invocation`.

        With ``report_as_error`` a kill comes out as :class:`KilledInvocationError`, which an event
        source mapping treats like Lambda treats a crashed invocation: the whole batch comes back.
        """

        def invoke(event: dict[str, Any], context: object) -> object:
            with self.invocation():
                try:
                    return handler(event, context)
                except InvocationKilled as exc:
                    if not report_as_error:
                        raise
                    raise KilledInvocationError(str(exc)) from None

        return invoke

    # -- results ---------------------------------------------------------------------------------

    def counts(self) -> list[InjectionCount]:
        """What every rule matched and injected, faults first, then kills."""
        with self._state.lock:
            lines = [
                InjectionCount(a.rule.describe(), a.rule.kind, a.matched, a.injected, a.rule.applied)
                for a in self.faults
            ]
            lines += [InjectionCount(k.rule.describe(), "kill", k.matched, k.injected) for k in self.kills]
        return lines

    @property
    def killed_bundle_keys(self) -> list[str]:
        """Bundles written to Distribution by invocations killed before they could commit."""
        with self._state.lock:
            return list(self._state.killed_bundle_keys)

    @property
    def unconfirmed_writes(self) -> list[str]:
        """Distribution keys written by a request whose answer was lost, never confirmed by a later attempt.

        The writer believes these failed although the bundle is there: the same window for a duplicate
        as a kill between the Distribution write and the commit.
        """
        with self._state.lock:
            return sorted(self._state.unconfirmed_writes)

    def close(self) -> None:
        """Release the connection pool used to deliver ``applied`` requests."""
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- hooks -----------------------------------------------------------------------------------

    def _before_send(self, request: AWSPreparedRequest, **kwargs: object) -> AWSResponse | None:
        _, service, operation = str(kwargs["event_name"]).split(".")[:3]
        self._die_if_killed()
        context: dict[str, object] = request.context  # type: ignore[attr-defined]  # botocore >= 1.42
        original = context.pop(_ORIGINAL_URL, None)
        if isinstance(original, str):  # the SDK retries with the same request object: aim it back
            request.url = original
        url = str(request.url)
        if service == "s3" and operation == "GetObject":
            self._maybe_kill("during_fetch", url)
        for active in self.faults:
            rule = active.rule
            if rule.kind == "stream_cut" or not self._matches(rule, service, operation, url):
                continue
            if not self._fires(active):
                continue
            if rule.kind == "slow":
                self._slow_down(rule.seconds or 0.0, url)
                continue
            return self._fail(rule, service, operation, request)
        return None

    @staticmethod
    def _slow_down(seconds: float, url: str) -> None:
        """Answer ``seconds`` later; inside an invocation, a read timeout at its deadline if that comes first."""
        budget = deadline_budget()
        if budget is None or seconds <= budget:
            time.sleep(seconds)
            return
        time.sleep(max(0.0, budget))
        raise ReadTimeoutError(endpoint_url=url)

    def _after_call(
        self, http_response: AWSResponse, parsed: dict[str, Any], model: OperationModel, **kwargs: object
    ) -> None:
        service = str(kwargs["event_name"]).split(".")[1]
        operation = str(model.name)
        url = str(http_response.url or "")
        if http_response.status_code >= 300:
            return
        if service == "s3" and operation == "GetObject":
            self._maybe_cut(parsed, url)
        elif service == "s3" and operation == "PutObject":
            bucket = s3_bucket_of(url)
            if bucket is not None and bucket == self.buckets.get("distribution"):
                with self._state.lock:
                    self._state.unconfirmed_writes.pop(s3_key_of(url), None)
                self._maybe_kill("after_distribution_write", s3_key_of(url))
            elif bucket is not None and bucket == self.buckets.get("archive"):
                self._maybe_kill("after_archive_write", s3_key_of(url))
        elif service == "dynamodb" and operation == "TransactWriteItems":
            self._maybe_kill("after_claim", url)

    # -- internals -------------------------------------------------------------------------------

    def _matches(self, rule: FaultRule, service: str, operation: str, url: str) -> bool:
        if rule.service != service or rule.operation not in ("*", operation):
            return False
        if rule.bucket is not None and s3_bucket_of(url) != self.buckets.get(rule.bucket, rule.bucket):
            return False
        return rule.url_contains is None or rule.url_contains in url

    def _fires(self, active: ActiveFault | ActiveKill) -> bool:
        rule = active.rule
        with self._state.lock:
            active.matched += 1
            if rule.max_injections is not None and active.injected >= rule.max_injections:
                return False
            if rule.at_calls is not None:
                fire = active.matched in rule.at_calls
            else:
                fire = self._state.rng.random() < (rule.probability or 0.0)
            if fire:
                active.injected += 1
            return fire

    def _fail(self, rule: FaultRule, service: str, operation: str, request: AWSPreparedRequest) -> AWSResponse:
        url = str(request.url)
        if rule.applied:
            self._deliver(request, service, operation)
        if rule.kind == "connection_reset":
            raise ConnectionClosedError(endpoint_url=url)
        if not rule.applied:
            # botocore runs every before-send handler and keeps the first answer: an in-process emulator
            # (moto's mock) registered after us would still execute the request. Point it nowhere, so an
            # injected failure that must not take effect never does.
            context: dict[str, object] = request.context  # type: ignore[attr-defined]
            context[_ORIGINAL_URL] = url
            request.url = _NOWHERE
        return error_response(service, rule.kind, url)

    def _deliver(self, request: AWSPreparedRequest, service: str, operation: str) -> None:
        """Let the request take effect (its answer will be lost); loopback emulators only."""
        url = str(request.url)
        if operation in _READ_ONLY or not _is_loopback(url):
            return
        if self._http is None:
            self._http = URLLib3Session(max_pool_connections=16)
        try:
            response = self._http.send(request)
            _ = response.content
        except Exception:  # the request did not get through: then it simply did not take effect
            log.debug("delivering an applied fault's request failed", exc_info=True)
            return
        finally:
            request.reset_stream()
        if service == "s3" and operation == "PutObject" and s3_bucket_of(url) == self.buckets.get("distribution"):
            with self._state.lock:
                key = s3_key_of(url)
                self._state.unconfirmed_writes[key] = self._state.unconfirmed_writes.get(key, 0) + 1

    def _die_if_killed(self) -> None:
        current: _Invocation | None = getattr(self._local, "invocation", None)
        if current is not None and current.dead:
            raise InvocationKilled("the invocation was killed earlier; its process is gone")

    def _maybe_kill(self, point: str, detail: str) -> None:
        for active in self.kills:
            if active.rule.point != point or not self._fires(active):
                continue
            current: _Invocation | None = getattr(self._local, "invocation", None)
            with self._state.lock:
                # A fetch thread belongs to no invocation of its own: then every running one dies.
                victims = [current] if current is not None else list(self._state.invocations.values())
                for victim in victims:
                    victim.dead = True
                if point == "after_distribution_write":
                    self._state.killed_bundle_keys.append(detail)
            raise InvocationKilled(f"killed {point.replace('_', ' ')}")

    def _maybe_cut(self, parsed: dict[str, Any], url: str) -> None:
        body = parsed.get("Body")
        length = int(parsed.get("ContentLength") or 0)
        if body is None or length < 2:
            return
        for active in self.faults:
            rule = active.rule
            if rule.kind != "stream_cut" or not self._matches(rule, "s3", "GetObject", url):
                continue
            if self._fires(active):
                with self._state.lock:
                    cut_after = self._state.rng.randint(1, length - 1)
                # botocore's StreamingBody reads through this private attribute; wrapping it breaks the
                # body exactly where a reset connection would.
                body._raw_stream = _CutStream(body._raw_stream, cut_after)
                return


@contextmanager
def attached_to_handler(injector: FaultInjector) -> Iterator[None]:
    """Attach ``injector`` to the clients the Lambda handler builds for itself, for the block.

    The handler creates its clients once per process through ``app.make_clients`` and caches them;
    this wraps that factory and empties the cache on entry and exit, so the block's invocations use
    instrumented clients and later ones do not.
    """
    from data_aggregator import app  # noqa: PLC0415 - the handler reads the environment on import

    real: Callable[..., AwsClients] = app.make_clients  # type: ignore[attr-defined]

    def instrumented(**kwargs: int) -> AwsClients:
        clients = real(**kwargs)
        injector.attach(clients.s3)
        injector.attach(clients.dynamodb)
        injector.attach(clients.sqs)
        return clients

    app.make_clients = instrumented  # type: ignore[attr-defined]
    app._clients.cache_clear()
    try:
        yield
    finally:
        app.make_clients = real  # type: ignore[attr-defined]
        app._clients.cache_clear()
