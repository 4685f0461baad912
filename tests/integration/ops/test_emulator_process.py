"""The emulator in a child process: DynamoDB is serialised, its cheap snapshots still roll back, SQS keeps time.

Also where "applied" faults are proven: against a loopback server the request really takes effect
before the injected error comes back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from data_aggregator.sandbox.emulator import FAKE_CREDENTIALS, Clients, EmulatorProcess
from e2e_tests.faults import FaultInjector, FaultRule
from e2e_tests.memory import status_kib


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with EmulatorProcess(log_path=log) as running:
        yield running


@pytest.fixture
def table(child: EmulatorProcess) -> tuple[Clients, str]:
    clients = child.clients()
    name = f"claims-{time.monotonic_ns()}"
    clients.dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "ObjectID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "ObjectID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return clients, name


def claim(clients: Clients, table: str, ids: list[str], owner: str) -> bool:
    try:
        clients.dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"ObjectID": {"S": i}, "owner": {"S": owner}},
                        "ConditionExpression": "attribute_not_exists(ObjectID)",
                    }
                }
                for i in ids
            ]
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        return False
    return True


def owners(clients: Clients, table: str) -> dict[str, str]:
    items = clients.dynamodb.scan(TableName=table)["Items"]
    return {item["ObjectID"]["S"]: item["owner"]["S"] for item in items}


def test_a_cancelled_transaction_leaves_the_table_as_it_was(table: tuple[Clients, str]) -> None:
    clients, name = table
    assert claim(clients, name, [f"old-{i}" for i in range(50)], "first")
    assert not claim(clients, name, ["new-1", "new-2", "old-7", "new-3"], "second")  # old-7 is taken
    assert owners(clients, name) == {f"old-{i}": "first" for i in range(50)}
    assert claim(clients, name, ["new-1", "new-2", "new-3"], "second")
    assert len(owners(clients, name)) == 53


def test_concurrent_claims_have_exactly_one_winner_per_object(table: tuple[Clients, str]) -> None:
    clients, name = table
    ids = [f"obj-{i}" for i in range(20)]
    wins: dict[str, list[str]] = {}

    def contender(owner: str) -> None:
        mine = threading.local()
        mine.clients = Clients.for_endpoint(clients.s3.meta.endpoint_url)
        for start in range(0, len(ids), 2):  # overlapping pairs, in a different order per contender
            pair = ids[start : start + 2][:: 1 if int(owner[-1]) % 2 else -1]
            if claim(mine.clients, name, pair, owner):
                wins.setdefault(owner, []).extend(pair)

    threads = [threading.Thread(target=contender, args=(f"c{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [object_id for pairs in wins.values() for object_id in pairs]
    assert sorted(won) == sorted(ids)  # every object claimed, none twice
    table_owners = owners(clients, name)
    assert all(table_owners[object_id] == owner for owner, pairs in wins.items() for object_id in pairs)


def test_sqs_visibility_still_follows_the_clock(child: EmulatorProcess) -> None:
    clients = child.clients()
    url = clients.sqs.create_queue(QueueName=f"q-{time.monotonic_ns()}")["QueueUrl"]
    clients.sqs.send_message(QueueUrl=url, MessageBody="hello")
    assert len(clients.sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"]) == 1
    assert "Messages" not in clients.sqs.receive_message(QueueUrl=url)
    time.sleep(1.2)
    assert clients.sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "hello"


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
def test_an_applied_fault_takes_effect_before_its_error(child: EmulatorProcess, applied: bool) -> None:
    clients = child.clients()
    bucket = f"faults-{'a' if applied else 'n'}-{time.monotonic_ns()}"
    clients.s3.create_bucket(Bucket=bucket)
    injector = FaultInjector(buckets={"distribution": bucket})
    rule = injector.add_fault(FaultRule(call="s3:PutObject", kind="server_error", applied=applied, at_calls=[1]))
    faulty = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=child.region,
    ).client("s3", endpoint_url=child.endpoint_url, config=Config(retries={"total_max_attempts": 1}))
    injector.attach(faulty)
    with pytest.raises(ClientError, match="InternalError"):
        faulty.put_object(Bucket=bucket, Key="bundles/k.tar.gz", Body=b"payload")
    assert rule.injected == 1
    stored = clients.s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    assert stored == (1 if applied else 0)
    # A write whose answer was lost and never confirmed is remembered: it may leave a duplicate behind.
    assert injector.unconfirmed_writes == (["bundles/k.tar.gz"] if applied else [])
    injector.close()


def test_the_child_is_a_separate_process_that_stops(tmp_path: Path) -> None:
    emulator = EmulatorProcess(log_path=tmp_path / "emulator.log").start()
    pid = emulator.pid
    assert pid is not None
    assert status_kib("VmRSS", pid) is not None
    emulator.stop()
    emulator.stop()  # idempotent
    assert emulator.pid is None
    deadline = time.monotonic() + 5
    while status_kib("VmRSS", pid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status_kib("VmRSS", pid) is None
