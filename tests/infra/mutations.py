"""Deliberate breakages of infra/ that the plan tests must catch (the mutation check).

Each mutation replaces one exact piece of text in a copy of infra/ and runs the plan tests of the
component it affects; a mutation the tests let through is a hole in them. The replaced text must be
present exactly once, so a refactoring that moves it makes the check fail loudly instead of passing
vacuously.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.infra import tfharness


@dataclass(frozen=True)
class Mutation:
    name: str
    description: str
    path: str  # relative to infra/
    old: str
    new: str
    component: str
    env: str = "prod"


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "alarm-metric-renamed",
        "alarm metric renamed (DistributionObjectCount -> DistributionObjects)",
        "components/04-observability/main.tf",
        'metric      = "DistributionObjectCount"',
        'metric      = "DistributionObjects"',
        "04-observability",
    ),
    Mutation(
        "age-alarm-not-breaching",
        "Distribution age alarm switched to notBreaching",
        "components/04-observability/main.tf",
        'missing = "breaching"',
        'missing = "notBreaching"',
        "04-observability",
    ),
    Mutation(
        "kms-source-arn-removed",
        "KMS aws:SourceArn condition removed from the pipeline key",
        "components/02-stateful-resources/kms.tf",
        '          ArnLike      = { "aws:SourceArn" = '
        "local.kms_event_publishers[var.notification_path].source_arns }\n",
        "",
        "02-stateful-resources",
    ),
    Mutation(
        "landing-noncurrent-3650",
        "Landing noncurrent retention raised to 3650 days",
        "components/02-stateful-resources/buckets.tf",
        "noncurrent_days = var.landing_noncurrent_days",
        "noncurrent_days = 3650",
        "02-stateful-resources",
    ),
    Mutation(
        "s3-endpoint-delete",
        "S3 endpoint policy widened with s3:DeleteObject",
        "components/01-network/main.tf",
        '      "s3:AbortMultipartUpload",\n    ]\n    resources = ["*"]',
        '      "s3:AbortMultipartUpload",\n      "s3:DeleteObject",\n    ]\n    resources = ["*"]',
        "01-network",
    ),
    Mutation(
        "uploader-tls-removed",
        "uploader's TLS condition removed",
        "components/02-stateful-resources/roles.tf",
        '    condition {\n      test     = "Bool"\n      variable = "aws:SecureTransport"\n'
        '      values   = ["true"]\n    }\n  }\n\n'
        "  # SSE-KMS uploads",
        "  }\n\n  # SSE-KMS uploads",
        "02-stateful-resources",
    ),
    Mutation(
        "remote-output-deleted",
        "remote-state output 03 consumes deleted (queue_visibility_timeout_seconds)",
        "components/02-stateful-resources/outputs.tf",
        'output "queue_visibility_timeout_seconds" {\n'
        '  description = "Visibility timeout, checked against the function timeout and claim lease'
        ' by 03-application."\n'
        "  value       = aws_sqs_queue.events.visibility_timeout_seconds\n}\n",
        "",
        "03-application",
    ),
    Mutation(
        "dlq-threshold-100",
        "DLQ alarm threshold raised to 100",
        "components/04-observability/main.tf",
        "  threshold           = 1\n",
        "  threshold           = 100\n",
        "04-observability",
    ),
    Mutation(
        "queue-policy-any-bucket",
        "queue policy's source bound to any bucket instead of Landing",
        "components/02-stateful-resources/events.tf",
        "source_arn = aws_s3_bucket.landing.arn }",
        'source_arn = "arn:aws:s3:::*" }',
        "02-stateful-resources",
    ),
    Mutation(
        "sns-raw-delivery",
        "sns path switched to raw message delivery",
        "components/02-stateful-resources/events.tf",
        "raw_message_delivery = false",
        "raw_message_delivery = true",
        "02-stateful-resources",
    ),
    Mutation(
        "archive-expires-current",
        "Archive lifecycle expires current bundles after 400 days",
        "components/02-stateful-resources/buckets.tf",
        '      storage_class = "DEEP_ARCHIVE"\n    }\n',
        '      storage_class = "DEEP_ARCHIVE"\n    }\n    expiration {\n      days = 400\n    }\n',
        "02-stateful-resources",
    ),
    Mutation(
        "landing-accepts-sse-c",
        "Landing's SSE-C deny inverted",
        "components/02-stateful-resources/buckets.tf",
        'variable = "s3:x-amz-server-side-encryption-customer-algorithm"\n      values   = ["false"]',
        'variable = "s3:x-amz-server-side-encryption-customer-algorithm"\n      values   = ["true"]',
        "02-stateful-resources",
    ),
    Mutation(
        "visibility-too-short",
        "visibility timeout below 6 x timeout + window (prod tfvars 420 -> 300)",
        "environments/prod/02-stateful-resources.tfvars",
        "queue_visibility_timeout_seconds = 420",
        "queue_visibility_timeout_seconds = 300",
        "03-application",
    ),
    Mutation(
        "tls-deny-removed",
        "bucket baseline's TLS 1.2 deny removed",
        "components/02-stateful-resources/buckets.tf",
        '      test     = "NumericLessThan"',
        '      test     = "NumericGreaterThan"',
        "02-stateful-resources",
    ),
    Mutation(
        "consumer-network-unbound",
        "consumer's network binding removed (prod tfvars)",
        "environments/prod/02-stateful-resources.tfvars",
        'consumer_source_cidrs = ["192.0.2.0/24"]',
        "consumer_source_cidrs = []",
        "02-stateful-resources",
    ),
    Mutation(
        "archive-compliance-to-governance",
        "prod Archive Object Lock switched to GOVERNANCE",
        "environments/prod/02-stateful-resources.tfvars",
        'archive_object_lock_mode = "COMPLIANCE"',
        'archive_object_lock_mode = "GOVERNANCE"',
        "02-stateful-resources",
    ),
    Mutation(
        "aggregator-extra-grant",
        "aggregator granted dynamodb:Scan",
        "components/03-application/iam.tf",
        'actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]',
        'actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Scan"]',
        "03-application",
    ),
    Mutation(
        "aggregator-reads-all-of-archive",
        "aggregator's Archive read widened from the bundle prefix to the whole bucket",
        "components/03-application/iam.tf",
        'resources = ["${local.stateful.bucket_arns["archive"]}/${var.bundle_prefix}*"]',
        'resources = ["${local.stateful.bucket_arns["archive"]}/*"]',
        "03-application",
    ),
    Mutation(
        "ttl-shorter-than-dlq",
        "claim TTL back to 7 days (shorter than DLQ retention + redrive)",
        "components/03-application/variables.tf",
        "  default     = 21\n",
        "  default     = 7\n",
        "03-application",
    ),
    Mutation(
        "prod-no-subscriber",
        "prod alarm subscriber removed",
        "environments/prod/04-observability.tfvars",
        'alarm_email                        = "data-aggregator-oncall@example.com"',
        "alarm_email                        = null",
        "04-observability",
    ),
)

#: The ones `make test` runs on every change (one per component); `make infra-mutations` runs all.
REPRESENTATIVE = ("s3-endpoint-delete", "uploader-tls-removed", "remote-output-deleted", "alarm-metric-renamed")


@dataclass(frozen=True)
class Outcome:
    caught: bool
    messages: list[str]
    output: str


def mutant_infra(mutation: Mutation) -> Path:
    """A copy of infra/ (without Terraform's own directories) with the mutation applied."""
    target = tfharness.CACHE / "mutants" / mutation.name / "infra"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(tfharness.INFRA, target, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl"))
    path = target / mutation.path
    text = path.read_text(encoding="utf-8")
    count = text.count(mutation.old)
    if count != 1:
        raise AssertionError(f"mutation {mutation.name}: expected its text once in {mutation.path}, found {count}")
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    return target


def run_mutation(mutation: Mutation) -> Outcome:
    infra = mutant_infra(mutation)
    ws = tfharness.workspace(infra, name=f"mutants/{mutation.name}/work")
    result = tfharness.plan_tests(ws, mutation.component, mutation.env)
    output = result.stdout + result.stderr
    return Outcome(result.returncode != 0, tfharness.failed_assertions(output), output)
