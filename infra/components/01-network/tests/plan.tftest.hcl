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

  # Deferral sends messages back to the queue from inside the VPC, which has no NAT.
  assert {
    condition = (
      aws_vpc_endpoint.sqs.service_name == "com.amazonaws.eu-west-2.sqs" && aws_vpc_endpoint.sqs.vpc_endpoint_type == "Interface" &&
      aws_vpc_endpoint.sqs.private_dns_enabled && length(aws_vpc_endpoint.sqs.subnet_ids) == length(aws_subnet.private) &&
      output.interface_endpoint_cidr == var.vpc_cidr
    )
    error_message = "SQS is reached through an interface endpoint with private DNS in every private subnet, and 03 is told where it listens."
  }

  assert {
    condition = (
      toset(flatten([for s in data.aws_iam_policy_document.sqs_endpoint.statement : s.actions if coalesce(s.effect, "Allow") == "Allow"])) == toset(["sqs:SendMessage"]) &&
      alltrue([for s in data.aws_iam_policy_document.sqs_endpoint.statement :
        alltrue([for r in s.resources : startswith(r, "arn:aws:sqs:eu-west-2:${var.aws_account_id}:")]) &&
        contains([for c in s.condition : "${c.test} ${c.variable} ${jsonencode(c.values)}"], "StringEquals aws:PrincipalAccount [\"${var.aws_account_id}\"]")
      ])
    )
    error_message = "The SQS endpoint only sends (deferrals), only to this account's queues, only for this account's principals."
  }

  assert {
    condition     = [for r in [aws_vpc_security_group_ingress_rule.endpoints_https] : "${r.ip_protocol}/${r.from_port}-${r.to_port} from ${r.cidr_ipv4}"] == ["tcp/443-443 from ${var.vpc_cidr}"]
    error_message = "The interface endpoints accept HTTPS from the VPC only."
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
