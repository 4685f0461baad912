# The four buckets share one hardened baseline (for_each below; each map names the bucket resources
# directly so checkov can connect every baseline resource to its bucket): public access blocked, ACLs disabled
# (BucketOwnerEnforced), versioning, default encryption and a policy that refuses plain HTTP and TLS
# older than 1.2. What differs per bucket (who may write, lifecycle) is spelled out after the baseline.

locals {
  # Server access logging can only deliver to a bucket encrypted with SSE-S3, hence no key for it.
  bucket_kms_keys = {
    landing      = aws_kms_key.landing.arn
    archive      = aws_kms_key.archive.arn
    distribution = aws_kms_key.distribution.arn
    access_logs  = null
  }
  logged_buckets = toset(["landing", "archive", "distribution"])
  buckets = {
    landing      = aws_s3_bucket.landing
    archive      = aws_s3_bucket.archive
    distribution = aws_s3_bucket.distribution
    access_logs  = aws_s3_bucket.access_logs
  }
  bucket_rules = {
    landing      = data.aws_iam_policy_document.landing_rules.json
    archive      = data.aws_iam_policy_document.archive_rules.json
    distribution = data.aws_iam_policy_document.distribution_rules.json
    access_logs  = data.aws_iam_policy_document.access_logs_rules.json
  }
}

# One resource per bucket, so each checkov skip below names the one bucket it is about.
resource "aws_s3_bucket" "landing" {
  #checkov:skip=CKV_AWS_144:Landing is a 7-day transit area (SPEC N7); a lost region loses at most unprocessed uploads, which the third party can resend. Archive is the copy worth replicating.
  bucket        = local.bucket_names.landing
  force_destroy = false
}

resource "aws_s3_bucket" "archive" {
  #checkov:skip=CKV2_AWS_62:Nothing consumes Archive's events; bundles are read only by operators replaying them.
  #checkov:skip=CKV_AWS_144:Single region by design (SPEC); Archive is protected by versioning, Object Lock and S3's durability. A second copy is an option described in infra/README.md (replication or AWS Backup).
  bucket        = local.bucket_names.archive
  force_destroy = false
}

resource "aws_s3_bucket" "distribution" {
  #checkov:skip=CKV2_AWS_62:The on-premise consumer polls Distribution (SPEC R4); nothing consumes its events.
  #checkov:skip=CKV_AWS_144:Distribution is a transient mailbox; every bundle in it is also in Archive, from which operators replay.
  bucket        = local.bucket_names.distribution
  force_destroy = false
}

resource "aws_s3_bucket" "access_logs" {
  #checkov:skip=CKV2_AWS_62:Nothing consumes the access-log bucket's events.
  #checkov:skip=CKV_AWS_144:Access logs are diagnostics kept in the region they describe.
  #checkov:skip=CKV_AWS_18:The access-log bucket does not log into itself (that would loop); the three data buckets log to it through aws_s3_bucket_logging.this.
  #checkov:skip=CKV_AWS_145:S3 server access logging cannot deliver to an SSE-KMS bucket, so this bucket uses SSE-S3; the data buckets use customer-managed keys.
  bucket        = local.bucket_names.access_logs
  force_destroy = false
}

moved {
  from = aws_s3_bucket.this["landing"]
  to   = aws_s3_bucket.landing
}

moved {
  from = aws_s3_bucket.this["archive"]
  to   = aws_s3_bucket.archive
}

moved {
  from = aws_s3_bucket.this["distribution"]
  to   = aws_s3_bucket.distribution
}

