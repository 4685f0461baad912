"""The fault injector on real boto3 clients (in-process moto): what fires when, what the caller sees, kills."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ResponseStreamingError
from moto import mock_aws

from e2e_tests.faults import FaultInjector, FaultRule, InvocationKilled, KilledInvocationError, KillRule


@pytest.fixture
def aws(no_endpoint_override: None) -> Iterator[None]:
    with mock_aws():
        yield


def client(service: str, injector: FaultInjector, attempts: int = 1) -> Any:
    retries = Config(retries={"mode": "standard", "total_max_attempts": attempts})
    made = boto3.client(service, config=retries)  # type: ignore[call-overload]  # any of three services
    injector.attach(made)
    return made


def s3_with(injector: FaultInjector, *buckets: str, attempts: int = 1) -> Any:
    s3 = client("s3", injector, attempts)
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket)
    return s3


def test_at_calls_counts_every_attempt_and_retries_absorb_the_faults(aws: None) -> None:
    injector = FaultInjector()
    rule = injector.add_fault(FaultRule(call="s3:GetObject", kind="server_error", at_calls=[1, 2]))
    s3 = s3_with(injector, "bucket", attempts=5)
    s3.put_object(Bucket="bucket", Key="k", Body=b"data")
    assert s3.get_object(Bucket="bucket", Key="k")["Body"].read() == b"data"
    assert (rule.matched, rule.injected) == (3, 2)
    assert injector.counts()[0].what == "s3:GetObject server_error"


@pytest.mark.parametrize(
    ("service", "kind", "code", "status"),
    [
        ("s3", "throttle", "SlowDown", 503),
        ("s3", "server_error", "InternalError", 500),
        ("dynamodb", "throttle", "ThrottlingException", 400),
        ("dynamodb", "server_error", "InternalServerError", 500),
        ("sqs", "throttle", "RequestThrottled", 400),
        ("sqs", "server_error", "InternalError", 500),
    ],
)
def test_each_service_answers_in_its_own_protocol(aws: None, service: str, kind: str, code: str, status: int) -> None:
    injector = FaultInjector([FaultRule(call=f"{service}:*", kind=kind, at_calls=[1])])  # type: ignore[arg-type]
    made = client(service, injector)
    call: Callable[[], object] = getattr(
        made, {"s3": "list_buckets", "dynamodb": "list_tables"}.get(service, "list_queues")
    )
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    call()  # the second call is not faulted


def test_a_connection_reset_never_reaches_the_service(aws: None) -> None:
    injector = FaultInjector([FaultRule(call="s3:PutObject", kind="connection_reset", at_calls=[1])])
    s3 = s3_with(injector, "bucket")
    with pytest.raises(ConnectionClosedError):
        s3.put_object(Bucket="bucket", Key="k", Body=b"x")
    assert s3.list_objects_v2(Bucket="bucket")["KeyCount"] == 0


def test_probability_is_reproducible_for_a_seed_and_capped_by_max_injections(aws: None) -> None:
    def pattern(seed: int) -> list[bool]:
        injector = FaultInjector([FaultRule(call="s3:ListBuckets", kind="throttle", probability=0.5)], seed=seed)
        s3 = client("s3", injector)
        outcome = []
        for _ in range(40):
            try:
                s3.list_buckets()
                outcome.append(False)
            except ClientError:
                outcome.append(True)
        return outcome

    assert pattern(3) == pattern(3)
    assert pattern(3) != pattern(4)
    assert 5 < sum(pattern(3)) < 35

    capped = FaultInjector()
    rule = capped.add_fault(FaultRule(call="s3:ListBuckets", kind="throttle", probability=1.0, max_injections=2))
    s3 = client("s3", capped)
    for _ in range(2):
        with pytest.raises(ClientError):
            s3.list_buckets()
    s3.list_buckets()
    assert (rule.matched, rule.injected) == (3, 2)


def test_bucket_roles_and_url_filters_pick_the_calls(aws: None) -> None:
    injector = FaultInjector(buckets={"archive": "arch-bucket", "distribution": "dist-bucket"})
    by_role = injector.add_fault(FaultRule(call="s3:PutObject", kind="throttle", bucket="distribution", at_calls=[1]))
    by_url = injector.add_fault(FaultRule(call="s3:GetObject", kind="throttle", url_contains="/special", at_calls=[1]))
    s3 = s3_with(injector, "arch-bucket", "dist-bucket")
    s3.put_object(Bucket="arch-bucket", Key="ordinary", Body=b"x")
    s3.put_object(Bucket="arch-bucket", Key="special", Body=b"x")
    with pytest.raises(ClientError):
        s3.put_object(Bucket="dist-bucket", Key="k", Body=b"x")
    s3.get_object(Bucket="arch-bucket", Key="ordinary")
    with pytest.raises(ClientError):
        s3.get_object(Bucket="arch-bucket", Key="special")
    assert (by_role.matched, by_url.matched) == (1, 1)


def test_a_stream_cut_breaks_the_body_part_way(aws: None) -> None:
    injector = FaultInjector([FaultRule(call="s3:GetObject", kind="stream_cut", at_calls=[1])], seed=2)
    s3 = s3_with(injector, "bucket")
    s3.put_object(Bucket="bucket", Key="k", Body=b"z" * 10_000)
    body = s3.get_object(Bucket="bucket", Key="k")["Body"]
    received: list[bytes] = []

    def read_all() -> None:
        received.extend(body.iter_chunks(1000))

    with pytest.raises(ResponseStreamingError):
        read_all()
    assert 0 < sum(map(len, received)) < 10_000
    assert s3.get_object(Bucket="bucket", Key="k")["Body"].read() == b"z" * 10_000  # the next read is whole
    s3.put_object(Bucket="bucket", Key="empty", Body=b"")
    injector.add_fault(FaultRule(call="s3:GetObject", kind="stream_cut", probability=1.0))
    assert s3.get_object(Bucket="bucket", Key="empty")["Body"].read() == b""  # nothing to cut


def test_a_kill_ends_the_invocation_and_every_later_call_of_it(aws: None) -> None:
    injector = FaultInjector(
        kills=[KillRule(point="after_distribution_write", at_calls=[1])],
        buckets={"archive": "arch-bucket", "distribution": "dist-bucket"},
    )
    s3 = s3_with(injector, "arch-bucket", "dist-bucket")
    with injector.invocation():
        s3.put_object(Bucket="arch-bucket", Key="bundles/b1", Body=b"x")
        with pytest.raises(InvocationKilled, match="killed after distribution write"):
            s3.put_object(Bucket="dist-bucket", Key="bundles/b1", Body=b"x")
        with pytest.raises(InvocationKilled, match="was killed earlier"):
            s3.list_buckets()
    assert injector.killed_bundle_keys == ["bundles/b1"]
    assert s3.list_objects_v2(Bucket="dist-bucket")["KeyCount"] == 1  # written, then the process died
    assert s3.list_buckets()["Buckets"]  # the next invocation lives


def test_a_kill_in_a_fetch_thread_ends_the_invocation_it_serves(aws: None) -> None:
    injector = FaultInjector(kills=[KillRule(point="during_fetch", at_calls=[1])])
    s3 = s3_with(injector, "bucket")
    s3.put_object(Bucket="bucket", Key="k", Body=b"x")
    died: list[BaseException] = []

    def fetch() -> None:
        try:
            s3.get_object(Bucket="bucket", Key="k")
        except InvocationKilled as exc:
            died.append(exc)

    def handler(_event: dict[str, Any], _context: object) -> None:
        worker = threading.Thread(target=fetch)
        worker.start()
        worker.join()
        s3.list_buckets()  # the handler thread's next call finds its process gone

    with pytest.raises(KilledInvocationError, match="was killed earlier"):
        injector.wrap_handler(handler)({}, None)
    assert len(died) == 1


def test_a_kill_after_claiming_comes_out_of_the_handler_as_the_process_dying(aws: None) -> None:
    injector = FaultInjector(kills=[KillRule(point="after_claim", at_calls=[1])])
    dynamodb = client("dynamodb", injector)
    dynamodb.create_table(
        TableName="claims",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    def claim(_event: dict[str, Any], _context: object) -> None:
        try:
            dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": "claims", "Item": {"k": {"S": "a"}}}}])
        except Exception:  # what the product's own handlers catch: a kill must go through them
            pytest.fail("a kill must not be catchable as an Exception")

    with pytest.raises(InvocationKilled, match="killed after claim"):
        injector.wrap_handler(claim, report_as_error=False)({}, None)
    assert dynamodb.scan(TableName="claims")["Count"] == 1  # the claim was written before the process died
