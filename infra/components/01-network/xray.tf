# Tracing (SPEC N6): the X-Ray daemon inside the function sends the Powertools subsegments to the
# X-Ray API, which needs a path out of a VPC that has no NAT. An interface endpoint is that path.

resource "aws_security_group" "endpoints" {
  count = var.xray_endpoint ? 1 : 0

  name        = "${local.name}-interface-endpoints"
  description = "Interface endpoints: HTTPS from inside the VPC only"
  vpc_id      = aws_vpc.this.id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  count = var.xray_endpoint ? 1 : 0

  security_group_id = aws_security_group.endpoints[0].id
  description       = "HTTPS from the VPC"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_vpc_endpoint" "xray" {
  count = var.xray_endpoint ? 1 : 0

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.xray"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true

  tags = { Name = "${local.name}-xray" }
}
