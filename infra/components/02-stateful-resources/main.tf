# Everything that holds data or state: the four buckets, their keys, the queue pair, the idempotency
# table and the two roles outsiders assume (uploader, consumer). Deployed before 03-application,
# whose function reads these names from this component's remote state.

locals {
  component = "02-stateful-resources"
  name      = "${var.project}-${var.environment}"
  # allowed_account_ids pins the provider to var.aws_account_id, and the provider runs in var.aws_region,
  # so neither needs a data source (which plan-time mocks could not answer).
  account_id = var.aws_account_id
  region     = var.aws_region
  # Bucket names are global: the account ID keeps two accounts (or two copies of the project) apart.
  bucket_names = {
    landing      = "${local.name}-landing-${local.account_id}"
    archive      = "${local.name}-archive-${local.account_id}"
    distribution = "${local.name}-distribution-${local.account_id}"
    access_logs  = "${local.name}-access-logs-${local.account_id}"
  }
  account_root = "arn:aws:iam::${local.account_id}:root"
}

