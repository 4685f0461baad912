# Values from docs/latency-budget.md (the defaults).
function_timeout_seconds = 60
batch_size               = 1000
batching_window_seconds  = 20
max_concurrency          = 5
claim_lease_seconds      = 300
log_level                = "DEBUG"
log_retention_days       = 365
