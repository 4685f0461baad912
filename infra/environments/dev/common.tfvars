# Variables every component declares.
project     = "data-aggregator"
environment = "dev"
aws_region  = "eu-west-2"
# The dev account; the provider refuses credentials of any other. Replace with yours.
aws_account_id = "111111111111"
