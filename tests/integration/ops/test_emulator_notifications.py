"""moto's S3 notifications describe an object as S3's do: with its version and a sequencer.

Without the version, a duplicate notification shaped like S3's (which names the version) would count
as another object and be bundled twice; LocalStack already sends both fields, so this keeps the two
backends' events alike.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from data_aggregator.events import parse_message
from data_aggregator.sandbox.emulator import Clients
from data_aggregator.sandbox.harness import s3_event_body
from data_aggregator.sandbox.provision import QueueSettings, ResourceNames, provision
from data_aggregator.sandbox.uploader import UploadedFile
from tests.integration.ops.conftest import unique


def test_notifications_carry_the_version_and_distinct_sequencers(clients: Clients) -> None:
    environment = provision(
        clients,
        ResourceNames.for_environment(unique("shape")),
        QueueSettings(visibility_timeout=30, max_receive_count=3),
    )
    landing = environment.names.landing
    uploads = []
    for body in (b"first", b"second"):  # one key written twice: two versions
        answer = clients.s3.put_object(Bucket=landing, Key="in/a b+c.json", Body=body)
        uploads.append(
            UploadedFile(
                key="in/a b+c.json",
                size=len(body),
                sha256=hashlib.sha256(body).hexdigest(),
                etag=answer["ETag"].strip('"'),
                version_id=answer["VersionId"],
                uploaded_at=0.0,
            )
        )
    received: list[dict[str, object]] = []
    for _ in range(5):
        messages = clients.sqs.receive_message(QueueUrl=environment.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        received += [record for m in messages for record in json.loads(m["Body"]).get("Records", [])]
        if len(received) == 2:
            break
    assert len(received) == 2
    objects = [record["s3"]["object"] for record in received]  # type: ignore[index]
    assert {obj["versionId"] for obj in objects} == {u.version_id for u in uploads}
    assert len({obj["sequencer"] for obj in objects}) == 2
    # A re-announcement built from the upload names the same object as the emulator's own event.
    own = {parse_message(json.dumps({"Records": [record]})).objects[0].object_id for record in received}
    when = datetime.now(UTC)
    again = {parse_message(s3_event_body(u, landing, "us-east-1", when)).objects[0].object_id for u in uploads}
    assert own == again
