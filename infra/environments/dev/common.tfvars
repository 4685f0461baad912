# Variables every component declares.
project     = "data-aggregator"
environment = "dev"
aws_region  = "eu-west-1"
