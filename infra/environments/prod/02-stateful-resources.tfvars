# The third party's public egress ranges (SPEC R1). Replace the documentation range before applying.
uploader_source_cidrs = ["198.51.100.0/24"]

# Named principals only (no account root outside dev). The third party's role is in its own account,
# so it must present the external ID agreed with them: a secret, so never in this file (a -var-file
# value would win over the environment). Export TF_VAR_uploader_external_id before infra/tf.sh; the
# plan refuses to run without it.
uploader_trusted_principal_arns = ["arn:aws:iam::444455556666:role/partner-uploader"]
# The on-premise consumer's role in this account (the role its IAM Roles Anywhere profile maps to).
consumer_trusted_principal_arns = ["arn:aws:iam::222222222222:role/onprem-consumer"]

# The consumer may reach Distribution only from the site's egress range (or set
# consumer_source_vpce_ids to the S3 interface endpoint the site reaches over Direct Connect instead).
consumer_source_cidrs = ["192.0.2.0/24"]

# Archive bundles cannot be deleted by anyone, root included, for a year.
archive_object_lock_mode = "COMPLIANCE"
archive_object_lock_days = 365

deletion_protection = true

# Values from docs/latency-budget.md.
queue_visibility_timeout_seconds = 420
max_receive_count                = 10
archive_deep_archive_after_days  = 30
