# Set to the on-call address (or subscribe other tooling to the alarm_topic_arn output).
alarm_email                        = null
queue_age_threshold_seconds        = 600
distribution_count_threshold       = 2000
distribution_age_threshold_seconds = 3600
