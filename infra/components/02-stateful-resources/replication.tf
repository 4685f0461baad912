# Optional second copy of Archive (var.archive_replication): S3 replication to a bucket in another region
# or a backup account. The destination must be versioned, should have Object Lock on, and is encrypted
# with its own key. Deletes are not replicated (delete markers stay at the source), so the copy survives
# whatever happens to this bucket, this region or, with a backup account, this account.

locals {
  archive_replication_enabled = var.archive_replication != null
}

data "aws_iam_policy_document" "archive_replication_assume" {
  count = local.archive_replication_enabled ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.archive.arn]
    }
  }
}

resource "aws_iam_role" "archive_replication" {
  count = local.archive_replication_enabled ? 1 : 0

  name               = "${local.name}-archive-replication"
  description        = "S3 replication of Archive bundles to the backup bucket"
  assume_role_policy = data.aws_iam_policy_document.archive_replication_assume[0].json
}

data "aws_iam_policy_document" "archive_replication" {
  count = local.archive_replication_enabled ? 1 : 0

  statement {
    sid       = "ReadReplicationSettings"
    actions   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
    resources = [aws_s3_bucket.archive.arn]
  }

  statement {
    sid = "ReadVersionsToReplicate"
    actions = [
      "s3:GetObjectVersionForReplication",
      "s3:GetObjectVersionAcl",
      "s3:GetObjectVersionTagging",
      "s3:GetObjectRetention",
      "s3:GetObjectLegalHold",
    ]
    resources = ["${aws_s3_bucket.archive.arn}/*"]
  }

  statement {
    sid       = "WriteReplicas"
    actions   = ["s3:ReplicateObject", "s3:ReplicateTags"]
    resources = ["${var.archive_replication.bucket_arn}/*"]
  }

  statement {
    sid       = "DecryptSource"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.archive.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "EncryptReplicas"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.archive_replication.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "archive_replication" {
  count = local.archive_replication_enabled ? 1 : 0

  name   = "replicate-archive"
  role   = aws_iam_role.archive_replication[0].id
  policy = data.aws_iam_policy_document.archive_replication[0].json
}

resource "aws_s3_bucket_replication_configuration" "archive" {
  count = local.archive_replication_enabled ? 1 : 0

  bucket = aws_s3_bucket.archive.id
  role   = aws_iam_role.archive_replication[0].arn

  rule {
    id     = "bundles-to-backup"
    status = "Enabled"
    filter {}

    delete_marker_replication {
      status = "Disabled"
    }

    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }

    destination {
      bucket        = var.archive_replication.bucket_arn
      storage_class = var.archive_replication.storage_class
      encryption_configuration {
        replica_kms_key_id = var.archive_replication.kms_key_arn
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}
