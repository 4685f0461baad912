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
  description = "Outputs of 02-stateful-resources and 03-application ({ stateful = ..., application = ... }) to plan against instead of their remote state. The plan tests pass the outputs of plans of those components; leave null otherwise."
  type        = any
  default     = null
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic (confirm the e-mail AWS sends); null for none."
  type        = string
  default     = null
}

variable "alarm_subscriptions" {
  description = "Further subscribers of the alarm topic (on-call tooling): protocol (https, sqs, lambda, email...) and endpoint. prod needs at least one subscriber here or in alarm_email."
  type        = list(object({ protocol = string, endpoint = string }))
  default     = []

  validation {
    condition     = var.environment != "prod" || var.alarm_email != null || length(var.alarm_subscriptions) > 0
    error_message = "prod must notify someone: set alarm_email or alarm_subscriptions."
  }
}

variable "latency_slo_seconds" {
  description = "Alarm when the oldest file of published bundles is older than this (SPEC N1: 180 s for 99.9% of files)."
  type        = number
  default     = 180
}

variable "messages_deferred_threshold" {
  description = "Deferred messages per 5 minutes, three periods in a row, above which the function is not keeping up."
  type        = number
  default     = 100
}

variable "messages_failed_threshold" {
  description = "Alarm when more messages than this are handed back for a retry in 5 minutes, in 2 of 3 periods."
  type        = number
  default     = 10
}

variable "queue_age_threshold_seconds" {
  description = "Alarm when the oldest queued event is older than this: past the 3-minute target and a full redelivery cycle."
  type        = number
  default     = 600
}

variable "distribution_count_threshold" {
  description = "Alarm when more bundles than this wait in Distribution (about 2 hours of output at baseline)."
  type        = number
  default     = 2000
}

variable "distribution_age_threshold_seconds" {
  description = "Alarm when the oldest bundle in Distribution has waited longer than this."
  type        = number
  default     = 3600
}

variable "anomaly_band_width" {
  description = "Standard deviations of the anomaly-detection band on messages sent to the queue."
  type        = number
  default     = 3
}
