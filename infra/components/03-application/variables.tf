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

variable "state_bucket" {
  description = "Bucket holding the Terraform state of the earlier components (infra/tf.sh sets it)."
  type        = string
}

variable "state_region" {
  description = "Region of the state bucket; defaults to aws_region."
  type        = string
  default     = null
}

variable "upstream_outputs" {
  description = "Outputs of 01-network and 02-stateful-resources ({ network = ..., stateful = ... }) to plan against instead of their remote state. The plan tests pass the outputs of plans of those components, so a missing output fails here; leave null otherwise."
  type        = any
  default     = null
}

variable "lambda_zip_path" {
  description = "Deployment package built by ./build.sh; defaults to dist/lambda.zip at the repository root."
  type        = string
  default     = null
}

# --- Latency budget (docs/latency-budget.md derives every default below) -----------------------------

variable "function_timeout_seconds" {
  description = "Aggregator timeout: a full bundle takes about 10 s, so 60 s leaves room for slow S3 tails."
  type        = number
  default     = 60
}

variable "memory_mb" {
  description = "Aggregator memory; 1769 MB buys one full vCPU for tar, gzip and SHA-256."
  type        = number
  default     = 1769
}

variable "ephemeral_storage_mb" {
  description = "Aggregator /tmp, where a bundle spills past SPOOL_MEMORY_BYTES; covers MAX_BUNDLE_INPUT_BYTES."
  type        = number
  default     = 1024
}

variable "batch_size" {
  description = "Messages per invocation (one message per file); equals MAX_FILES_PER_BUNDLE."
  type        = number
  default     = 1000
}

variable "batching_window_seconds" {
  description = "How long the event source mapping gathers messages before invoking."
  type        = number
  default     = 20
}

variable "max_concurrency" {
  description = "Most concurrent aggregator invocations the event source mapping starts (about 10x the burst need)."
  type        = number
  default     = 10
}

variable "claim_lease_seconds" {
  description = "CLAIM_LEASE_SECONDS: longer than the function timeout, shorter than visibility timeout minus batching window."
  type        = number
  default     = 300
}

variable "idempotency_ttl_days" {
  description = "IDEMPOTENCY_TTL_DAYS: a claim must outlive every redelivery of its event: DLQ retention plus the redrive window (docs/latency-budget.md)."
  type        = number
  default     = 21
}

variable "max_deferrals" {
  description = "MAX_DEFERRALS: how often a message the function had no time for is sent back to the queue before it fails like any other (and SQS counts its receive)."
  type        = number
  default     = 20

  validation {
    condition     = var.max_deferrals >= 0 && var.max_deferrals <= 1000
    error_message = "max_deferrals must be between 0 (never defer) and 1000."
  }
}

variable "redrive_window_seconds" {
  description = "How long a message redriven from the DLQ may still wait before it is processed; defaults to the source queue's retention, the most SQS allows."
  type        = number
  default     = null
}

variable "max_files_per_bundle" {
  description = "MAX_FILES_PER_BUNDLE."
  type        = number
  default     = 1000
}

variable "max_bundle_input_bytes" {
  description = "MAX_BUNDLE_INPUT_BYTES (512 MiB): a batch above it splits into several bundles."
  type        = number
  default     = 536870912
}

variable "max_object_bytes" {
  description = "MAX_OBJECT_BYTES (512 MiB): a larger single object fails to the DLQ instead of overrunning the timeout."
  type        = number
  default     = 536870912
}

variable "spool_memory_bytes" {
  description = "SPOOL_MEMORY_BYTES: bundle bytes kept in memory before spilling to /tmp."
  type        = number
  default     = 8388608
}

variable "fetch_concurrency" {
  description = "FETCH_CONCURRENCY: parallel GETs from Landing; 32 fetches 1,000 small files in about 2 s."
  type        = number
  default     = 32
}

variable "compression_level" {
  description = "COMPRESSION_LEVEL (ISA-L level 0-3); 1 runs at hundreds of MB/s."
  type        = number
  default     = 1
}

variable "timeout_reserve_seconds" {
  description = "TIMEOUT_RESERVE_SECONDS: time kept back to finish, upload and release before the timeout."
  type        = number
  default     = 10
}

variable "bundle_prefix" {
  description = "BUNDLE_PREFIX: key prefix of bundles in Archive and Distribution; the role may write only below it."
  type        = string
  default     = "bundles/"
}

variable "log_level" {
  description = "LOG_LEVEL of both functions."
  type        = string
  default     = "INFO"
}

variable "log_retention_days" {
  description = "Days function logs (and the EMF metrics inside them) are kept."
  type        = number
  default     = 365
}

# --- Monitor ----------------------------------------------------------------------------------------

variable "monitor_schedule" {
  description = "How often the distribution-backlog monitor runs."
  type        = string
  default     = "rate(5 minutes)"
}

# --- Blue/green --------------------------------------------------------------------------------------

variable "stable_version" {
  description = "Published version the live alias stays on while a new one is tried; null sends all traffic to the newest."
  type        = string
  default     = null
}

variable "canary_weight" {
  description = "Share (0-1) of invocations routed to the newest version while stable_version is set."
  type        = number
  default     = 0

  validation {
    condition     = var.canary_weight >= 0 && var.canary_weight < 1
    error_message = "canary_weight must be in [0, 1)."
  }
}
