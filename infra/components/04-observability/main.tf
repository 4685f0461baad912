# Alarms (SPEC N6) on everything that can silently stop the pipeline: events piling up in the queue,
# messages in the dead-letter queue, function errors and throttles, bundles piling up in Distribution,
# and an upload rate far off its usual pattern. All notify one encrypted SNS topic.

locals {
  component = "04-observability"
  name      = "${var.project}-${var.environment}"
  # allowed_account_ids pins the provider to var.aws_account_id, and the provider runs in var.aws_region,
  # so neither needs a data source (which plan-time mocks could not answer).
  account_id   = var.aws_account_id
  region       = var.aws_region
  state_region = coalesce(var.state_region, var.aws_region)

  stateful    = var.upstream_outputs == null ? data.terraform_remote_state.stateful[0].outputs : var.upstream_outputs.stateful
  application = var.upstream_outputs == null ? data.terraform_remote_state.application[0].outputs : var.upstream_outputs.application

  # The monitor's EMF metrics carry these dimensions (data_aggregator.monitor.publish).
  distribution_dimensions = {
    service            = local.application.service_name
    DistributionBucket = local.stateful.bucket_names["distribution"]
  }
  actions = [aws_sns_topic.alarms.arn]
}


data "terraform_remote_state" "stateful" {
  count = var.upstream_outputs == null ? 1 : 0

  backend = "s3"
  config = {
    bucket = var.state_bucket
    key    = "${var.project}/${var.environment}/02-stateful-resources.tfstate"
    region = local.state_region
  }
}

data "terraform_remote_state" "application" {
  count = var.upstream_outputs == null ? 1 : 0

  backend = "s3"
  config = {
    bucket = var.state_bucket
    key    = "${var.project}/${var.environment}/03-application.tfstate"
    region = local.state_region
  }
}

# --- Topic -----------------------------------------------------------------------------------------

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = local.stateful.kms_key_arns["pipeline"]
}

data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid     = "CloudWatchAlarmsPublish"
    effect  = "Allow"
    actions = ["sns:Publish"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    resources = [aws_sns_topic.alarms.arn]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["sns:Publish"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_sns_topic.alarms.arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_sns_topic_subscription" "other" {
  for_each = { for s in var.alarm_subscriptions : "${s.protocol}:${s.endpoint}" => s }

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = each.value.protocol
  endpoint  = each.value.endpoint
}

# --- Queue -----------------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "queue_oldest_message_age" {
  alarm_name          = "${local.name}-queue-oldest-message-age"
  alarm_description   = "Landing events wait longer than the latency budget allows: the aggregator is failing, throttled or too slow."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = local.stateful.queue_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.queue_age_threshold_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  alarm_name          = "${local.name}-dlq-not-empty"
  alarm_description   = "At least one event reached the dead-letter queue: a file was not bundled. See docs for the redrive runbook."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = local.stateful.dlq_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# Detects both a flood and a drought of uploads compared with the learned weekly pattern.
resource "aws_cloudwatch_metric_alarm" "messages_sent_anomaly" {
  alarm_name          = "${local.name}-landing-events-anomaly"
  alarm_description   = "Events arriving in the queue are far outside their usual pattern (upload flood, or the third party stopped)."
  comparison_operator = "LessThanLowerOrGreaterThanUpperThreshold"
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  threshold_metric_id = "band"
  treat_missing_data  = "breaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  metric_query {
    id          = "band"
    expression  = "ANOMALY_DETECTION_BAND(sent, ${var.anomaly_band_width})"
    label       = "NumberOfMessagesSent (expected band)"
    return_data = true
  }

  metric_query {
    id          = "sent"
    return_data = true
    metric {
      namespace   = "AWS/SQS"
      metric_name = "NumberOfMessagesSent"
      dimensions  = { QueueName = local.stateful.queue_name }
      stat        = "Sum"
      period      = 300
    }
  }
}

