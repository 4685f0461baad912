# Both functions ship in the same zip (./build.sh): python3.13 on arm64 (Graviton: cheaper per
# GB-second, and the build targets manylinux2014_aarch64 wheels).

resource "aws_lambda_function" "aggregator" {
  #checkov:skip=CKV_AWS_115:Concurrency is capped where it matters, on the event source mapping (scaling_config.maximum_concurrency); reserving concurrency fails outright in new accounts whose regional quota is 10.
  #checkov:skip=CKV_AWS_116:An SQS-triggered function never receives asynchronous events; failed messages go to the queue's own dead-letter queue (redrive policy in 02-stateful-resources).
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signing step in the release process; the package is built reproducibly (same inputs, same SHA-256) and its hash is pinned by source_code_hash.
  function_name    = local.aggregator_name
  description      = "Bundles new Landing objects into verified .tar.gz files in Archive and Distribution"
  role             = aws_iam_role.aggregator.arn
  runtime          = "python3.13"
  architectures    = ["arm64"]
  handler          = "data_aggregator.app.handler"
  filename         = local.zip_path
  source_code_hash = filebase64sha256(local.zip_path)
  memory_size      = var.memory_mb
  timeout          = var.function_timeout_seconds
  publish          = true
  kms_key_arn      = local.stateful.kms_key_arns["pipeline"]

  ephemeral_storage {
    size = var.ephemeral_storage_mb
  }

  environment {
    variables = local.aggregator_environment
  }

  tracing_config {
    mode = "Active"
  }

  vpc_config {
    subnet_ids         = local.network.private_subnet_ids
    security_group_ids = [aws_security_group.functions.id]
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.aggregator.name
  }

  depends_on = [aws_iam_role_policy.aggregator, aws_iam_role_policy.aggregator_runtime]
}

# Blue/green: the event source mapping invokes this alias, never $LATEST. By default it follows the
# newest published version; set stable_version (and canary_weight) to shift traffic gradually.
resource "aws_lambda_alias" "live" {
  name             = "live"
  description      = "What the event source mapping invokes"
  function_name    = aws_lambda_function.aggregator.function_name
  function_version = coalesce(var.stable_version, aws_lambda_function.aggregator.version)

  dynamic "routing_config" {
    for_each = var.stable_version != null && var.canary_weight > 0 ? [var.canary_weight] : []
    content {
      additional_version_weights = { (aws_lambda_function.aggregator.version) = routing_config.value }
    }
  }
}

resource "aws_lambda_event_source_mapping" "events" {
  event_source_arn                   = local.stateful.queue_arn
  function_name                      = aws_lambda_alias.live.arn
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]
  enabled                            = true

  scaling_config {
    maximum_concurrency = var.max_concurrency
  }

  # The latency budget's invariants (docs/latency-budget.md), checked against the deployed queue.
  lifecycle {
    precondition {
      condition     = local.stateful.queue_visibility_timeout_seconds >= 6 * var.function_timeout_seconds + var.batching_window_seconds
      error_message = "The queue's visibility timeout must be at least 6 x the function timeout plus the batching window."
    }
    precondition {
      condition     = var.claim_lease_seconds > var.function_timeout_seconds
      error_message = "CLAIM_LEASE_SECONDS must exceed the function timeout, or a live invocation could lose its claims."
    }
    precondition {
      condition     = var.claim_lease_seconds + var.batching_window_seconds < local.stateful.queue_visibility_timeout_seconds
      error_message = "CLAIM_LEASE_SECONDS plus the batching window must stay below the visibility timeout, so a crashed invocation's leases expire before SQS redelivers."
    }
    precondition {
      condition     = var.idempotency_ttl_days * 86400 > local.stateful.queue_message_retention_seconds
      error_message = "IDEMPOTENCY_TTL_DAYS must outlive the queue's retention, or a late duplicate would be bundled twice."
    }
    # A dead-lettered event is aged from its first enqueue; redriven, it may wait a queue retention more.
    # Its claim (COMPLETED) must still be there, or a redrive re-publishes what was already delivered.
    precondition {
      condition     = var.idempotency_ttl_days * 86400 >= local.stateful.dlq_message_retention_seconds + local.redrive_window_seconds
      error_message = "IDEMPOTENCY_TTL_DAYS x 86400 must cover the DLQ retention plus the redrive window, or a redriven event would be bundled twice."
    }
    # Deferral sends a message again; a copy sent at DEFERRAL_MAX_AGE_SECONDS may still be dead-lettered
    # and redriven. Without an hour of room, messages could not be deferred at all.
    precondition {
      condition     = local.deferral_max_age_seconds >= 3600
      error_message = "IDEMPOTENCY_TTL_DAYS x 86400 must exceed the DLQ retention plus the redrive window by at least an hour, so that messages the function had no time for can be deferred instead of failed."
    }
    # Recovery asks Distribution's version history whether a bundle was ever delivered; once a consumed
    # bundle's noncurrent version and delete marker are gone it would be delivered again.
    precondition {
      condition     = local.stateful.distribution_history_days >= var.idempotency_ttl_days
      error_message = "Distribution must keep noncurrent versions (distribution_noncurrent_expiration_days) at least IDEMPOTENCY_TTL_DAYS, or recovering an interrupted publish could deliver a consumed bundle again."
    }
    precondition {
      condition     = var.batch_size <= var.max_files_per_bundle
      error_message = "batch_size above MAX_FILES_PER_BUNDLE splits every full batch into two bundles; raise both together."
    }
  }
}

resource "aws_lambda_function" "monitor" {
  #checkov:skip=CKV_AWS_115:Runs once per schedule tick; reserving concurrency would only eat the account quota (10 in new accounts).
  #checkov:skip=CKV_AWS_116:A failed scheduled run is superseded by the next one minutes later, and the backlog-age alarm treats missing data as breaching; a DLQ of stale ticks would help nobody.
  #checkov:skip=CKV_AWS_272:Same package as the aggregator: reproducible build, hash pinned by source_code_hash; no AWS Signer profile in this design.
  function_name    = local.monitor_name
  description      = "Publishes the Distribution backlog (count, bytes, oldest age) as EMF metrics"
  role             = aws_iam_role.monitor.arn
  runtime          = "python3.13"
  architectures    = ["arm64"]
  handler          = "data_aggregator.monitor.handler"
  filename         = local.zip_path
  source_code_hash = filebase64sha256(local.zip_path)
  memory_size      = 256
  timeout          = 120
  kms_key_arn      = local.stateful.kms_key_arns["pipeline"]

  environment {
    variables = local.monitor_environment
  }

  tracing_config {
    mode = "Active"
  }

  vpc_config {
    subnet_ids         = local.network.private_subnet_ids
    security_group_ids = [aws_security_group.functions.id]
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.monitor.name
  }

  depends_on = [aws_iam_role_policy.monitor, aws_iam_role_policy.monitor_runtime]
}

resource "aws_cloudwatch_event_rule" "monitor" {
  name                = local.monitor_name
  description         = "Runs the distribution-backlog monitor"
  schedule_expression = var.monitor_schedule
}

resource "aws_cloudwatch_event_target" "monitor" {
  rule = aws_cloudwatch_event_rule.monitor.name
  arn  = aws_lambda_function.monitor.arn

  retry_policy {
    maximum_event_age_in_seconds = 240
    maximum_retry_attempts       = 2
  }
}

resource "aws_lambda_permission" "monitor_schedule" {
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.monitor.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.monitor.arn
}
