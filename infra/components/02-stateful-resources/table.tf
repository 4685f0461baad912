# Idempotency claims (SPEC §3): partition key ObjectID, TTL attribute equal to the code's
# DYNAMODB_TTL_ATTRIBUTE. On demand, because the load is bursty (10 to 100 files/s) and claims are
# small; point-in-time recovery, because losing the table would re-publish up to a week of files.

resource "aws_dynamodb_table" "idempotency" {
  name                        = "${local.name}-idempotency"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "ObjectID"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "ObjectID"
    type = "S"
  }

  ttl {
    attribute_name = var.ttl_attribute
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.pipeline.arn
  }
}