# --- Functions -------------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "aggregator_errors" {
  alarm_name          = "${local.name}-aggregator-errors"
  alarm_description   = "The aggregator failed whole invocations (crash or timeout): the entire batch comes back after the visibility timeout."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = local.application.aggregator_function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "aggregator_throttles" {
  alarm_name          = "${local.name}-aggregator-throttles"
  alarm_description   = "The aggregator is throttled: the account's concurrency is exhausted and events age in the queue."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = local.application.aggregator_function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "monitor_errors" {
  alarm_name          = "${local.name}-monitor-errors"
  alarm_description   = "The distribution-backlog monitor fails, so the backlog alarms are blind."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = local.application.monitor_function_name }
  statistic           = "Sum"
  period              = 900
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# --- Alarms on the functions' own EMF metrics -------------------------------------------------------
# One resource for all of them, so the plan tests can hold every metric name and dimension set
# against the code's catalogue (data_aggregator.telemetry): an alarm on a metric nobody emits never fires.

locals {
  handler_dimensions = { service = local.application.service_name }

  emitted_metric_alarms = {
    # SPEC N4: bundles pile up in Distribution when the on-premise consumer stops draining it.
    distribution-backlog-count = {
      description = "Bundles pile up in Distribution: the on-premise consumer is not draining it."
      metric      = "DistributionObjectCount"
      dimensions  = local.distribution_dimensions
      statistic   = "Maximum"
      period      = 300
      evaluations = 2
      datapoints  = 2
      threshold   = var.distribution_count_threshold
      # A silent monitor is caught by distribution-oldest-bundle-age, which treats it as breaching.
      missing = "missing"
    }
    distribution-oldest-bundle-age = {
      description = "The oldest bundle in Distribution has waited too long (consumer down), or the monitor stopped reporting."
      metric      = "DistributionOldestObjectAgeSeconds"
      dimensions  = local.distribution_dimensions
      statistic   = "Maximum"
      period      = 300
      evaluations = 3
      datapoints  = 3
      threshold   = var.distribution_age_threshold_seconds
      # No datapoints means the monitor is not running: that is as bad as a stale backlog.
      missing = "breaching"
    }
    # SPEC N1: the oldest file of each published bundle, measured from its S3 event time.
    latency-slo = {
      description = "Files reach Distribution later than the latency objective (SPEC N1: 99.9% within 3 minutes)."
      metric      = "OldestFileAgeSeconds"
      dimensions  = local.handler_dimensions
      statistic   = "Maximum"
      period      = 60
      evaluations = 5
      datapoints  = 3
      threshold   = var.latency_slo_seconds
      # No bundles means no traffic; a stalled pipeline shows in the queue-age and failure alarms.
      missing = "notBreaching"
    }
    # Messages handed back to SQS for a retry: each is a file at least one visibility timeout late.
    messages-failed = {
      description = "The aggregator keeps handing messages back for a retry (claims held, fetch or upload failures, bad events)."
      metric      = "MessagesFailed"
      dimensions  = local.handler_dimensions
      statistic   = "Sum"
      period      = 300
      evaluations = 3
      datapoints  = 2
      threshold   = var.messages_failed_threshold
      missing     = "notBreaching"
    }
    # Deferred messages are sent to the queue again, so the queue-age alarm restarts for each copy: the
    # handler's own count is what says the function cannot keep up (docs/design.md, "Deferral").
    messages-deferred = {
      description = "The aggregator keeps deferring messages it has no time for: it cannot keep up (raise the timeout, memory or max concurrency)."
      metric      = "MessagesDeferred"
      dimensions  = local.handler_dimensions
      statistic   = "Sum"
      period      = 300
      evaluations = 3
      datapoints  = 3
      threshold   = var.messages_deferred_threshold
      missing     = "notBreaching"
    }
    # SQS stops ageing a message after its third receive, so the queue-age alarm can miss a message that
    # fails on every attempt. The handler counts such messages itself, on every receive.
    poison-messages = {
      description = "Messages the aggregator cannot parse keep arriving; they go to the DLQ after max_receive_count receives."
      metric      = "PoisonMessages"
      dimensions  = local.handler_dimensions
      statistic   = "Sum"
      period      = 300
      evaluations = 1
      datapoints  = 1
      threshold   = 0
      missing     = "notBreaching"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "emitted" {
  for_each = local.emitted_metric_alarms

  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = local.application.metrics_namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.evaluations
  datapoints_to_alarm = each.value.datapoints
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = each.value.missing
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

moved {
  from = aws_cloudwatch_metric_alarm.distribution_count
  to   = aws_cloudwatch_metric_alarm.emitted["distribution-backlog-count"]
}

moved {
  from = aws_cloudwatch_metric_alarm.distribution_oldest_age
  to   = aws_cloudwatch_metric_alarm.emitted["distribution-oldest-bundle-age"]
}
