# Plans 04-observability against plans of 01, 02 and 03 made with the same environment's var-files
# (mocked AWS provider). The code's metric catalogue arrives as var.emitted_metrics (metric name ->
# dimension names), written by tests/infra from data_aggregator.telemetry, so every alarm and dashboard
# metric in the DataAggregator namespace is checked against what the functions really emit.

mock_provider "aws" {
  source = "../_mocks"
}

run "network" {
  command = apply
  module {
    source = "../01-network"
  }
}

run "stateful" {
  command = apply
  module {
    source = "../02-stateful-resources"
  }
}

run "application" {
  command = apply
  module {
    source = "../03-application"
  }
  variables {
    state_bucket     = "unused-in-tests"
    lambda_zip_path  = "../03-application/tests/fake-lambda.zip"
    upstream_outputs = { network = run.network, stateful = run.stateful }
  }
}

run "build" {
  command = apply

  variables {
    state_bucket     = "unused-in-tests"
    upstream_outputs = { stateful = run.stateful, application = run.application }
  }

  # --- Every custom metric named is emitted by the code, with exactly its dimensions ----------------

  assert {
    condition = length(aws_cloudwatch_metric_alarm.emitted) >= 5 && alltrue([for a in aws_cloudwatch_metric_alarm.emitted :
      a.namespace == run.application.metrics_namespace && contains(keys(var.emitted_metrics), a.metric_name) &&
      toset(keys(a.dimensions)) == toset(lookup(var.emitted_metrics, a.metric_name, []))
    ])
    error_message = "An alarm names a metric (or a dimension set) the code does not emit: ${jsonencode({ for k, a in aws_cloudwatch_metric_alarm.emitted : k => [a.metric_name, keys(a.dimensions)] })}"
  }

  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.emitted :
      lookup(a.dimensions, "service", run.application.service_name) == run.application.service_name &&
      lookup(a.dimensions, "DistributionBucket", run.stateful.bucket_names["distribution"]) == run.stateful.bucket_names["distribution"]
    ])
    error_message = "Alarm dimension values are the service name and the Distribution bucket the functions report."
  }

  assert {
    condition = alltrue(flatten([for w in jsondecode(aws_cloudwatch_dashboard.pipeline.dashboard_body).widgets : [for m in w.properties.metrics :
      contains(keys(var.emitted_metrics), m[1]) && toset([for i in range(2, length(m) - 1, 2) : m[i]]) == toset(lookup(var.emitted_metrics, m[1], []))
      if m[0] == run.application.metrics_namespace
    ]]))
    error_message = "A dashboard widget shows a custom metric (or dimension set) the code does not emit."
  }

  # --- Alarms fire on the right conditions ------------------------------------------------------------

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.dlq_depth.metric_name == "ApproximateNumberOfMessagesVisible" &&
      aws_cloudwatch_metric_alarm.dlq_depth.dimensions.QueueName == run.stateful.dlq_name &&
      aws_cloudwatch_metric_alarm.dlq_depth.threshold == 1 &&
      aws_cloudwatch_metric_alarm.dlq_depth.comparison_operator == "GreaterThanOrEqualToThreshold" &&
      aws_cloudwatch_metric_alarm.dlq_depth.evaluation_periods == 1
    )
    error_message = "One message in the DLQ raises the alarm at once."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.queue_oldest_message_age.metric_name == "ApproximateAgeOfOldestMessage" &&
      aws_cloudwatch_metric_alarm.queue_oldest_message_age.dimensions.QueueName == run.stateful.queue_name &&
      aws_cloudwatch_metric_alarm.queue_oldest_message_age.threshold <= 900
    )
    error_message = "The queue-age alarm watches the event queue, past one redelivery cycle at most."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.emitted["distribution-oldest-bundle-age"].treat_missing_data == "breaching"
    error_message = "A silent backlog monitor must raise the Distribution age alarm (missing data is breaching)."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.emitted["latency-slo"].metric_name == "OldestFileAgeSeconds" && aws_cloudwatch_metric_alarm.emitted["latency-slo"].threshold <= 180
    error_message = "The latency SLO alarm fires when the oldest file at publish is older than 3 minutes (SPEC N1)."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.emitted["messages-failed"].metric_name == "MessagesFailed" && aws_cloudwatch_metric_alarm.emitted["poison-messages"].metric_name == "PoisonMessages" && aws_cloudwatch_metric_alarm.emitted["poison-messages"].threshold == 0
    error_message = "Failed and poison messages alarm from the handler's own counts (SQS's age stops after three receives)."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.emitted["messages-deferred"].metric_name == "MessagesDeferred" && aws_cloudwatch_metric_alarm.emitted["messages-deferred"].evaluation_periods >= 3
    error_message = "Sustained deferrals alarm: a deferred copy restarts the queue's age, so the handler's count is the overload signal."
  }

  assert {
    condition = alltrue([for a in concat(values(aws_cloudwatch_metric_alarm.emitted), [
      aws_cloudwatch_metric_alarm.dlq_depth, aws_cloudwatch_metric_alarm.queue_oldest_message_age, aws_cloudwatch_metric_alarm.messages_sent_anomaly,
      aws_cloudwatch_metric_alarm.aggregator_errors, aws_cloudwatch_metric_alarm.aggregator_throttles, aws_cloudwatch_metric_alarm.monitor_errors,
    ]) : toset(a.alarm_actions) == toset([aws_sns_topic.alarms.arn])])
    error_message = "Every alarm notifies the alarm topic."
  }

  assert {
    condition     = var.environment != "prod" || length(aws_sns_topic_subscription.email) + length(aws_sns_topic_subscription.other) > 0
    error_message = "prod's alarm topic has a subscriber."
  }

  assert {
    condition     = aws_sns_topic.alarms.kms_master_key_id == run.stateful.kms_key_arns["pipeline"]
    error_message = "The alarm topic is encrypted with the pipeline key."
  }
}

run "prod_without_subscriber_refused" {
  command = plan

  variables {
    state_bucket        = "unused-in-tests"
    upstream_outputs    = { stateful = run.stateful, application = run.application }
    environment         = "prod"
    alarm_email         = null
    alarm_subscriptions = []
  }

  expect_failures = [var.alarm_subscriptions]
}
