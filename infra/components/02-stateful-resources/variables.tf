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
  description = "Region the pipeline runs in: the design names London (eu-west-2), where the data must stay."
  type        = string
  default     = "eu-west-2"

  validation {
    condition     = var.aws_region == "eu-west-2"
    error_message = "The design places the pipeline in eu-west-2 (London); change the design before the region."
  }
}

variable "aws_account_id" {
  description = "The environment's AWS account: the provider refuses to run with credentials of any other (allowed_account_ids)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be a 12-digit AWS account ID."
  }
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
  description = "Roles or users allowed to assume the uploader role (the third party's); empty means this account's root, which only dev accepts."
  type        = list(string)
  default     = []

  validation {
    condition = var.environment == "dev" || (
      length(var.uploader_trusted_principal_arns) > 0 &&
      alltrue([for arn in var.uploader_trusted_principal_arns : can(regex("^arn:aws:iam::[0-9]{12}:(role|user)/.+$", arn))])
    )
    error_message = "Outside dev the uploader role trusts named roles or users only (arn:aws:iam::<account>:role/<name>), never an account or its root."
  }

  validation {
    condition = var.uploader_external_id != null || alltrue([
      for arn in var.uploader_trusted_principal_arns : try(regex("^arn:aws:iam::([0-9]{12}):", arn)[0], arn) == var.aws_account_id
    ])
    error_message = "A principal from another account must present sts:ExternalId (confused-deputy guard): set uploader_external_id."
  }
}

variable "uploader_external_id" {
  description = "External ID the uploader must present when assuming the role; required when a trusted principal is in another account. A secret: pass it as TF_VAR_uploader_external_id, never in a tfvars file."
  type        = string
  default     = null
  sensitive   = true

  # A placeholder that reaches an account is a guessable secret: refuse the obvious ones and short ones.
  validation {
    # HCL evaluates both sides of ||: an unset value stands in as twelve zeros, which passes.
    condition     = length(coalesce(var.uploader_external_id, "000000000000")) >= 12 && !can(regex("(?i)replace|placeholder|example|changeme|agreed|secret|<|>", coalesce(var.uploader_external_id, "000000000000")))
    error_message = "uploader_external_id looks like a placeholder or is shorter than 12 characters: set the value agreed with the other party (TF_VAR_uploader_external_id)."
  }
}

variable "consumer_trusted_principal_arns" {
  description = "Roles or users allowed to assume the consumer role (the on-premise consumer's, e.g. its IAM Roles Anywhere role); empty means this account's root, which only dev accepts."
  type        = list(string)
  default     = []

  validation {
    condition = var.environment == "dev" || (
      length(var.consumer_trusted_principal_arns) > 0 &&
      alltrue([for arn in var.consumer_trusted_principal_arns : can(regex("^arn:aws:iam::[0-9]{12}:(role|user)/.+$", arn))])
    )
    error_message = "Outside dev the consumer role trusts named roles or users only (arn:aws:iam::<account>:role/<name>), never an account or its root."
  }

  validation {
    condition = var.consumer_external_id != null || alltrue([
      for arn in var.consumer_trusted_principal_arns : try(regex("^arn:aws:iam::([0-9]{12}):", arn)[0], arn) == var.aws_account_id
    ])
    error_message = "A principal from another account must present sts:ExternalId (confused-deputy guard): set consumer_external_id."
  }
}

variable "consumer_external_id" {
  description = "External ID the consumer must present when assuming the role; required when a trusted principal is in another account. A secret: pass it as TF_VAR_consumer_external_id, never in a tfvars file."
  type        = string
  default     = null
  sensitive   = true

  # A placeholder that reaches an account is a guessable secret: refuse the obvious ones and short ones.
  validation {
    # HCL evaluates both sides of ||: an unset value stands in as twelve zeros, which passes.
    condition     = length(coalesce(var.consumer_external_id, "000000000000")) >= 12 && !can(regex("(?i)replace|placeholder|example|changeme|agreed|secret|<|>", coalesce(var.consumer_external_id, "000000000000")))
    error_message = "consumer_external_id looks like a placeholder or is shorter than 12 characters: set the value agreed with the other party (TF_VAR_consumer_external_id)."
  }
}

