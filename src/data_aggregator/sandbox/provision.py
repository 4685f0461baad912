"""Create the dev environment's stateful resources on an endpoint (the embedded emulator).

This mirrors what the Terraform dev environment defines, at the level the application can observe:
three buckets (Archive versioned), a queue with a dead-letter queue and redrive policy, the
idempotency table with TTL, and the Landing → queue notification. Every step tolerates resources that
already exist, so provisioning twice against the same endpoint is harmless.

The notification can take one of three paths, as deployments route S3 events (the handler reads all
three shapes): ``direct`` (S3 → SQS, what Terraform builds), ``sns`` (S3 → SNS topic → SQS
subscription without raw message delivery: every body is an SNS envelope) and ``eventbridge`` (S3 →
EventBridge → a rule for the bucket's "Object Created" events → SQS: every body is an EventBridge
event with the key not URL-encoded). All three are delivered by the emulator's own services.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from botocore.exceptions import ClientError

from data_aggregator.sandbox.emulator import DEFAULT_REGION, Clients

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FOUR_DAYS = 4 * 24 * 3600
FOURTEEN_DAYS = 14 * 24 * 3600

NotificationPath = Literal["direct", "sns", "eventbridge"]
NOTIFICATION_PATHS: tuple[NotificationPath, ...] = get_args(NotificationPath)


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
    notification_path: NotificationPath = "direct"
    topic_arn: str | None = None
    """The SNS topic between Landing and the queue (``sns`` path only)."""
    rule_arn: str | None = None
    """The EventBridge rule between Landing and the queue (``eventbridge`` path only)."""

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
    *,
    notification_path: NotificationPath = "direct",
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
    route = _NotificationRoute(clients, names, queue_arn, notification_path)
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={
            "VisibilityTimeout": str(settings.visibility_timeout),
            "MessageRetentionPeriod": str(settings.retention_seconds),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.max_receive_count)}
            ),
            "Policy": json.dumps(route.queue_policy()),
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

    route.connect()  # last: S3 sends its test event now, and the queue must be ready for it
    return Environment(
        names=names,
        region=region,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dlq_url=dlq_url,
        dlq_arn=dlq_arn,
        settings=settings,
        notification_path=notification_path,
        topic_arn=route.topic_arn,
        rule_arn=route.rule_arn,
    )


class _NotificationRoute:
    """Landing's events on their way to the queue: the resources in between and who may send to whom.

    The topic and the rule are created first, because the queue's policy names them; the bucket's
    notification configuration is written last, when every hop exists (real S3 checks the destination
    when the configuration is written).
    """

    def __init__(self, clients: Clients, names: ResourceNames, queue_arn: str, path: NotificationPath) -> None:
        if path not in NOTIFICATION_PATHS:
            raise ValueError(f"notification path must be one of {', '.join(NOTIFICATION_PATHS)}, got {path!r}")
        self.clients = clients
        self.names = names
        self.queue_arn = queue_arn
        self.path = path
        self.landing_arn = f"arn:aws:s3:::{names.landing}"
        self.topic_arn: str | None = None
        self.rule_name = f"{names.landing}-object-created"
        self.rule_arn: str | None = None
        if path == "sns":
            self._sns: Any = clients.client_for("sns")
            self.topic_arn = self._sns.create_topic(Name=f"{names.landing}-events")["TopicArn"]
            topic_policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "LandingNotifications",
                        "Effect": "Allow",
                        "Principal": {"Service": "s3.amazonaws.com"},
                        "Action": "SNS:Publish",
                        "Resource": self.topic_arn,
                        "Condition": {"ArnEquals": {"aws:SourceArn": self.landing_arn}},
                    }
                ],
            }
            self._sns.set_topic_attributes(
                TopicArn=self.topic_arn, AttributeName="Policy", AttributeValue=json.dumps(topic_policy)
            )
        elif path == "eventbridge":
            self._events: Any = clients.client_for("events")
            pattern = {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [names.landing]}},
            }
            self.rule_arn = self._events.put_rule(
                Name=self.rule_name, EventPattern=json.dumps(pattern), State="ENABLED"
            )["RuleArn"]

    def queue_policy(self) -> dict[str, Any]:
        """Only the hop just before the queue may send to it, and only for this Landing bucket."""
        principal, source = {
            "direct": ("s3.amazonaws.com", self.landing_arn),
            "sns": ("sns.amazonaws.com", self.topic_arn),
            "eventbridge": ("events.amazonaws.com", self.rule_arn),
        }[self.path]
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "LandingNotifications",
                    "Effect": "Allow",
                    "Principal": {"Service": principal},
                    "Action": "sqs:SendMessage",
                    "Resource": self.queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": source}},
                }
            ],
        }

    def connect(self) -> None:
        """Subscribe the queue (or target it) and point Landing's notifications at the first hop."""
        s3, landing = self.clients.s3, self.names.landing
        if self.path == "direct":
            s3.put_bucket_notification_configuration(
                Bucket=landing,
                NotificationConfiguration={
                    "QueueConfigurations": [{"QueueArn": self.queue_arn, "Events": ["s3:ObjectCreated:*"]}]
                },
            )
        elif self.path == "sns":
            # Raw delivery off, on purpose: the queue receives SNS envelopes, the shape under test.
            self._sns.subscribe(
                TopicArn=self.topic_arn,
                Protocol="sqs",
                Endpoint=self.queue_arn,
                Attributes={"RawMessageDelivery": "false"},
                ReturnSubscriptionArn=True,
            )
            s3.put_bucket_notification_configuration(
                Bucket=landing,
                NotificationConfiguration={
                    "TopicConfigurations": [{"TopicArn": str(self.topic_arn), "Events": ["s3:ObjectCreated:*"]}]
                },
            )
        else:
            self._events.put_targets(Rule=self.rule_name, Targets=[{"Id": "landing-queue", "Arn": self.queue_arn}])
            s3.put_bucket_notification_configuration(
                Bucket=landing, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )


def queue_depth(clients: Clients, queue_url: str) -> tuple[int, int]:
    """(visible, waiting) message counts, as CloudWatch would report them.

    Waiting counts both the messages in flight (received, not yet deleted or visible again) and the
    delayed ones (deferred messages that come back later): neither can be received now, and both
    still have to be processed.
    """
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    waiting = int(attributes["ApproximateNumberOfMessagesNotVisible"]) + int(
        attributes.get("ApproximateNumberOfMessagesDelayed", "0")
    )
    return int(attributes["ApproximateNumberOfMessages"]), waiting
