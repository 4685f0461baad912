# The aggregator function, its event source mapping and alias, and the distribution-backlog monitor.
# Names and ARNs of the network and the stateful resources come from the remote state of
# 01-network and 02-stateful-resources, so this component never repeats a name.

locals {
  component = "03-application"
  name      = "${var.project}-${var.environment}"
  # allowed_account_ids pins the provider to var.aws_account_id, and the provider runs in var.aws_region,
  # so neither needs a data source (which plan-time mocks could not answer).
  account_id   = var.aws_account_id
  region       = var.aws_region
  state_region = coalesce(var.state_region, var.aws_region)
  zip_path     = coalesce(var.lambda_zip_path, "${path.root}/../../../dist/lambda.zip")

  network  = var.upstream_outputs == null ? data.terraform_remote_state.network[0].outputs : var.upstream_outputs.network
  stateful = var.upstream_outputs == null ? data.terraform_remote_state.stateful[0].outputs : var.upstream_outputs.stateful

  # A deferred message is a new message: it may wait a queue retention, the DLQ's retention and a
  # redrive window more. Deferring stops at the age where such a copy could still outlive its claims.
  redrive_window_seconds   = coalesce(var.redrive_window_seconds, local.stateful.queue_message_retention_seconds)
  deferral_max_age_seconds = var.idempotency_ttl_days * 86400 - local.stateful.dlq_message_retention_seconds - local.redrive_window_seconds

  aggregator_name = "${local.name}-aggregator"
  monitor_name    = "${local.name}-monitor"

  # Exactly the names of data_aggregator.config.Settings (SPEC §3) plus Powertools' own variables.
  aggregator_environment = {
    ARCHIVE_BUCKET_NAME          = local.stateful.bucket_names["archive"]
    DISTRIBUTION_BUCKET_NAME     = local.stateful.bucket_names["distribution"]
    IDEMPOTENCY_TABLE_NAME       = local.stateful.table_name
    DYNAMODB_TTL_ATTRIBUTE       = local.stateful.ttl_attribute
    IDEMPOTENCY_TTL_DAYS         = tostring(var.idempotency_ttl_days)
    BUNDLE_PREFIX                = var.bundle_prefix
    MAX_FILES_PER_BUNDLE         = tostring(var.max_files_per_bundle)
    MAX_BUNDLE_INPUT_BYTES       = tostring(var.max_bundle_input_bytes)
    MAX_OBJECT_BYTES             = tostring(var.max_object_bytes)
    SPOOL_MEMORY_BYTES           = tostring(var.spool_memory_bytes)
    FETCH_CONCURRENCY            = tostring(var.fetch_concurrency)
    COMPRESSION_LEVEL            = tostring(var.compression_level)
    TIMEOUT_RESERVE_SECONDS      = tostring(var.timeout_reserve_seconds)
    CLAIM_LEASE_SECONDS          = tostring(var.claim_lease_seconds)
    MAX_DEFERRALS                = tostring(var.max_deferrals)
    DEFERRAL_MAX_AGE_SECONDS     = tostring(local.deferral_max_age_seconds)
    LOG_LEVEL                    = var.log_level
    POWERTOOLS_SERVICE_NAME      = "data-aggregator"
    POWERTOOLS_METRICS_NAMESPACE = "DataAggregator"
  }

  monitor_environment = {
    DISTRIBUTION_BUCKET_NAME     = local.stateful.bucket_names["distribution"]
    LOG_LEVEL                    = var.log_level
    POWERTOOLS_SERVICE_NAME      = "data-aggregator"
    POWERTOOLS_METRICS_NAMESPACE = "DataAggregator"
  }
}


data "terraform_remote_state" "network" {
  count = var.upstream_outputs == null ? 1 : 0

  backend = "s3"
  config = {
    bucket = var.state_bucket
    key    = "${var.project}/${var.environment}/01-network.tfstate"
    region = local.state_region
  }
}

data "terraform_remote_state" "stateful" {
  count = var.upstream_outputs == null ? 1 : 0

  backend = "s3"
  config = {
    bucket = var.state_bucket
    key    = "${var.project}/${var.environment}/02-stateful-resources.tfstate"
    region = local.state_region
  }
}

# --- Network: HTTPS out to the VPC endpoints only, nothing in -----------------------------------------

resource "aws_security_group" "functions" {
  name        = "${local.name}-functions"
  description = "Aggregator and monitor: HTTPS to the VPC endpoints only"
  vpc_id      = local.network.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "s3" {
  security_group_id = aws_security_group.functions.id
  description       = "HTTPS to S3 through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = local.network.s3_prefix_list_id
}

resource "aws_vpc_security_group_egress_rule" "dynamodb" {
  security_group_id = aws_security_group.functions.id
  description       = "HTTPS to DynamoDB through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = local.network.dynamodb_prefix_list_id
}

resource "aws_vpc_security_group_egress_rule" "interface_endpoints" {
  security_group_id = aws_security_group.functions.id
  description       = "HTTPS to the VPC's interface endpoints (SQS for deferrals, X-Ray)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = local.network.interface_endpoint_cidr
}

# --- Logs (created before the functions so Lambda never creates an unencrypted, unexpiring group) -----

resource "aws_cloudwatch_log_group" "aggregator" {
  name              = "/aws/lambda/${local.aggregator_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.stateful.kms_key_arns["pipeline"]
}

resource "aws_cloudwatch_log_group" "monitor" {
  name              = "/aws/lambda/${local.monitor_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.stateful.kms_key_arns["pipeline"]
}
