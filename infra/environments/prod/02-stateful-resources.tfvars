# The third party's public egress ranges (SPEC R1). Replace the documentation range before applying.
uploader_source_cidrs = ["198.51.100.0/24"]

# The third party's role (cross-account) and the on-premise consumer's identity, for example:
# uploader_trusted_principal_arns = ["arn:aws:iam::111122223333:role/partner-uploader"]
# consumer_trusted_principal_arns = ["arn:aws:iam::444455556666:role/onprem-consumer"]
uploader_trusted_principal_arns = []
consumer_trusted_principal_arns = []

deletion_protection = true

# Values from docs/latency-budget.md.
queue_visibility_timeout_seconds = 420
max_receive_count                = 10
archive_deep_archive_after_days  = 30
