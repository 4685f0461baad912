# Everything that holds data or state: the four buckets, their keys, the queue pair, the idempotency
# table and the two roles outsiders assume (uploader, consumer). Deployed before 03-application,
# whose function reads these names from this component's remote state.

locals {
  component  = "02-stateful-resources"
  name       = "${var.project}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region
  # Bucket names are global: the account ID keeps two accounts (or two copies of the project) apart.
  bucket_names = {
    landing      = "${local.name}-landing-${local.account_id}"
    archive      = "${local.name}-archive-${local.account_id}"
    distribution = "${local.name}-distribution-${local.account_id}"
    access_logs  = "${local.name}-access-logs-${local.account_id}"
  }
  account_root = "arn:aws:iam::${local.account_id}:root"
}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}
