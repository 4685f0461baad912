# Values from docs/latency-budget.md.
function_timeout_seconds = 60
memory_mb                = 1769
ephemeral_storage_mb     = 1024
batch_size               = 1000
batching_window_seconds  = 20
max_concurrency          = 10
claim_lease_seconds      = 300
fetch_concurrency        = 32
log_level                = "INFO"
log_retention_days       = 365
