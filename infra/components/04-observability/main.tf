# Alarms (SPEC N6) on everything that can silently stop the pipeline: events piling up in the queue,
# messages in the dead-letter queue, function errors and throttles, bundles piling up in Distribution,
# and an upload rate far off its usual pattern. All notify one encrypted SNS topic.

locals {
  component    = "04-observability"
  name         = "${var.project}-${var.environment}"
  account_id   = data.aws_caller_identity.current.account_id
  region       = data.aws_region.current.region
  state_region = coalesce(var.state_region, var.aws_region)

  stateful    = data.terraform_remote_state.stateful.outputs
  application = data.terraform_remote_state.application.outputs

  # The monitor's EMF metrics carry these dimensions (data_aggregator.monitor.publish).
  distribution_dimensions = {
    service            = local.application.service_name
    DistributionBucket = local.stateful.bucket_names["distribution"]
  }
  actions = [aws_sns_topic.alarms.arn]
}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "terraform_remote_state" "stateful" {
  backend = "s3"
  config = {
    bucket = var.state_bucket
    key    = "${var.project}/${var.environment}/02-stateful-resources.tfstate"
    region = local.state_region
  }
}

data "terraform_remote_state" "application" {
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

# --- Distribution backlog (SPEC N4) ------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "distribution_count" {
  alarm_name          = "${local.name}-distribution-backlog-count"
  alarm_description   = "Bundles pile up in Distribution: the on-premise consumer is not draining it."
  namespace           = local.application.metrics_namespace
  metric_name         = "DistributionObjectCount"
  dimensions          = local.distribution_dimensions
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = var.distribution_count_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "distribution_oldest_age" {
  alarm_name          = "${local.name}-distribution-oldest-bundle-age"
  alarm_description   = "The oldest bundle in Distribution has waited too long (consumer down), or the monitor stopped reporting."
  namespace           = local.application.metrics_namespace
  metric_name         = "DistributionOldestObjectAgeSeconds"
  dimensions          = local.distribution_dimensions
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.distribution_age_threshold_seconds
  comparison_operator = "GreaterThanThreshold"
  # No datapoints means the monitor is not running: that is as bad as a stale backlog.
  treat_missing_data = "breaching"
  alarm_actions      = local.actions
  ok_actions         = local.actions
}
