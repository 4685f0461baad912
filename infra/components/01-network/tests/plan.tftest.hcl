# Plans 01-network with a mocked AWS provider and the environment's var-files (tests/infra runs
# `terraform test` once per environment) and checks what the plan would build. Policy documents are
# checked through their evaluated statement blocks; the mock cannot render their JSON.

mock_provider "aws" {
  source = "../_mocks"
}

# apply against the mock: every computed value gets a placeholder, so every condition is decidable.
run "build" {
  command = apply

  assert {
    condition     = var.aws_region == "eu-west-2" && alltrue([for s in aws_subnet.private : startswith(s.availability_zone, "eu-west-2")])
    error_message = "The pipeline runs in London (eu-west-2)."
  }

  assert {
    condition     = length(aws_subnet.private) == length(var.availability_zones) && length(var.availability_zones) >= 2 && alltrue([for s in aws_subnet.private : !s.map_public_ip_on_launch])
    error_message = "One private subnet per listed zone, at least two zones, no public addresses."
  }

  # The S3 endpoint lets the functions do exactly what the code does, only in this account.
  assert {
    condition = toset(flatten([for s in data.aws_iam_policy_document.s3_endpoint.statement : s.actions if coalesce(s.effect, "Allow") == "Allow"])) == toset([
      "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:ListBucketVersions", "s3:PutObject", "s3:AbortMultipartUpload",
    ])
    error_message = "The S3 endpoint policy allows exactly the S3 actions the functions use (no deletes, no ACL or policy changes)."
  }

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.s3_endpoint.statement :
      contains([for c in s.condition : "${c.test} ${c.variable} ${jsonencode(c.values)}"], "StringEquals aws:ResourceAccount [\"${var.aws_account_id}\"]") &&
      contains([for c in s.condition : "${c.test} ${c.variable} ${jsonencode(c.values)}"], "StringEquals aws:PrincipalAccount [\"${var.aws_account_id}\"]")
    ])
    error_message = "Every S3 endpoint statement is bound to this account's principals and buckets."
  }

  assert {
    condition = toset(flatten([for s in data.aws_iam_policy_document.dynamodb_endpoint.statement : s.actions if coalesce(s.effect, "Allow") == "Allow"])) == toset([
      "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
    ])
    error_message = "The DynamoDB endpoint policy allows exactly the calls the claim store makes."
  }

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.dynamodb_endpoint.statement :
      alltrue([for r in s.resources : startswith(r, "arn:aws:dynamodb:eu-west-2:${var.aws_account_id}:table/")]) &&
      contains([for c in s.condition : "${c.test} ${c.variable} ${jsonencode(c.values)}"], "StringEquals aws:PrincipalAccount [\"${var.aws_account_id}\"]")
    ])
    error_message = "The DynamoDB endpoint reaches this account's tables only, for this account's principals."
  }

  assert {
    condition     = aws_vpc_endpoint.s3.service_name == "com.amazonaws.eu-west-2.s3" && aws_vpc_endpoint.s3.vpc_endpoint_type == "Gateway"
    error_message = "S3 is reached through a gateway endpoint in the pipeline's region."
  }

  assert {
    condition     = aws_flow_log.vpc.traffic_type == "ALL" && aws_cloudwatch_log_group.flow_logs.kms_key_id != null
    error_message = "Flow logs record all traffic into an encrypted log group."
  }
}

# The validation refuses a region the design does not name.
run "other_region_refused" {
  command = plan

  variables {
    aws_region = "eu-west-1"
  }

  expect_failures = [var.aws_region]
}
