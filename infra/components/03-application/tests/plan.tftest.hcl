# Plans 03-application against the outputs of plans of 01-network and 02-stateful-resources made with
# the same environment's var-files (mocked AWS provider), instead of their remote state: an output this
# component reads that the earlier one no longer has fails here, as do the latency-budget preconditions.

mock_provider "aws" {
  source = "../_mocks"

  # Distinct bucket ARNs (for the run of 02 below), so a grant naming the wrong bucket fails here too.
  override_resource {
    target = aws_s3_bucket.landing
    values = { arn = "arn:aws:s3:::mock-landing" }
  }
  override_resource {
    target = aws_s3_bucket.archive
    values = { arn = "arn:aws:s3:::mock-archive" }
  }
  override_resource {
    target = aws_s3_bucket.distribution
    values = { arn = "arn:aws:s3:::mock-distribution" }
  }
}

run "network" {
  command = apply
  module {
    source = "../01-network"
  }
}

run "stateful" {
  command = apply
  module {
    source = "../02-stateful-resources"
  }
}

run "build" {
  command = apply

  variables {
    state_bucket     = "unused-in-tests"
    lambda_zip_path  = "tests/fake-lambda.zip"
    upstream_outputs = { network = run.network, stateful = run.stateful }
  }

  assert {
    condition     = run.stateful.queue_visibility_timeout_seconds >= 6 * aws_lambda_function.aggregator.timeout + aws_lambda_event_source_mapping.events.maximum_batching_window_in_seconds
    error_message = "Visibility timeout >= 6 x function timeout + batching window (AWS's rule for SQS event sources)."
  }

  assert {
    condition     = tonumber(aws_lambda_function.aggregator.environment[0].variables.CLAIM_LEASE_SECONDS) > aws_lambda_function.aggregator.timeout && tonumber(aws_lambda_function.aggregator.environment[0].variables.CLAIM_LEASE_SECONDS) + aws_lambda_event_source_mapping.events.maximum_batching_window_in_seconds < run.stateful.queue_visibility_timeout_seconds
    error_message = "Function timeout < claim lease, and lease + batching window < visibility timeout."
  }

  assert {
    condition     = tonumber(aws_lambda_function.aggregator.environment[0].variables.IDEMPOTENCY_TTL_DAYS) * 86400 >= run.stateful.dlq_message_retention_seconds + run.stateful.queue_message_retention_seconds
    error_message = "Claims outlive the DLQ retention plus a redrive window (a redriven message may wait a queue retention)."
  }

  assert {
    condition     = aws_lambda_event_source_mapping.events.event_source_arn == run.stateful.queue_arn && aws_lambda_event_source_mapping.events.function_name == aws_lambda_alias.live.arn && contains(aws_lambda_event_source_mapping.events.function_response_types, "ReportBatchItemFailures")
    error_message = "The event source mapping feeds the event queue to the live alias with partial batch responses."
  }

  assert {
    condition     = aws_lambda_function.aggregator.runtime == "python3.13" && tolist(aws_lambda_function.aggregator.architectures) == tolist(["arm64"]) && aws_lambda_function.aggregator.tracing_config[0].mode == "Active"
    error_message = "The aggregator runs Python 3.13 on arm64 with tracing."
  }

  assert {
    condition = (
      aws_lambda_function.aggregator.environment[0].variables.ARCHIVE_BUCKET_NAME == run.stateful.bucket_names["archive"] &&
      aws_lambda_function.aggregator.environment[0].variables.DISTRIBUTION_BUCKET_NAME == run.stateful.bucket_names["distribution"] &&
      aws_lambda_function.aggregator.environment[0].variables.IDEMPOTENCY_TABLE_NAME == run.stateful.table_name &&
      aws_lambda_function.aggregator.environment[0].variables.DYNAMODB_TTL_ATTRIBUTE == run.stateful.ttl_attribute
    )
    error_message = "The function's environment names the buckets and table 02 created."
  }

  # Least privilege: every action the aggregator may take, and nothing on a resource it does not use.
  assert {
    condition = toset(flatten([for s in data.aws_iam_policy_document.aggregator.statement : s.actions])) == toset([
      "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:ListBucketVersions", "s3:PutObject", "s3:AbortMultipartUpload",
      "kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:DescribeKey",
      "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:SendMessage",
    ])
    error_message = "The aggregator's policy grants exactly the calls the code (and the event source mapping) makes."
  }

  # Recovery asks whether a bundle is in Archive with a listing of its key: without ListBucket, S3
  # answers a HEAD of a missing key with 403 (AWS HeadObject reference), which recovery cannot read.
  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.aggregator.statement : contains(s.actions, "s3:ListBucket") && contains(s.resources, run.stateful.bucket_arns["archive"])]) && alltrue([
      for s in data.aws_iam_policy_document.aggregator.statement : !contains(s.actions, "s3:ListBucket") || toset(s.resources) == toset([run.stateful.bucket_arns["landing"]]) || anytrue([
    for c in s.condition : c.variable == "s3:prefix" && c.values == tolist(["${var.bundle_prefix}*"])])])
    error_message = "The aggregator may list Landing, and Archive only below the bundle prefix (recovery's existence check)."
  }

  # Deferral sends only to the queue the mapping reads, and no copy can outlive the claims.
  assert {
    condition     = alltrue([for s in data.aws_iam_policy_document.aggregator.statement : !anytrue([for a in s.actions : startswith(a, "sqs:")]) || toset(s.resources) == toset([run.stateful.queue_arn])])
    error_message = "Every SQS action of the aggregator is on the event queue only (consume it, defer to it)."
  }

  assert {
    condition = (
      tonumber(aws_lambda_function.aggregator.environment[0].variables.DEFERRAL_MAX_AGE_SECONDS) + run.stateful.dlq_message_retention_seconds + run.stateful.queue_message_retention_seconds <= tonumber(aws_lambda_function.aggregator.environment[0].variables.IDEMPOTENCY_TTL_DAYS) * 86400 &&
      tonumber(aws_lambda_function.aggregator.environment[0].variables.DEFERRAL_MAX_AGE_SECONDS) >= 3600 &&
      tonumber(aws_lambda_function.aggregator.environment[0].variables.MAX_DEFERRALS) > 0
    )
    error_message = "Deferral is on, and a copy deferred at the oldest allowed age, dead-lettered and redriven, still meets its claim."
  }

  assert {
    condition     = aws_vpc_security_group_egress_rule.interface_endpoints.cidr_ipv4 == run.network.interface_endpoint_cidr
    error_message = "The functions reach the interface endpoints (SQS for deferrals): without them a deferral hangs until its timeout."
  }

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.aggregator.statement : alltrue([for r in s.resources : r != "*"])]) && alltrue([for s in data.aws_iam_policy_document.aggregator.statement :
    !anytrue([for a in s.actions : startswith(a, "kms:")]) || anytrue([for c in s.condition : c.variable == "kms:ViaService"])])
    error_message = "Every aggregator statement names its resources; key use only through the owning service."
  }

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.aggregator.statement : !contains(s.actions, "s3:PutObject") || alltrue([for r in s.resources :
    contains(["${run.stateful.bucket_arns["archive"]}/${var.bundle_prefix}*", "${run.stateful.bucket_arns["distribution"]}/${var.bundle_prefix}*"], r)])])
    error_message = "The aggregator writes only below the bundle prefix of Archive and Distribution."
  }

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.aggregator.statement : !contains(s.actions, "s3:GetObject") || alltrue([for r in s.resources :
      contains(["${run.stateful.bucket_arns["landing"]}/*", "${run.stateful.bucket_arns["archive"]}/${var.bundle_prefix}*"], r)])]) && alltrue([
      for s in data.aws_iam_policy_document.aggregator.statement : !contains(s.actions, "s3:ListBucketVersions") || contains(s.resources, run.stateful.bucket_arns["landing"]) || anytrue([
    for c in s.condition : c.variable == "s3:prefix" && c.values == tolist(["${var.bundle_prefix}*"])])])
    error_message = "The aggregator reads Landing, Archive only below the bundle prefix (recovery), and Distribution's version history only under it."
  }

  assert {
    condition     = toset(flatten([for s in data.aws_iam_policy_document.monitor.statement : s.actions])) == toset(["s3:ListBucket"])
    error_message = "The monitor only lists Distribution."
  }
}

run "lease_longer_than_visibility_refused" {
  command = plan

  variables {
    state_bucket        = "unused-in-tests"
    lambda_zip_path     = "tests/fake-lambda.zip"
    upstream_outputs    = { network = run.network, stateful = run.stateful }
    claim_lease_seconds = 420
  }

  expect_failures = [aws_lambda_event_source_mapping.events]
}

run "claims_outliving_distribution_history_refused" {
  command = plan

  variables {
    state_bucket     = "unused-in-tests"
    lambda_zip_path  = "tests/fake-lambda.zip"
    upstream_outputs = { network = run.network, stateful = merge(run.stateful, { distribution_history_days = 7 }) }
  }

  expect_failures = [aws_lambda_event_source_mapping.events]
}

run "ttl_shorter_than_dlq_and_redrive_refused" {
  command = plan

  variables {
    state_bucket         = "unused-in-tests"
    lambda_zip_path      = "tests/fake-lambda.zip"
    upstream_outputs     = { network = run.network, stateful = run.stateful }
    idempotency_ttl_days = 14
  }

  expect_failures = [aws_lambda_event_source_mapping.events]
}