moved {
  from = aws_s3_bucket.this["access_logs"]
  to   = aws_s3_bucket.access_logs
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = {
    landing      = aws_s3_bucket.landing.id
    archive      = aws_s3_bucket.archive.id
    distribution = aws_s3_bucket.distribution.id
    access_logs  = aws_s3_bucket.access_logs.id
  }

  bucket                  = each.value
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = {
    landing      = aws_s3_bucket.landing.id
    archive      = aws_s3_bucket.archive.id
    distribution = aws_s3_bucket.distribution.id
    access_logs  = aws_s3_bucket.access_logs.id
  }

  bucket = each.value
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = {
    landing      = aws_s3_bucket.landing.id
    archive      = aws_s3_bucket.archive.id
    distribution = aws_s3_bucket.distribution.id
    access_logs  = aws_s3_bucket.access_logs.id
  }

  bucket = each.value
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = {
    landing      = aws_s3_bucket.landing.id
    archive      = aws_s3_bucket.archive.id
    distribution = aws_s3_bucket.distribution.id
    access_logs  = aws_s3_bucket.access_logs.id
  }

  bucket = each.value
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.bucket_kms_keys[each.key] == null ? "AES256" : "aws:kms"
      kms_master_key_id = local.bucket_kms_keys[each.key]
    }
    # S3 Bucket Keys cut KMS requests (and cost) by orders of magnitude at 864k objects a day.
    bucket_key_enabled = local.bucket_kms_keys[each.key] != null
  }
}

resource "aws_s3_bucket_logging" "this" {
  for_each = {
    landing      = aws_s3_bucket.landing.id
    archive      = aws_s3_bucket.archive.id
    distribution = aws_s3_bucket.distribution.id
  }

  bucket        = each.value
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "${each.key}/"
}

