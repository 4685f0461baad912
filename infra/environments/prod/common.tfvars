# Variables every component declares.
project     = "data-aggregator"
environment = "prod"
aws_region  = "eu-west-2"
# The prod account; the provider refuses credentials of any other. Replace with yours.
aws_account_id = "222222222222"
