# Plans 02-stateful-resources with a mocked AWS provider and one environment's var-files (tests/infra
# runs `terraform test` per environment), then checks the behaviour the plan encodes: who may do what,
# under which conditions, and for how long data is kept. The buckets, keys, queues and roles get
# distinct ARNs so a statement naming the wrong one fails.

mock_provider "aws" {
  source = "../_mocks"

  override_resource {
    target = aws_s3_bucket.landing
    values = { arn = "arn:aws:s3:::mock-landing" }
  }
  override_resource {
    target = aws_s3_bucket.archive
    values = { arn = "arn:aws:s3:::mock-archive" }
  }
  override_resource {
    target = aws_s3_bucket.distribution
    values = { arn = "arn:aws:s3:::mock-distribution" }
  }
  override_resource {
    target = aws_s3_bucket.access_logs
    values = { arn = "arn:aws:s3:::mock-access-logs" }
  }
  override_resource {
    target = aws_kms_key.landing
    values = { arn = "arn:aws:kms:eu-west-2:000000000000:key/11111111-1111-1111-1111-111111111111" }
  }
  override_resource {
    target = aws_kms_key.archive
    values = { arn = "arn:aws:kms:eu-west-2:000000000000:key/22222222-2222-2222-2222-222222222222" }
  }
  override_resource {
    target = aws_kms_key.distribution
    values = { arn = "arn:aws:kms:eu-west-2:000000000000:key/33333333-3333-3333-3333-333333333333" }
  }
  override_resource {
    target = aws_iam_role.uploader
    values = { arn = "arn:aws:iam::000000000000:role/mock-uploader" }
  }
  override_resource {
    target = aws_iam_role.consumer
    values = { arn = "arn:aws:iam::000000000000:role/mock-consumer" }
  }
  override_resource {
    target = aws_sqs_queue.events
    values = { arn = "arn:aws:sqs:eu-west-2:000000000000:mock-events" }
  }
}