# --- Where the consumer may reach Distribution from (exactly one of the two) ----------------------

variable "consumer_source_cidrs" {
  description = "The on-premise site's public egress ranges: the consumer is denied Distribution from anywhere else (aws:SourceIp)."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.consumer_source_cidrs, "0.0.0.0/0")
    error_message = "0.0.0.0/0 is no network binding."
  }
}

variable "consumer_source_vpce_ids" {
  description = "S3 interface endpoints the on-premise site reaches S3 through (Direct Connect or VPN): the consumer is denied Distribution through any other path (aws:SourceVpce)."
  type        = list(string)
  default     = []

  validation {
    condition     = (length(var.consumer_source_vpce_ids) > 0) != (length(var.consumer_source_cidrs) > 0)
    error_message = "Bind the consumer to its network with exactly one of consumer_source_cidrs (public egress) or consumer_source_vpce_ids (interface endpoint)."
  }
}

variable "notification_path" {
  description = "How Landing's ObjectCreated events reach the queue: direct (S3 notification), sns (through a topic, envelope not raw) or eventbridge (S3 events to EventBridge, a rule to the queue)."
  type        = string
  default     = "direct"

  validation {
    condition     = contains(["direct", "sns", "eventbridge"], var.notification_path)
    error_message = "notification_path is direct, sns or eventbridge."
  }
}

# --- Retention (SPEC N4, N7) -----------------------------------------------------------------------

variable "landing_retention_days" {
  description = "Days any uploaded byte stays in Landing in all, current and noncurrent versions together (SPEC N7)."
  type        = number
  default     = 7

  validation {
    condition     = var.landing_retention_days >= 1 && var.landing_retention_days <= 7
    error_message = "SPEC N7 keeps Landing data 7 days at most."
  }
}

variable "landing_noncurrent_days" {
  description = "Of landing_retention_days, the days a version stays after it stops being current (overwritten or expired); it must cover the queue's retention so a waiting event still finds its version."
  type        = number
  default     = 4

  validation {
    condition     = var.landing_noncurrent_days >= 1 && var.landing_noncurrent_days < var.landing_retention_days
    error_message = "landing_noncurrent_days must be at least 1 and leave at least one current day within landing_retention_days."
  }
}

# --- Archive immutability ---------------------------------------------------------------------------

variable "archive_object_lock_mode" {
  description = "Object Lock mode of Archive bundles: COMPLIANCE (nobody, root included, can delete within the retention; required in prod) or GOVERNANCE."
  type        = string
  default     = "COMPLIANCE"

  validation {
    condition     = contains(["GOVERNANCE", "COMPLIANCE"], var.archive_object_lock_mode) && (var.environment != "prod" || var.archive_object_lock_mode == "COMPLIANCE")
    error_message = "archive_object_lock_mode is GOVERNANCE or COMPLIANCE, and COMPLIANCE in prod."
  }
}

variable "archive_object_lock_days" {
  description = "Days each Archive bundle is locked against deletion from its creation."
  type        = number
  default     = 365

  validation {
    condition     = var.archive_object_lock_days >= 1
    error_message = "archive_object_lock_days must be at least 1."
  }
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
  description = "Days a bundle the consumer deleted is remembered (and recoverable) in Distribution. Recovery of an interrupted publish reads this history to deliver a bundle exactly once, so it must cover the claim TTL (03 checks it)."
  type        = number
  default     = 21
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

variable "archive_replication" {
  description = "Optional second copy of Archive: bucket_arn and kms_key_arn of a versioned destination (another region or a backup account, Object Lock recommended) and the replicas' storage class; null for none."
  type = object({
    bucket_arn    = string
    kms_key_arn   = string
    storage_class = optional(string, "DEEP_ARCHIVE")
  })
  default = null

  validation {
    condition     = var.archive_replication == null || (can(regex("^arn:aws:s3:::[a-z0-9.-]{3,63}$", var.archive_replication.bucket_arn)) && can(regex("^arn:aws:kms:", var.archive_replication.kms_key_arn)))
    error_message = "archive_replication needs the destination bucket's ARN and its KMS key's ARN."
  }
}
