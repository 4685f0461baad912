vpc_cidr           = "10.40.0.0/20"
availability_zones = ["eu-west-2a", "eu-west-2b"]
