# The functions run in private subnets with no route to the internet: everything they call is reached
# through VPC endpoints: S3 and DynamoDB through gateway endpoints (free, on the AWS network), X-Ray
# through an interface endpoint (xray.tf). Logs and EMF metrics leave through the Lambda service
# itself, and the SQS event source mapping polls the queue from the service side, so there is no NAT
# gateway, no internet gateway and no other interface endpoint.

locals {
  component = "01-network"
  name      = "${var.project}-${var.environment}"
  # allowed_account_ids pins the provider to var.aws_account_id, and the provider runs in var.aws_region,
  # so neither needs a data source (which plan-time mocks could not answer).
  account_id = var.aws_account_id
  region     = var.aws_region
}

# Resolves the configured zone names, failing the plan if one does not exist or is not available.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = var.availability_zones
  }

  lifecycle {
    postcondition {
      condition     = length(setsubtract(var.availability_zones, self.names)) == 0
      error_message = "Some availability_zones are not available in this region."
    }
  }
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = local.name }
}

# Takes the default security group over and leaves it without rules, so nothing can use it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${local.name}-default-unused" }
}

resource "aws_subnet" "private" {
  count = length(var.availability_zones)

  vpc_id                  = aws_vpc.this.id
  availability_zone       = var.availability_zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = false

  tags = { Name = "${local.name}-private-${var.availability_zones[count.index]}" }
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${local.name}-private" }
}

resource "aws_route_table_association" "private" {
  count = length(var.availability_zones)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# Endpoint policies allow only what the functions do, only for this account's principals and only on
# this account's resources, so stolen credentials cannot move data to or from another account's bucket
# from inside the VPC.
data "aws_iam_policy_document" "s3_endpoint" {
  statement {
    sid    = "OwnAccountBucketsOnly"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:ListBucket",
      "s3:ListBucketVersions",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
    ]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  policy            = data.aws_iam_policy_document.s3_endpoint.json

  tags = { Name = "${local.name}-s3" }
}

data "aws_iam_policy_document" "dynamodb_endpoint" {
  statement {
    sid    = "OwnAccountTablesOnly"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    actions = [
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
    ]
    resources = ["arn:aws:dynamodb:${local.region}:${local.account_id}:table/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_vpc_endpoint" "dynamodb" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  policy            = data.aws_iam_policy_document.dynamodb_endpoint.json

  tags = { Name = "${local.name}-dynamodb" }
}
