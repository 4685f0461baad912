terraform {
  # 1.11: the S3 backend's native lock file (use_lockfile) is generally available.
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # Partial configuration: infra/tf.sh supplies bucket, key, region and use_lockfile per environment.
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project     = var.project
      Environment = var.environment
      Component   = local.component
      ManagedBy   = "terraform"
    }
  }
}
