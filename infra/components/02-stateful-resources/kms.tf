# One customer-managed key per trust boundary, so a key grant never reaches further than it must:
#   landing      - the uploader encrypts, the aggregator decrypts
#   archive      - only the aggregator (and operators replaying bundles) use it
#   distribution - the aggregator encrypts, the on-premise consumer decrypts
#   pipeline     - queue, dead-letter queue, idempotency table, function logs and environment, alarm topic
# Principals get key use through IAM policies (enabled by the account statement) restricted with
# kms:ViaService; AWS services that encrypt on our behalf are named in the key policy with conditions.

locals {
  landing_arn = "arn:aws:s3:::${local.bucket_names.landing}"
  kms_event_publishers = {
    direct      = { services = ["s3.amazonaws.com"], source_arns = [local.landing_arn] }
    sns         = { services = ["s3.amazonaws.com", "sns.amazonaws.com"], source_arns = [local.landing_arn, local.landing_events_topic_arn] }
    eventbridge = { services = ["events.amazonaws.com"], source_arns = [local.landing_events_rule_arn] }
  }

  account_statement = {
    Sid       = "AccountAdministersThroughIam"
    Effect    = "Allow"
    Principal = { AWS = local.account_root }
    Action    = "kms:*"
    Resource  = "*"
  }
}

resource "aws_kms_key" "landing" {
  description             = "${local.name} Landing bucket"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.account_statement]
  })
}

resource "aws_kms_key" "archive" {
  description             = "${local.name} Archive bucket"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.account_statement]
  })
}

resource "aws_kms_key" "distribution" {
  description             = "${local.name} Distribution bucket"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.account_statement]
  })
}

resource "aws_kms_key" "pipeline" {
  description             = "${local.name} queues, idempotency table, logs and alarms"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.account_statement,
      {
        # The events' publisher encrypts what it sends into the encrypted queue (and S3 into the
        # encrypted topic on the sns path): S3 for Landing, the Landing topic or the Landing rule.
        Sid       = "LandingEventsPublisherEncrypts"
        Effect    = "Allow"
        Principal = { Service = local.kms_event_publishers[var.notification_path].services }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = local.kms_event_publishers[var.notification_path].source_arns }
        }
      },
      {
        Sid       = "CloudWatchLogsEncryptsOurLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:aws:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${local.name}-*"
          }
        }
      },
      {
        # Alarms publish to the encrypted SNS topic of 04-observability.
        Sid       = "CloudWatchAlarmsPublishToTheTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          # Only this environment's alarms (04-observability names them "<project>-<env>-...").
          ArnLike = { "aws:SourceArn" = "arn:aws:cloudwatch:${local.region}:${local.account_id}:alarm:${local.name}-*" }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "landing" {
  name          = "alias/${local.name}-landing"
  target_key_id = aws_kms_key.landing.key_id
}

resource "aws_kms_alias" "archive" {
  name          = "alias/${local.name}-archive"
  target_key_id = aws_kms_key.archive.key_id
}

resource "aws_kms_alias" "distribution" {
  name          = "alias/${local.name}-distribution"
  target_key_id = aws_kms_key.distribution.key_id
}

resource "aws_kms_alias" "pipeline" {
  name          = "alias/${local.name}-pipeline"
  target_key_id = aws_kms_key.pipeline.key_id
}
