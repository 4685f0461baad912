terraform {
  # 1.11: the S3 backend's native lock file (use_lockfile) is generally available.
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.100 is what the offline check mirror carries; nothing here needs 6.x.
      version = ">= 5.100, < 7.0"
    }
  }

  # Partial configuration: infra/tf.sh supplies bucket, key, region and use_lockfile per environment.
  backend "s3" {}
}

provider "aws" {
  region              = var.aws_region
  allowed_account_ids = [var.aws_account_id]

  default_tags {
    tags = {
      Project     = var.project
      Environment = var.environment
      Component   = local.component
      ManagedBy   = "terraform"
    }
  }
}
