# Replace with the third party's (or, in dev, your own) public egress ranges before the first apply.
uploader_source_cidrs = ["203.0.113.0/24"]

# Empty: principals of this account may assume the roles (enough for testing from a workstation).
uploader_trusted_principal_arns = []
consumer_trusted_principal_arns = []

# Throw-away environment: allow `terraform destroy` to remove the table.
deletion_protection = false

# Values from docs/latency-budget.md (same as the defaults, spelled out for review).
queue_visibility_timeout_seconds = 420
max_receive_count                = 10

# The consumer may reach Distribution from these addresses only (replace with your egress range).
consumer_source_cidrs = ["203.0.113.0/24"]

# Governance mode and one day: the bucket policy still denies the bypass to everyone, and a throw-away
# Archive can be emptied a day after its last bundle.
archive_object_lock_mode = "GOVERNANCE"
archive_object_lock_days = 1
