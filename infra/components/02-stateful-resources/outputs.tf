output "bucket_names" {
  description = "Bucket names by role: landing, archive, distribution, access_logs."
  value       = { for key, bucket in local.buckets : key => bucket.bucket }
}

output "bucket_arns" {
  description = "Bucket ARNs by role."
  value       = { for key, bucket in local.buckets : key => bucket.arn }
}

output "kms_key_arns" {
  description = "Customer-managed key ARNs by purpose: landing, archive, distribution, pipeline."
  value = {
    landing      = aws_kms_key.landing.arn
    archive      = aws_kms_key.archive.arn
    distribution = aws_kms_key.distribution.arn
    pipeline     = aws_kms_key.pipeline.arn
  }
}

output "queue_arn" {
  description = "The event queue the aggregator consumes."
  value       = aws_sqs_queue.events.arn
}

output "queue_name" {
  description = "The event queue's name (CloudWatch dimension)."
  value       = aws_sqs_queue.events.name
}

output "queue_url" {
  description = "The event queue's URL."
  value       = aws_sqs_queue.events.id
}

output "queue_visibility_timeout_seconds" {
  description = "Visibility timeout, checked against the function timeout and claim lease by 03-application."
  value       = aws_sqs_queue.events.visibility_timeout_seconds
}

output "queue_message_retention_seconds" {
  description = "Event queue retention, checked against the idempotency TTL by 03-application."
  value       = aws_sqs_queue.events.message_retention_seconds
}

output "dlq_message_retention_seconds" {
  description = "Dead-letter queue retention, checked against the idempotency TTL by 03-application."
  value       = aws_sqs_queue.dlq.message_retention_seconds
}

output "distribution_history_days" {
  description = "Days Distribution remembers a consumed bundle (noncurrent version and delete marker); 03 checks it covers the claim TTL."
  value       = var.distribution_noncurrent_expiration_days
}

output "dlq_arn" {
  description = "The dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_name" {
  description = "The dead-letter queue's name (CloudWatch dimension)."
  value       = aws_sqs_queue.dlq.name
}

output "table_name" {
  description = "The idempotency table."
  value       = aws_dynamodb_table.idempotency.name
}

output "table_arn" {
  description = "The idempotency table's ARN."
  value       = aws_dynamodb_table.idempotency.arn
}

output "ttl_attribute" {
  description = "The table's TTL attribute, passed to the function as DYNAMODB_TTL_ATTRIBUTE."
  value       = var.ttl_attribute
}

output "uploader_role_arn" {
  description = "Role the third party assumes to upload into Landing."
  value       = aws_iam_role.uploader.arn
}

output "consumer_role_arn" {
  description = "Role the on-premise consumer assumes to drain Distribution."
  value       = aws_iam_role.consumer.arn
}
