# prod refuses to plan without a subscriber: replace with the on-call address, or list on-call tooling
# in alarm_subscriptions.
alarm_email                        = "data-aggregator-oncall@example.com"
queue_age_threshold_seconds        = 600
distribution_count_threshold       = 2000
distribution_age_threshold_seconds = 3600