# apply against the mock: every computed value gets a placeholder, so every condition is decidable.
run "build" {
  command = apply

  # --- Buckets: the hardened baseline on all four ----------------------------------------------------

  assert {
    condition = length(aws_s3_bucket_public_access_block.this) == 4 && alltrue([for b in aws_s3_bucket_public_access_block.this :
    b.block_public_acls && b.block_public_policy && b.ignore_public_acls && b.restrict_public_buckets])
    error_message = "Every bucket blocks public access in all four ways."
  }

  assert {
    condition     = alltrue([for k, v in aws_s3_bucket_versioning.this : one(v.versioning_configuration).status == "Enabled"]) && length(aws_s3_bucket_versioning.this) == 4
    error_message = "Every bucket keeps versions."
  }

  assert {
    condition = alltrue([for k in ["landing", "archive", "distribution"] :
    one(one(aws_s3_bucket_server_side_encryption_configuration.this[k].rule).apply_server_side_encryption_by_default).kms_master_key_id == { landing = aws_kms_key.landing.arn, archive = aws_kms_key.archive.arn, distribution = aws_kms_key.distribution.arn }[k]]) && one(one(aws_s3_bucket_server_side_encryption_configuration.this["access_logs"].rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "Each data bucket is encrypted with its own key; the access-log bucket with SSE-S3 (log delivery needs it)."
  }

  assert {
    condition = alltrue([for k, doc in data.aws_iam_policy_document.bucket :
      anytrue([for s in doc.statement : s.effect == "Deny" && contains(s.actions, "s3:*") && anytrue([for c in s.condition : c.test == "Bool" && c.variable == "aws:SecureTransport" && toset(c.values) == toset(["false"])])]) &&
      anytrue([for s in doc.statement : s.effect == "Deny" && contains(s.actions, "s3:*") && anytrue([for c in s.condition : c.test == "NumericLessThan" && c.variable == "s3:TlsVersion" && toset(c.values) == toset(["1.2"])])])
    ]) && length(data.aws_iam_policy_document.bucket) == 4
    error_message = "Every bucket policy denies plain HTTP and TLS older than 1.2."
  }

  assert {
    condition = alltrue([for lc in [aws_s3_bucket_lifecycle_configuration.landing, aws_s3_bucket_lifecycle_configuration.archive, aws_s3_bucket_lifecycle_configuration.distribution, aws_s3_bucket_lifecycle_configuration.access_logs] :
    anytrue([for r in lc.rule : r.status == "Enabled" && try(one(r.abort_incomplete_multipart_upload).days_after_initiation, 99) <= 7])])
    error_message = "Every bucket's lifecycle aborts incomplete multipart uploads."
  }

  assert {
    condition     = toset(keys(aws_s3_bucket_logging.this)) == toset(["landing", "archive", "distribution"]) && alltrue([for k, l in aws_s3_bucket_logging.this : l.target_bucket == aws_s3_bucket.access_logs.id && l.target_prefix == "${k}/"])
    error_message = "The three data buckets log to the access-log bucket, each under its own prefix."
  }

  # --- Landing: who may upload, how it must be encrypted, how long it stays --------------------------

  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.landing_rules.statement : s.effect == "Deny" && toset(s.actions) == toset(["s3:PutObject"]) &&
    anytrue([for c in s.condition : c.test == "NotIpAddress" && c.variable == "aws:SourceIp" && toset(c.values) == toset(var.uploader_source_cidrs)])])
    error_message = "Landing denies uploads from outside uploader_source_cidrs."
  }

  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.landing_rules.statement : s.effect == "Deny" && toset(s.actions) == toset(["s3:PutObject"]) &&
    anytrue([for c in s.condition : c.test == "ArnNotEquals" && c.variable == "aws:PrincipalArn" && toset(c.values) == toset([aws_iam_role.uploader.arn])])])
    error_message = "Landing denies uploads by anyone but the uploader role."
  }

  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.landing_rules.statement : s.effect == "Deny" && toset(s.actions) == toset(["s3:PutObject"]) &&
    anytrue([for c in s.condition : c.test == "Null" && c.variable == "s3:x-amz-server-side-encryption-customer-algorithm" && toset(c.values) == toset(["false"])])])
    error_message = "Landing denies SSE-C uploads (the aggregator could not read them)."
  }

  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.landing_rules.statement : s.effect == "Deny" && toset(s.actions) == toset(["s3:PutObject"]) &&
      anytrue([for c in s.condition : c.test == "StringNotEqualsIfExists" && c.variable == "s3:x-amz-server-side-encryption-aws-kms-key-id" && toset(c.values) == toset([aws_kms_key.landing.arn])])]) && anytrue([for s in data.aws_iam_policy_document.landing_rules.statement : s.effect == "Deny" && toset(s.actions) == toset(["s3:PutObject"]) &&
    anytrue([for c in s.condition : c.test == "StringNotEqualsIfExists" && c.variable == "s3:x-amz-server-side-encryption" && toset(c.values) == toset(["aws:kms"])])])
    error_message = "Landing denies uploads encrypted under anything but Landing's KMS key."
  }

  assert {
    condition = alltrue([for r in aws_s3_bucket_lifecycle_configuration.landing.rule :
      sum(concat([for e in r.expiration : coalesce(e.days, 0)], [for n in r.noncurrent_version_expiration : n.noncurrent_days], [0])) <= 7
    ]) && anytrue([for r in aws_s3_bucket_lifecycle_configuration.landing.rule : r.status == "Enabled" && length(r.expiration) == 1 && length(r.noncurrent_version_expiration) == 1 && try(one(r.expiration).days, 0) > 0])
    error_message = "Landing keeps data at most 7 days in all: current days plus noncurrent days."
  }

  assert {
    condition = anytrue([for r in aws_s3_bucket_lifecycle_configuration.landing.rule :
    try(one(r.noncurrent_version_expiration).noncurrent_days, 0) * 86400 >= aws_sqs_queue.events.message_retention_seconds])
    error_message = "An overwritten Landing version stays readable as long as its event can wait in the queue."
  }

  # --- Archive: immutable ------------------------------------------------------------------------------

  assert {
    condition = one(one(aws_s3_bucket_object_lock_configuration.archive.rule).default_retention).days >= 1 && (
      var.environment != "prod" || one(one(aws_s3_bucket_object_lock_configuration.archive.rule).default_retention).mode == "COMPLIANCE"
    ) && aws_s3_bucket_object_lock_configuration.archive.bucket == aws_s3_bucket.archive.id
    error_message = "Archive bundles are under Object Lock (COMPLIANCE in prod)."
  }

  assert {
    condition     = alltrue([for r in aws_s3_bucket_lifecycle_configuration.archive.rule : alltrue([for e in r.expiration : e.days == null || e.days == 0])])
    error_message = "The Archive lifecycle never expires a current bundle."
  }

  assert {
    condition     = anytrue([for s in data.aws_iam_policy_document.archive_rules.statement : s.effect == "Deny" && contains(s.actions, "s3:DeleteObjectVersion") && toset(one(s.principals).identifiers) == toset(["*"])]) && anytrue([for s in data.aws_iam_policy_document.archive_rules.statement : s.effect == "Deny" && contains(s.actions, "s3:BypassGovernanceRetention") && toset(one(s.principals).identifiers) == toset(["*"])])
    error_message = "Nobody may delete Archive versions or bypass its Object Lock."
  }

  assert {
    condition     = length(aws_s3_bucket_replication_configuration.archive) == (var.archive_replication == null ? 0 : 1)
    error_message = "Archive is replicated exactly when archive_replication is set."
  }

  # --- Consumer: Distribution only, from its own network only --------------------------------------

  assert {
    condition     = toset(flatten([for s in data.aws_iam_policy_document.consumer.statement : s.actions])) == toset(["s3:ListBucket", "s3:GetObject", "s3:DeleteObject", "kms:Decrypt"]) && alltrue([for s in data.aws_iam_policy_document.consumer.statement : alltrue([for r in s.resources : startswith(r, aws_s3_bucket.distribution.arn) || r == aws_kms_key.distribution.arn])])
    error_message = "The consumer may only list, get and delete in Distribution (and decrypt its bundles)."
  }

  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.distribution_rules.statement : s.effect == "Deny" && toset(s.actions) == toset(["s3:*"]) && toset(one(s.principals).identifiers) == toset([aws_iam_role.consumer.arn]) && length(s.condition) == 1 && (
      anytrue([for c in s.condition : c.test == "NotIpAddress" && c.variable == "aws:SourceIp" && length(c.values) > 0 && !contains(c.values, "0.0.0.0/0")]) ||
      anytrue([for c in s.condition : c.test == "StringNotEquals" && c.variable == "aws:SourceVpce" && length(c.values) > 0])
    )])
    error_message = "Distribution denies the consumer everywhere but its on-premise network."
  }

  assert {
    condition     = anytrue([for s in data.aws_iam_policy_document.landing_rules.statement : s.effect == "Deny" && toset(one(s.principals).identifiers) == toset([aws_iam_role.consumer.arn])]) && anytrue([for s in data.aws_iam_policy_document.archive_rules.statement : s.effect == "Deny" && toset(one(s.principals).identifiers) == toset([aws_iam_role.consumer.arn, aws_iam_role.uploader.arn])]) && anytrue([for s in data.aws_iam_policy_document.distribution_rules.statement : s.effect == "Deny" && toset(one(s.principals).identifiers) == toset([aws_iam_role.uploader.arn])])
    error_message = "Bucket policies deny the consumer Landing and Archive, and the uploader Archive and Distribution."
  }

  # --- Uploader: PutObject into Landing, from its addresses, over TLS --------------------------------

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.uploader.statement : coalesce(s.effect, "Allow") != "Allow" || !contains(s.actions, "s3:PutObject") || (
      toset(s.resources) == toset(["${aws_s3_bucket.landing.arn}/*"]) &&
      anytrue([for c in s.condition : c.test == "Bool" && c.variable == "aws:SecureTransport" && toset(c.values) == toset(["true"])]) &&
      anytrue([for c in s.condition : c.test == "IpAddress" && c.variable == "aws:SourceIp" && toset(c.values) == toset(var.uploader_source_cidrs)])
    )]) && toset(flatten([for s in data.aws_iam_policy_document.uploader.statement : s.actions])) == toset(["s3:PutObject", "kms:GenerateDataKey", "kms:Decrypt"])
    error_message = "The uploader may only PutObject into Landing, from uploader_source_cidrs, over TLS."
  }

  # --- Trust: named principals outside dev, an external ID across accounts ---------------------------

  assert {
    condition = var.environment == "dev" || alltrue([for doc in [data.aws_iam_policy_document.uploader_assume, data.aws_iam_policy_document.consumer_assume] :
    alltrue([for s in doc.statement : alltrue([for p in s.principals : alltrue([for id in p.identifiers : can(regex("^arn:aws:iam::[0-9]{12}:(role|user)/", id))])])])])
    error_message = "Outside dev the uploader and consumer roles trust named roles or users, never an account root."
  }

  assert {
    condition = alltrue([for doc in [data.aws_iam_policy_document.uploader_assume, data.aws_iam_policy_document.consumer_assume] : alltrue([for s in doc.statement :
      alltrue([for p in s.principals : alltrue([for id in p.identifiers : try(regex("^arn:aws:iam::([0-9]{12}):", id)[0], "") == var.aws_account_id])]) ||
      anytrue([for c in s.condition : c.test == "StringEquals" && c.variable == "sts:ExternalId" && length(c.values) == 1])
    ])])
    error_message = "A trust statement naming another account's principal requires sts:ExternalId."
  }

  # --- Queues and the key S3 uses to write into them -------------------------------------------------

  assert {
    condition = length([for s in data.aws_iam_policy_document.events_queue.statement : s if coalesce(s.effect, "Allow") == "Allow"]) == 1 && alltrue([for s in data.aws_iam_policy_document.events_queue.statement : coalesce(s.effect, "Allow") != "Allow" || (
      toset(s.actions) == toset(["sqs:SendMessage"]) && one(s.principals).type == "Service" && toset(one(s.principals).identifiers) == toset(["s3.amazonaws.com"]) &&
      anytrue([for c in s.condition : c.test == "ArnEquals" && c.variable == "aws:SourceArn" && toset(c.values) == toset([aws_s3_bucket.landing.arn])]) &&
      anytrue([for c in s.condition : c.test == "StringEquals" && c.variable == "aws:SourceAccount" && toset(c.values) == toset([var.aws_account_id])])
    )])
    error_message = "Only S3, for the Landing bucket of this account, may send to the event queue."
  }

  assert {
    condition     = length(aws_s3_bucket_notification.landing.queue) == 1 && one(aws_s3_bucket_notification.landing.queue).queue_arn == aws_sqs_queue.events.arn && !aws_s3_bucket_notification.landing.eventbridge && length(aws_sns_topic.landing_events) == 0 && length(aws_cloudwatch_event_rule.landing_object_created) == 0
    error_message = "The direct path notifies the queue from S3 and builds no topic or rule."
  }

  assert {
    condition = var.notification_path != "direct" || anytrue([for s in jsondecode(aws_kms_key.pipeline.policy).Statement :
      try(toset(s.Principal.Service) == toset(["s3.amazonaws.com"]), false) &&
      try(toset(s.Condition.ArnLike["aws:SourceArn"]) == toset(["arn:aws:s3:::${aws_s3_bucket.landing.bucket}"]), false) &&
      try(s.Condition.StringEquals["aws:SourceAccount"], "") == var.aws_account_id
    ])
    error_message = "S3 may use the pipeline key only for Landing's events in this account."
  }

  assert {
    condition     = alltrue([for s in jsondecode(aws_kms_key.pipeline.policy).Statement : can(s.Principal.AWS) || (can(s.Condition.ArnLike) || can(s.Condition.ArnEquals))])
    error_message = "Every service grant in the pipeline key policy is bound to a source ARN."
  }

  assert {
    condition = alltrue([for doc in [data.aws_iam_policy_document.events_queue, data.aws_iam_policy_document.dlq] : anytrue([for s in doc.statement :
    s.effect == "Deny" && contains(s.actions, "sqs:*") && anytrue([for c in s.condition : c.test == "Bool" && c.variable == "aws:SecureTransport" && toset(c.values) == toset(["false"])])])])
    error_message = "Both queues refuse plain HTTP."
  }

  assert {
    condition     = jsondecode(aws_sqs_queue.events.redrive_policy).maxReceiveCount >= 5 && jsondecode(aws_sqs_queue.events.redrive_policy).deadLetterTargetArn == aws_sqs_queue.dlq.arn
    error_message = "The event queue dead-letters into the DLQ after at least 5 receives."
  }

  assert {
    condition     = aws_sqs_queue.events.message_retention_seconds == 345600 && aws_sqs_queue.dlq.message_retention_seconds > aws_sqs_queue.events.message_retention_seconds
    error_message = "The queue keeps 4 days (SPEC N4) and the DLQ longer."
  }

  assert {
    condition     = aws_dynamodb_table.idempotency.hash_key == "ObjectID" && one(aws_dynamodb_table.idempotency.ttl).attribute_name == "ttl" && one(aws_dynamodb_table.idempotency.ttl).enabled
    error_message = "The claim table matches the code: key ObjectID, TTL attribute ttl."
  }
}

