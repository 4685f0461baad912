vpc_cidr           = "10.41.0.0/20"
availability_zones = ["eu-west-2a", "eu-west-2b", "eu-west-2c"]
