# Least privilege for the aggregator (SPEC N5). Every statement names the resource it needs; the only
# "*" resources are the ones AWS offers no narrower scope for (X-Ray segments, VPC network interfaces).

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# Shared by both functions: logs to their own group, traces, and the ENIs Lambda manages in the VPC.
data "aws_iam_policy_document" "runtime" {
  #checkov:skip=CKV_AWS_111:X-Ray PutTraceSegments/PutTelemetryRecords and the Lambda VPC network-interface actions support no resource-level scoping; AWS's own AWSLambdaVPCAccessExecutionRole grants them on "*" too.
  #checkov:skip=CKV_AWS_356:Same statements: these actions accept only "*" as resource. Everything data-related in this role is scoped to named ARNs.
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.aggregator.arn}:*", "${aws_cloudwatch_log_group.monitor.arn}:*"]
  }

  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  statement {
    sid = "VpcNetworkInterfaces"
    actions = [
      "ec2:CreateNetworkInterface",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSubnets",
      "ec2:DeleteNetworkInterface",
      "ec2:AssignPrivateIpAddresses",
      "ec2:UnassignPrivateIpAddresses",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role" "aggregator" {
  name               = local.aggregator_name
  description        = "data-aggregator function: read Landing, write bundles, claim in DynamoDB, consume the queue"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "aggregator" {
  statement {
    sid       = "ReadLandingObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${local.stateful.bucket_arns["landing"]}/*"]
  }

  # ListBucketVersions finds an overwritten version by ETag when an event lacks a versionId;
  # ListBucket makes S3 answer NoSuchKey (404) instead of AccessDenied (403) for a deleted object,
  # which the code acknowledges and counts instead of retrying.
  statement {
    sid       = "ListLanding"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions"]
    resources = [local.stateful.bucket_arns["landing"]]
  }

  # PutObject also covers multipart uploads (create, upload part, complete).
  statement {
    sid     = "WriteBundles"
    actions = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [
      "${local.stateful.bucket_arns["archive"]}/${var.bundle_prefix}*",
      "${local.stateful.bucket_arns["distribution"]}/${var.bundle_prefix}*",
    ]
  }

  statement {
    sid       = "DecryptLanding"
    actions   = ["kms:Decrypt"]
    resources = [local.stateful.kms_key_arns["landing"]]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "EncryptBundles"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [local.stateful.kms_key_arns["archive"], local.stateful.kms_key_arns["distribution"]]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  # Every claim-table write is a conditional item inside TransactWriteItems, authorised per contained
  # action: puts (claims), updates (takeovers, intents, commits, hand-overs) and deletes (releases), each
  # fenced on the owner. The code makes no other table call.
  statement {
    sid       = "ClaimObjects"
    actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    resources = [local.stateful.table_arn]
  }

  # Recovery of a bundle whose owner died after recording it: is it in Archive (a listing of its key:
  # without ListBucket S3 answers a HEAD of a missing key with 403, which cannot tell "absent" from
  # "denied"), and its bytes for the copy to Distribution. Bundles only; KMS decrypt of Archive's key is
  # in EncryptBundles.
  statement {
    sid       = "ReadArchivedBundles"
    actions   = ["s3:GetObject"]
    resources = ["${local.stateful.bucket_arns["archive"]}/${var.bundle_prefix}*"]
  }

  statement {
    sid       = "ListArchivedBundles"
    actions   = ["s3:ListBucket"]
    resources = [local.stateful.bucket_arns["archive"]]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.bundle_prefix}*"]
    }
  }

  # ...and did Distribution ever hold it (a version or a delete marker once the consumer took it).
  statement {
    sid       = "ListDistributionHistory"
    actions   = ["s3:ListBucketVersions"]
    resources = [local.stateful.bucket_arns["distribution"]]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.bundle_prefix}*"]
    }
  }

  statement {
    sid       = "UseTableKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [local.stateful.kms_key_arns["pipeline"]]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid = "ConsumeEvents"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
    ]
    resources = [local.stateful.queue_arn]
  }

  # Deferral: a message the function had no time for goes back to the queue it came from, unchanged,
  # instead of failing (docs/design.md). SendMessageBatch is authorised as SendMessage.
  statement {
    sid       = "DeferEvents"
    actions   = ["sqs:SendMessage"]
    resources = [local.stateful.queue_arn]
  }

  # The event source mapping decrypts messages of the encrypted queue with this role; a deferral
  # encrypts the message it sends back.
  statement {
    sid       = "UseEventsKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [local.stateful.kms_key_arns["pipeline"]]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sqs.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "aggregator" {
  name   = "aggregate"
  role   = aws_iam_role.aggregator.id
  policy = data.aws_iam_policy_document.aggregator.json
}

resource "aws_iam_role_policy" "aggregator_runtime" {
  name   = "runtime"
  role   = aws_iam_role.aggregator.id
  policy = data.aws_iam_policy_document.runtime.json
}

resource "aws_iam_role" "monitor" {
  name               = local.monitor_name
  description        = "data-aggregator backlog monitor: list Distribution"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "monitor" {
  statement {
    sid       = "ListDistribution"
    actions   = ["s3:ListBucket"]
    resources = [local.stateful.bucket_arns["distribution"]]
  }
}

resource "aws_iam_role_policy" "monitor" {
  name   = "list-distribution"
  role   = aws_iam_role.monitor.id
  policy = data.aws_iam_policy_document.monitor.json
}

resource "aws_iam_role_policy" "monitor_runtime" {
  name   = "runtime"
  role   = aws_iam_role.monitor.id
  policy = data.aws_iam_policy_document.runtime.json
}