# --- Optional Archive replication --------------------------------------------------------------------

run "archive_replication" {
  command = apply

  variables {
    archive_replication = {
      bucket_arn  = "arn:aws:s3:::backup-archive-copy"
      kms_key_arn = "arn:aws:kms:eu-west-1:999999999999:key/44444444-4444-4444-4444-444444444444"
    }
  }

  assert {
    condition = (
      aws_s3_bucket_replication_configuration.archive[0].bucket == aws_s3_bucket.archive.id &&
      one(one(aws_s3_bucket_replication_configuration.archive[0].rule).destination).bucket == "arn:aws:s3:::backup-archive-copy" &&
      one(one(one(aws_s3_bucket_replication_configuration.archive[0].rule).destination).encryption_configuration).replica_kms_key_id == "arn:aws:kms:eu-west-1:999999999999:key/44444444-4444-4444-4444-444444444444" &&
      one(one(aws_s3_bucket_replication_configuration.archive[0].rule).delete_marker_replication).status == "Disabled"
    )
    error_message = "Archive replicates to the backup bucket under its key, and deletes are not replicated."
  }

  assert {
    condition     = !anytrue([for s in data.aws_iam_policy_document.archive_replication[0].statement : anytrue([for a in s.actions : a == "s3:ReplicateDelete" || a == "s3:*" || a == "kms:*"])])
    error_message = "The replication role cannot replicate deletes."
  }
}

