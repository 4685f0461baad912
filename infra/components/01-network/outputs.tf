output "vpc_id" {
  description = "The pipeline's VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Subnets the functions run in (no internet route)."
  value       = aws_subnet.private[*].id
}

output "s3_prefix_list_id" {
  description = "Managed prefix list of the S3 gateway endpoint, for security-group egress rules."
  value       = aws_vpc_endpoint.s3.prefix_list_id
}

output "dynamodb_prefix_list_id" {
  description = "Managed prefix list of the DynamoDB gateway endpoint, for security-group egress rules."
  value       = aws_vpc_endpoint.dynamodb.prefix_list_id
}

output "s3_endpoint_id" {
  description = "The S3 gateway endpoint (aws:SourceVpce in bucket policies, if an operator wants it)."
  value       = aws_vpc_endpoint.s3.id
}

output "interface_endpoint_cidr" {
  description = "Where the interface endpoints (SQS, and X-Ray when enabled) listen: the VPC range."
  value       = var.vpc_cidr
}

output "sqs_endpoint_id" {
  description = "The SQS interface endpoint the aggregator sends deferred messages through."
  value       = aws_vpc_endpoint.sqs.id
}
