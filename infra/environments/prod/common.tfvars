# Variables every component declares.
project     = "data-aggregator"
environment = "prod"
aws_region  = "eu-west-1"