# --- The other two event paths --------------------------------------------------------------------------

run "sns_path" {
  command = apply

  variables {
    notification_path = "sns"
  }

  assert {
    condition     = length(aws_sns_topic_subscription.landing_events) == 1 && !aws_sns_topic_subscription.landing_events[0].raw_message_delivery && aws_sns_topic_subscription.landing_events[0].protocol == "sqs" && aws_sns_topic_subscription.landing_events[0].endpoint == aws_sqs_queue.events.arn
    error_message = "The sns path subscribes the queue to the topic without raw delivery."
  }

  assert {
    condition     = length(aws_s3_bucket_notification.landing.topic) == 1 && length(aws_s3_bucket_notification.landing.queue) == 0 && one(aws_s3_bucket_notification.landing.topic).topic_arn == aws_sns_topic.landing_events[0].arn
    error_message = "On the sns path Landing notifies the topic, not the queue."
  }

  assert {
    condition = length([for s in data.aws_iam_policy_document.events_queue.statement : s if coalesce(s.effect, "Allow") == "Allow"]) == 1 && alltrue([for s in data.aws_iam_policy_document.events_queue.statement : coalesce(s.effect, "Allow") != "Allow" || (
      toset(one(s.principals).identifiers) == toset(["sns.amazonaws.com"]) &&
      anytrue([for c in s.condition : c.test == "ArnEquals" && c.variable == "aws:SourceArn" && toset(c.values) == toset(["arn:aws:sns:eu-west-2:${var.aws_account_id}:${aws_sns_topic.landing_events[0].name}"])])
    )])
    error_message = "On the sns path only the Landing topic may send to the queue."
  }

  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.landing_events_topic[0].statement : coalesce(s.effect, "Allow") == "Allow" && toset(one(s.principals).identifiers) == toset(["s3.amazonaws.com"]) &&
    anytrue([for c in s.condition : c.test == "ArnEquals" && c.variable == "aws:SourceArn" && toset(c.values) == toset([aws_s3_bucket.landing.arn])])])
    error_message = "Only the Landing bucket may publish to the topic."
  }
}

