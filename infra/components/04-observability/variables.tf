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

variable "state_bucket" {
  description = "Bucket holding the Terraform state of the earlier components (infra/tf.sh sets it)."
  type        = string
}

variable "state_region" {
  description = "Region of the state bucket; defaults to aws_region."
  type        = string
  default     = null
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic (confirm the e-mail AWS sends); null for none."
  type        = string
  default     = null
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
