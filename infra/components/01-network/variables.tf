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

variable "vpc_cidr" {
  description = "Address range of the pipeline's VPC; only private subnets are carved from it."
  type        = string
  default     = "10.40.0.0/20"
}

variable "availability_zones" {
  description = "Zones that get a private subnet, by name; two or more keep the functions up through a zone outage. Listed explicitly so a zone AWS adds later never changes the plan."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4
    error_message = "List 2 to 4 availability zones."
  }
}

variable "flow_log_retention_days" {
  description = "Days VPC flow logs are kept."
  type        = number
  default     = 365
}

variable "xray_endpoint" {
  description = "Create an X-Ray interface endpoint so the functions' trace subsegments leave the VPC without a NAT gateway (about 7 USD a month per zone). Turn off only if traces arrive without it."
  type        = bool
  default     = true
}
