"""Create the dev environment's stateful resources on an endpoint (the embedded emulator).

This mirrors what the Terraform dev environment defines, at the level the application can observe:
three buckets (Archive versioned), a queue with a dead-letter queue and redrive policy, the
idempotency table with TTL, and the Landing → queue notification. Every step tolerates resources that
already exist, so provisioning twice against the same endpoint is harmless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from data_aggregator.sandbox.emulator import DEFAULT_REGION, Clients

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FOUR_DAYS = 4 * 24 * 3600
FOURTEEN_DAYS = 14 * 24 * 3600


@dataclass(frozen=True, slots=True)
class ResourceNames:
    """Names of one environment's resources, derived from a project and environment name."""

    landing: str
    archive: str
    distribution: str
    queue: str
    dead_letter_queue: str
    table: str

    @classmethod
    def for_environment(cls, environment: str = "dev", project: str = "data-aggregator") -> ResourceNames:
        """``<project>-<env>-<role>`` for every resource."""
        base = f"{project}-{environment}"
        return cls(
            landing=f"{base}-landing",
            archive=f"{base}-archive",
            distribution=f"{base}-distribution",
            queue=f"{base}-events",
            dead_letter_queue=f"{base}-events-dlq",
            table=f"{base}-idempotency",
        )


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Queue behaviour; visibility timeout must exceed the function timeout and the claim lease."""

    visibility_timeout: int = 30
    max_receive_count: int = 3
    retention_seconds: int = FOUR_DAYS
    dlq_retention_seconds: int = FOURTEEN_DAYS

    def __post_init__(self) -> None:
        if not 0 <= self.visibility_timeout <= 43_200:
            raise ValueError(f"visibility timeout must be 0..43200 s, got {self.visibility_timeout}")
        if not 1 <= self.max_receive_count <= 1000:
            raise ValueError(f"max receive count must be 1..1000, got {self.max_receive_count}")


@dataclass(frozen=True, slots=True)
class Environment:
    """A provisioned environment: names plus the queue URLs and ARNs the ESM needs."""

    names: ResourceNames
    region: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    settings: QueueSettings

    def handler_environment(self) -> dict[str, str]:
        """The required handler variables (SPEC §3) for this environment."""
        return {
            "ARCHIVE_BUCKET_NAME": self.names.archive,
            "DISTRIBUTION_BUCKET_NAME": self.names.distribution,
            "IDEMPOTENCY_TABLE_NAME": self.names.table,
        }


def _create_bucket(s3: S3Client, name: str, region: str) -> None:
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def provision(
    clients: Clients,
    names: ResourceNames | None = None,
    settings: QueueSettings | None = None,
    region: str = DEFAULT_REGION,
) -> Environment:
    """Create (or confirm) every resource and return where they are."""
    names = names or ResourceNames.for_environment()
    settings = settings or QueueSettings()
    s3, sqs, dynamodb = clients.s3, clients.sqs, clients.dynamodb

    for bucket in (names.landing, names.archive, names.distribution):
        _create_bucket(s3, bucket, region)
    for bucket in (names.landing, names.archive, names.distribution):  # as the Terraform baseline does
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    dlq_url = sqs.create_queue(
        QueueName=names.dead_letter_queue,
        Attributes={"MessageRetentionPeriod": str(settings.dlq_retention_seconds)},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=names.queue)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    landing_arn = f"arn:aws:s3:::{names.landing}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "LandingNotifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": landing_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={
            "VisibilityTimeout": str(settings.visibility_timeout),
            "MessageRetentionPeriod": str(settings.retention_seconds),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.max_receive_count)}
            ),
            "Policy": json.dumps(policy),
        },
    )

    try:
        dynamodb.create_table(
            TableName=names.table,
            AttributeDefinitions=[{"AttributeName": "ObjectID", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "ObjectID", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=names.table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    ttl = dynamodb.describe_time_to_live(TableName=names.table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):  # enabling twice is an error
        dynamodb.update_time_to_live(
            TableName=names.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
        )

    s3.put_bucket_notification_configuration(
        Bucket=names.landing,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return Environment(
        names=names,
        region=region,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dlq_url=dlq_url,
        dlq_arn=dlq_arn,
        settings=settings,
    )


def queue_depth(clients: Clients, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) message counts, as CloudWatch would report them."""
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])