run "eventbridge_path" {
  command = apply

  variables {
    notification_path = "eventbridge"
  }

  assert {
    condition     = aws_s3_bucket_notification.landing.eventbridge && length(aws_s3_bucket_notification.landing.queue) == 0 && length(aws_s3_bucket_notification.landing.topic) == 0
    error_message = "On the eventbridge path Landing sends its events to EventBridge only."
  }

  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.landing_object_created[0].event_pattern).source == ["aws.s3"] && jsondecode(aws_cloudwatch_event_rule.landing_object_created[0].event_pattern)["detail-type"] == ["Object Created"] && jsondecode(aws_cloudwatch_event_rule.landing_object_created[0].event_pattern).detail.bucket.name == [aws_s3_bucket.landing.bucket]
    error_message = "The rule matches Object Created in the Landing bucket only."
  }

  assert {
    condition     = aws_cloudwatch_event_target.landing_object_created[0].arn == aws_sqs_queue.events.arn
    error_message = "The rule targets the event queue."
  }

  assert {
    condition = length([for s in data.aws_iam_policy_document.events_queue.statement : s if coalesce(s.effect, "Allow") == "Allow"]) == 1 && alltrue([for s in data.aws_iam_policy_document.events_queue.statement : coalesce(s.effect, "Allow") != "Allow" || (
      toset(one(s.principals).identifiers) == toset(["events.amazonaws.com"]) &&
      anytrue([for c in s.condition : c.test == "ArnEquals" && c.variable == "aws:SourceArn" && toset(c.values) == toset(["arn:aws:events:eu-west-2:${var.aws_account_id}:rule/${aws_cloudwatch_event_rule.landing_object_created[0].name}"])])
    )])
    error_message = "On the eventbridge path only the Landing rule may send to the queue."
  }

  assert {
    condition = anytrue([for s in jsondecode(aws_kms_key.pipeline.policy).Statement : try(toset(s.Principal.Service) == toset(["events.amazonaws.com"]), false) &&
    try(toset(s.Condition.ArnLike["aws:SourceArn"]) == toset(["arn:aws:events:eu-west-2:${var.aws_account_id}:rule/${aws_cloudwatch_event_rule.landing_object_created[0].name}"]), false)])
    error_message = "EventBridge may use the pipeline key only for the Landing rule."
  }
}

