# How Landing's ObjectCreated events reach the queue (var.notification_path):
#   direct      S3 notification straight to the queue (the default)
#   sns         S3 notification to an SNS topic, subscribed by the queue without raw delivery: the
#               handler unwraps the SNS envelope, and other subscribers can fan the events out
#   eventbridge S3 sends every event to EventBridge; a rule for "Object Created" in Landing targets the
#               queue (keys arrive not URL-encoded; the handler knows both shapes)
# The queue policy allows exactly the chosen publisher, bound to its source ARN and this account, and the
# pipeline key lets exactly that publisher encrypt into the queue (kms.tf).

locals {
  landing_events_topic_name = "${local.name}-landing-events"
  landing_events_rule_name  = "${local.name}-landing-object-created"
  # Built from names, not resource attributes, so the key policy can name them without a cycle.
  landing_events_topic_arn = "arn:aws:sns:${local.region}:${local.account_id}:${local.landing_events_topic_name}"
  landing_events_rule_arn  = "arn:aws:events:${local.region}:${local.account_id}:rule/${local.landing_events_rule_name}"

  # Who sends into the queue, per path: the service principal and the source it must come from.
  queue_publisher = {
    direct      = { service = "s3.amazonaws.com", source_arn = aws_s3_bucket.landing.arn }
    sns         = { service = "sns.amazonaws.com", source_arn = local.landing_events_topic_arn }
    eventbridge = { service = "events.amazonaws.com", source_arn = local.landing_events_rule_arn }
  }[var.notification_path]
}

resource "aws_s3_bucket_notification" "landing" {
  bucket = aws_s3_bucket.landing.id

  dynamic "queue" {
    for_each = var.notification_path == "direct" ? [aws_sqs_queue.events.arn] : []
    content {
      id        = "object-created"
      queue_arn = queue.value
      events    = ["s3:ObjectCreated:*"]
    }
  }

  dynamic "topic" {
    for_each = var.notification_path == "sns" ? [aws_sns_topic.landing_events[0].arn] : []
    content {
      id        = "object-created"
      topic_arn = topic.value
      events    = ["s3:ObjectCreated:*"]
    }
  }

  eventbridge = var.notification_path == "eventbridge"

  # S3 validates the destination when the notification is saved: it must already accept the events.
  depends_on = [aws_sqs_queue_policy.events, aws_sns_topic_policy.landing_events]
}

# --- sns ------------------------------------------------------------------------------------------

resource "aws_sns_topic" "landing_events" {
  count = var.notification_path == "sns" ? 1 : 0

  name              = local.landing_events_topic_name
  kms_master_key_id = aws_kms_key.pipeline.arn
}

data "aws_iam_policy_document" "landing_events_topic" {
  count = var.notification_path == "sns" ? 1 : 0

  statement {
    sid     = "LandingBucketPublishes"
    effect  = "Allow"
    actions = ["sns:Publish"]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    resources = [aws_sns_topic.landing_events[0].arn]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.landing.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["sns:Publish", "sns:Subscribe"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_sns_topic.landing_events[0].arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "landing_events" {
  count = var.notification_path == "sns" ? 1 : 0

  arn    = aws_sns_topic.landing_events[0].arn
  policy = data.aws_iam_policy_document.landing_events_topic[0].json
}

# Not raw: the queue receives the SNS envelope with the S3 notification as a JSON string in Message.
resource "aws_sns_topic_subscription" "landing_events" {
  count = var.notification_path == "sns" ? 1 : 0

  topic_arn            = aws_sns_topic.landing_events[0].arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.events.arn
  raw_message_delivery = false

  depends_on = [aws_sqs_queue_policy.events]
}

# --- eventbridge ----------------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "landing_object_created" {
  count = var.notification_path == "eventbridge" ? 1 : 0

  name        = local.landing_events_rule_name
  description = "Object Created in the Landing bucket, to the aggregator's queue"
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail        = { bucket = { name = [aws_s3_bucket.landing.bucket] } }
  })
}

resource "aws_cloudwatch_event_target" "landing_object_created" {
  count = var.notification_path == "eventbridge" ? 1 : 0

  rule = aws_cloudwatch_event_rule.landing_object_created[0].name
  arn  = aws_sqs_queue.events.arn
}
