# One customer-managed key per trust boundary, so a key grant never reaches further than it must:
#   landing      - the uploader encrypts, the aggregator decrypts
#   archive      - only the aggregator (and operators replaying bundles) use it
#   distribution - the aggregator encrypts, the on-premise consumer decrypts
#   pipeline     - queue, dead-letter queue, idempotency table, function logs and environment, alarm topic
# Principals get key use through IAM policies (enabled by the account statement) restricted with
# kms:ViaService; AWS services that encrypt on our behalf are named in the key policy with conditions.

locals {
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
        # S3 encrypts the event notifications it sends to the encrypted queue.
        Sid       = "S3SendsLandingEventsToTheQueue"
        Effect    = "Allow"
        Principal = { Service = "s3.amazonaws.com" }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = "arn:aws:s3:::${local.bucket_names.landing}" }
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