run "unknown_path_refused" {
  command = plan
  variables {
    notification_path = "kinesis"
  }
  expect_failures = [var.notification_path]
}

# --- What the variables refuse ------------------------------------------------------------------------

run "landing_kept_longer_than_seven_days_refused" {
  command = plan
  variables {
    landing_noncurrent_days = 3650
  }
  expect_failures = [var.landing_noncurrent_days]
}

run "prod_trusting_an_account_root_refused" {
  command = plan
  variables {
    environment                     = "prod"
    archive_object_lock_mode        = "COMPLIANCE"
    uploader_trusted_principal_arns = ["arn:aws:iam::${var.aws_account_id}:root"]
    consumer_trusted_principal_arns = ["arn:aws:iam::${var.aws_account_id}:role/onprem-consumer"]
  }
  expect_failures = [var.uploader_trusted_principal_arns]
}

run "cross_account_consumer_without_external_id_refused" {
  command = plan
  variables {
    consumer_trusted_principal_arns = ["arn:aws:iam::999999999999:role/elsewhere"]
    consumer_external_id            = null
  }
  expect_failures = [var.consumer_trusted_principal_arns]
}

run "placeholder_external_id_refused" {
  command = plan
  variables {
    uploader_external_id = "replace-with-the-agreed-external-id"
  }
  expect_failures = [var.uploader_external_id]
}

run "prod_cross_account_uploader_without_external_id_refused" {
  command = plan
  variables {
    environment                     = "prod"
    archive_object_lock_mode        = "COMPLIANCE"
    uploader_trusted_principal_arns = ["arn:aws:iam::444455556666:role/partner-uploader"]
    consumer_trusted_principal_arns = ["arn:aws:iam::${var.aws_account_id}:role/onprem-consumer"]
    uploader_external_id            = null
  }
  expect_failures = [var.uploader_trusted_principal_arns]
}

run "prod_governance_lock_refused" {
  command = plan
  variables {
    environment                     = "prod"
    archive_object_lock_mode        = "GOVERNANCE"
    uploader_trusted_principal_arns = ["arn:aws:iam::${var.aws_account_id}:role/partner-uploader"]
    consumer_trusted_principal_arns = ["arn:aws:iam::${var.aws_account_id}:role/onprem-consumer"]
  }
  expect_failures = [var.archive_object_lock_mode]
}