data "aws_iam_policy_document" "bucket" {
  for_each = local.bucket_names

  source_policy_documents = [local.bucket_rules[each.key]]

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [local.buckets[each.key].arn, "${local.buckets[each.key].arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid     = "DenyTlsOlderThan12"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [local.buckets[each.key].arn, "${local.buckets[each.key].arn}/*"]
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = {
    landing      = aws_s3_bucket.landing.id
    archive      = aws_s3_bucket.archive.id
    distribution = aws_s3_bucket.distribution.id
    access_logs  = aws_s3_bucket.access_logs.id
  }

  bucket = each.value
  policy = data.aws_iam_policy_document.bucket[each.key].json

  # The policy may only land once public-access blocks are in place.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# --- Per-bucket access rules ------------------------------------------------------------------------

data "aws_iam_policy_document" "landing_rules" {
  # SPEC R1: uploads come from the third party's address ranges only...
  statement {
    sid     = "DenyUploadsFromOtherAddresses"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.landing.arn}/*"]
    condition {
      test     = "NotIpAddress"
      variable = "aws:SourceIp"
      values   = var.uploader_source_cidrs
    }
  }

  # ...and through the uploader role only, whatever other IAM policies in the account allow.
  statement {
    sid     = "DenyUploadsByAnyoneButTheUploader"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.landing.arn}/*"]
    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = [aws_iam_role.uploader.arn]
    }
  }

  statement {
    sid     = "DenyConsumer"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.consumer.arn]
    }
    resources = [aws_s3_bucket.landing.arn, "${aws_s3_bucket.landing.arn}/*"]
  }

  # The aggregator reads with its grant on Landing's key only: an object encrypted with a key the
  # uploader supplies (SSE-C) or any other KMS key, or with S3's own key, would be accepted here and
  # then fail every fetch until it reached the DLQ. Refuse such uploads at the door instead.
  statement {
    sid     = "DenyCustomerProvidedKeys"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.landing.arn}/*"]
    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption-customer-algorithm"
      values   = ["false"]
    }
  }

  statement {
    sid     = "DenyEncryptionOtherThanLandingKms"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.landing.arn}/*"]
    condition {
      test     = "StringNotEqualsIfExists"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }
  }

  statement {
    sid     = "DenyKmsKeysOtherThanLandings"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.landing.arn}/*"]
    condition {
      test     = "StringNotEqualsIfExists"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [aws_kms_key.landing.arn]
    }
  }
}

data "aws_iam_policy_document" "archive_rules" {
  # Archive is the authoritative copy: no principal may delete a version. Lifecycle expiry of
  # noncurrent versions is not subject to bucket policies and still runs.
  statement {
    sid     = "DenyVersionDeletion"
    effect  = "Deny"
    actions = ["s3:DeleteObjectVersion"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.archive.arn}/*"]
  }

  # Object Lock holds each bundle for its retention; nobody may shorten it or lift it.
  statement {
    sid     = "DenyLockBypassAndRetentionChanges"
    effect  = "Deny"
    actions = ["s3:BypassGovernanceRetention", "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:PutBucketObjectLockConfiguration"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
  }

  statement {
    sid     = "DenyConsumerAndUploader"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.consumer.arn, aws_iam_role.uploader.arn]
    }
    resources = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
  }
}

data "aws_iam_policy_document" "distribution_rules" {
  # The consumer's credentials are only good from the on-premise network (an S3 interface endpoint
  # reached over the private link, or the site's egress addresses), so a leaked key is useless elsewhere.
  statement {
    sid     = "DenyConsumerOutsideItsNetwork"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.consumer.arn]
    }
    resources = [aws_s3_bucket.distribution.arn, "${aws_s3_bucket.distribution.arn}/*"]
    dynamic "condition" {
      for_each = length(var.consumer_source_vpce_ids) > 0 ? [var.consumer_source_vpce_ids] : []
      content {
        test     = "StringNotEquals"
        variable = "aws:SourceVpce"
        values   = condition.value
      }
    }
    dynamic "condition" {
      for_each = length(var.consumer_source_cidrs) > 0 ? [var.consumer_source_cidrs] : []
      content {
        test     = "NotIpAddress"
        variable = "aws:SourceIp"
        values   = condition.value
      }
    }
  }

  statement {
    sid     = "DenyUploader"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.uploader.arn]
    }
    resources = [aws_s3_bucket.distribution.arn, "${aws_s3_bucket.distribution.arn}/*"]
  }
}

data "aws_iam_policy_document" "access_logs_rules" {
  statement {
    sid     = "S3ServerAccessLogDelivery"
    effect  = "Allow"
    actions = ["s3:PutObject"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    resources = ["${aws_s3_bucket.access_logs.arn}/*"]
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [for key in local.logged_buckets : local.buckets[key].arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- Archive immutability -----------------------------------------------------------------------------

# Every bundle version is locked for archive_object_lock_days from its creation. In COMPLIANCE mode (prod)
# no principal, the account root included, can delete or overwrite-then-purge it or shorten the lock;
# GOVERNANCE (dev) lets a principal with s3:BypassGovernanceRetention do so, and the bucket policy denies
# that permission to everyone. Enabling Object Lock on the existing versioned bucket keeps its data.
resource "aws_s3_bucket_object_lock_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id

  rule {
    default_retention {
      mode = var.archive_object_lock_mode
      days = var.archive_object_lock_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

# --- Lifecycle (SPEC N7) ------------------------------------------------------------------------------

resource "aws_s3_bucket_lifecycle_configuration" "landing" {
  bucket = aws_s3_bucket.landing.id

  rule {
    id     = "expire-uploads"
    status = "Enabled"
    filter {}
    # Data stays landing_retention_days in all (SPEC N7): current for the first part, then as a
    # noncurrent version, still readable by the versionId its event carries, until the total is up.
    expiration {
      days = var.landing_retention_days - var.landing_noncurrent_days
    }
    noncurrent_version_expiration {
      noncurrent_days = var.landing_noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"
    filter {}
    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]

  lifecycle {
    precondition {
      condition     = var.landing_noncurrent_days * 86400 >= var.queue_message_retention_seconds
      error_message = "An overwritten Landing version must stay readable as long as its event can wait in the queue: landing_noncurrent_days x 86400 >= queue retention."
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id

  rule {
    id     = "deep-archive"
    status = "Enabled"
    filter {}
    transition {
      days          = var.archive_deep_archive_after_days
      storage_class = "DEEP_ARCHIVE"
    }
    noncurrent_version_expiration {
      noncurrent_days = var.archive_noncurrent_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "distribution" {
  bucket = aws_s3_bucket.distribution.id

  # Current objects never expire here: the consumer deletes them, and the backlog alarms watch the rest.
  rule {
    id     = "expire-consumed-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.distribution_noncurrent_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"
    filter {}
    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.access_log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}
