vpc_cidr           = "10.41.0.0/20"
availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
