variable "project" {
  description = "Name prefix shared by every resource of the product."
  type        = string
  default     = "data-aggregator"
}

variable "environment" {
  description = "Environment name (dev, prod, ...): part of every resource name and of the state key."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2-16 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "aws_region" {
  description = "Region the pipeline runs in."
  type        = string
}

# --- Who may write to Landing and read from Distribution ------------------------------------------

variable "uploader_source_cidrs" {
  description = "Public address ranges the third party uploads from (SPEC R1); every other PutObject is denied."
  type        = list(string)

  validation {
    condition     = length(var.uploader_source_cidrs) > 0 && !contains(var.uploader_source_cidrs, "0.0.0.0/0")
    error_message = "uploader_source_cidrs must list the third party's ranges; 0.0.0.0/0 defeats R1."
  }
}

variable "uploader_trusted_principal_arns" {
  description = "Principals allowed to assume the uploader role (the third party's role or account); empty means this account."
  type        = list(string)
  default     = []
}

variable "uploader_external_id" {
  description = "External ID the third party must present when assuming the uploader role (confused-deputy guard); null for none."
  type        = string
  default     = null
  sensitive   = true
}

variable "consumer_trusted_principal_arns" {
  description = "Principals allowed to assume the consumer role (the on-premise consumer's identity); empty means this account."
  type        = list(string)
  default     = []
}

# --- Retention (SPEC N4, N7) -----------------------------------------------------------------------

variable "landing_retention_days" {
  description = "Days an uploaded file (and any overwritten version) stays in Landing."
  type        = number
  default     = 7
}

variable "archive_deep_archive_after_days" {
  description = "Days a bundle stays in S3 Standard in Archive before moving to Glacier Deep Archive; recent replays need no restore."
  type        = number
  default     = 30
}

variable "archive_noncurrent_expiration_days" {
  description = "Days an overwritten or deleted Archive version is kept (Deep Archive bills 180 days minimum)."
  type        = number
  default     = 180
}

variable "distribution_noncurrent_expiration_days" {
  description = "Days a bundle the consumer deleted can still be recovered from Distribution."
  type        = number
  default     = 7
}

variable "access_log_retention_days" {
  description = "Days S3 server access logs are kept."
  type        = number
  default     = 365
}

# --- Queue (values derived in docs/latency-budget.md) ---------------------------------------------

variable "queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the event queue: at least 6 x the function timeout plus the batching window, and above the claim lease."
  type        = number
  default     = 420
}

variable "queue_message_retention_seconds" {
  description = "How long the event queue keeps a message (SPEC N4: 4 days)."
  type        = number
  default     = 345600
}

variable "dlq_message_retention_seconds" {
  description = "How long the dead-letter queue keeps a message; longer than the source queue, as SQS counts from the original enqueue."
  type        = number
  default     = 1209600
}

variable "max_receive_count" {
  description = "Receives before a message moves to the dead-letter queue."
  type        = number
  default     = 10

  validation {
    condition     = var.max_receive_count >= 5
    error_message = "max_receive_count must be at least 5 so throttling and short outages never dead-letter good messages."
  }
}

# --- Idempotency table ----------------------------------------------------------------------------

variable "ttl_attribute" {
  description = "DynamoDB TTL attribute; must equal the code's DYNAMODB_TTL_ATTRIBUTE (Settings default: ttl)."
  type        = string
  default     = "ttl"
}

variable "deletion_protection" {
  description = "Protects the idempotency table from deletion (set false only for throw-away environments)."
  type        = bool
  default     = true
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a scheduled KMS key deletion takes effect."
  type        = number
  default     = 30
}
