# The two identities outsiders use. The uploader may only PUT into Landing, from its address ranges;
# the consumer may only list, get and delete in Distribution. Bucket policies deny each of them the
# other buckets as well, so a mistake in one place is not enough to widen access.

locals {
  uploader_trusted = length(var.uploader_trusted_principal_arns) > 0 ? var.uploader_trusted_principal_arns : [local.account_root]
  consumer_trusted = length(var.consumer_trusted_principal_arns) > 0 ? var.consumer_trusted_principal_arns : [local.account_root]
}

data "aws_iam_policy_document" "uploader_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = local.uploader_trusted
    }
    dynamic "condition" {
      for_each = var.uploader_external_id == null ? [] : [var.uploader_external_id]
      content {
        test     = "StringEquals"
        variable = "sts:ExternalId"
        values   = [condition.value]
      }
    }
  }
}

resource "aws_iam_role" "uploader" {
  name                 = "${local.name}-uploader"
  description          = "Third-party uploader: PutObject into Landing from its address ranges only"
  assume_role_policy   = data.aws_iam_policy_document.uploader_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "uploader" {
  statement {
    sid       = "PutIntoLandingFromKnownAddresses"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.landing.arn}/*"]
    condition {
      test     = "IpAddress"
      variable = "aws:SourceIp"
      values   = var.uploader_source_cidrs
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["true"]
    }
  }

  # SSE-KMS uploads need a data key; multipart uploads also decrypt it for each part.
  statement {
    sid       = "EncryptThroughS3Only"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.landing.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "uploader" {
  name        = "${local.name}-uploader"
  description = "PutObject into Landing, bound to the third party's source addresses (SPEC R1)"
  policy      = data.aws_iam_policy_document.uploader.json
}

resource "aws_iam_role_policy_attachment" "uploader" {
  role       = aws_iam_role.uploader.name
  policy_arn = aws_iam_policy.uploader.arn
}

data "aws_iam_policy_document" "consumer_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = local.consumer_trusted
    }
    dynamic "condition" {
      for_each = var.consumer_external_id == null ? [] : [var.consumer_external_id]
      content {
        test     = "StringEquals"
        variable = "sts:ExternalId"
        values   = [condition.value]
      }
    }
  }
}

resource "aws_iam_role" "consumer" {
  name                 = "${local.name}-consumer"
  description          = "On-premise consumer: list, get and delete bundles in Distribution only"
  assume_role_policy   = data.aws_iam_policy_document.consumer_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "consumer" {
  statement {
    sid       = "ListDistribution"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.distribution.arn]
  }

  statement {
    sid       = "GetAndDeleteBundles"
    actions   = ["s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.distribution.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["true"]
    }
  }

  statement {
    sid       = "DecryptBundlesThroughS3Only"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.distribution.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "consumer" {
  name   = "distribution-mailbox"
  role   = aws_iam_role.consumer.id
  policy = data.aws_iam_policy_document.consumer.json
}
