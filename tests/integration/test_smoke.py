from tests.integration.conftest import AwsWorld, invoke
from tests.support import ARCHIVE, DISTRIBUTION, notification, read_bundle, sqs_event, sqs_record


def test_smoke(aws: AwsWorld) -> None:
    rec = aws.upload("a b/c.txt", b"hello")
    resp = invoke(sqs_event(sqs_record(notification(rec))))
    assert resp == {"batchItemFailures": []}
    keys = aws.bundle_keys(DISTRIBUTION)
    assert keys == aws.bundle_keys(ARCHIVE)
    b = read_bundle(aws.read(DISTRIBUTION, keys[0]))
    print(b.order, b.manifest)
