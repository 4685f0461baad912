# Interface endpoints: the paths out of a VPC that has no NAT for the AWS APIs without a gateway
# endpoint. SQS is always there: the aggregator sends messages it had no time for back to its queue
# (deferral, docs/design.md), and without a path that send would hang until its connect timeout. X-Ray
# carries the Powertools trace subsegments (SPEC N6) and can be turned off.

resource "aws_security_group" "endpoints" {
  name        = "${local.name}-interface-endpoints"
  description = "Interface endpoints: HTTPS from inside the VPC only"
  vpc_id      = aws_vpc.this.id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  security_group_id = aws_security_group.endpoints.id
  description       = "HTTPS from the VPC"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr
}

# Only what the functions do through it (send a deferred message), only to this account's queues, only
# for this account's principals: stolen credentials cannot post data to another account's queue.
data "aws_iam_policy_document" "sqs_endpoint" {
  statement {
    sid    = "OwnAccountQueuesOnly"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    actions   = ["sqs:SendMessage"]
    resources = ["arn:aws:sqs:${local.region}:${local.account_id}:*"]
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_vpc_endpoint" "sqs" {
  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.sqs"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true
  policy              = data.aws_iam_policy_document.sqs_endpoint.json

  tags = { Name = "${local.name}-sqs" }
}

resource "aws_vpc_endpoint" "xray" {
  count = var.xray_endpoint ? 1 : 0

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.xray"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true

  tags = { Name = "${local.name}-xray" }
}
