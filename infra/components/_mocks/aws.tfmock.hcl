# Shared by every component's plan tests (`mock_provider "aws" { source = "../_mocks" }`). The mock
# fills computed attributes with random strings; the provider's own validation wants ARNs and JSON
# where resources are wired together, so those get well-formed placeholders. Tests that must tell two
# resources apart override them individually.

mock_data "aws_iam_policy_document" {
  defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = { arn = "arn:aws:logs:eu-west-2:000000000000:log-group:mock" }
}

mock_resource "aws_iam_role" {
  defaults = { arn = "arn:aws:iam::000000000000:role/mock" }
}

mock_resource "aws_iam_policy" {
  defaults = { arn = "arn:aws:iam::000000000000:policy/mock" }
}

mock_resource "aws_kms_key" {
  defaults = { arn = "arn:aws:kms:eu-west-2:000000000000:key/00000000-0000-0000-0000-000000000000" }
}

mock_resource "aws_s3_bucket" {
  defaults = { arn = "arn:aws:s3:::mock" }
}

mock_resource "aws_sqs_queue" {
  defaults = {
    arn = "arn:aws:sqs:eu-west-2:000000000000:mock"
    url = "https://sqs.eu-west-2.amazonaws.com/000000000000/mock"
  }
}

mock_resource "aws_sns_topic" {
  defaults = { arn = "arn:aws:sns:eu-west-2:000000000000:mock" }
}

mock_resource "aws_dynamodb_table" {
  defaults = { arn = "arn:aws:dynamodb:eu-west-2:000000000000:table/mock" }
}

mock_resource "aws_lambda_function" {
  defaults = {
    arn           = "arn:aws:lambda:eu-west-2:000000000000:function:mock"
    qualified_arn = "arn:aws:lambda:eu-west-2:000000000000:function:mock:1"
    invoke_arn    = "arn:aws:apigateway:eu-west-2:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-2:000000000000:function:mock/invocations"
    version       = "1"
  }
}

mock_resource "aws_lambda_alias" {
  defaults = { arn = "arn:aws:lambda:eu-west-2:000000000000:function:mock:live" }
}

mock_resource "aws_cloudwatch_event_rule" {
  defaults = { arn = "arn:aws:events:eu-west-2:000000000000:rule/mock" }
}

mock_resource "aws_sns_topic_subscription" {
  defaults = { arn = "arn:aws:sns:eu-west-2:000000000000:mock:00000000-0000-0000-0000-000000000000" }
}

# London's zones, so 01-network's postcondition checks the configured ones against real names.
mock_data "aws_availability_zones" {
  defaults = { names = ["eu-west-2a", "eu-west-2b", "eu-west-2c"] }
}
