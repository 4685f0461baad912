locals {
  queue_name      = local.stateful.queue_name
  dlq_name        = local.stateful.dlq_name
  aggregator_name = local.application.aggregator_function_name
  namespace       = local.application.metrics_namespace
  service         = local.application.service_name
  distribution    = local.stateful.bucket_names["distribution"]
}

resource "aws_cloudwatch_dashboard" "pipeline" {
  dashboard_name = local.name
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title   = "Landing events: sent, received, oldest age (s)"
          region  = local.region
          view    = "timeSeries"
          stacked = false
          metrics = [
            ["AWS/SQS", "NumberOfMessagesSent", "QueueName", local.queue_name, { stat = "Sum", period = 60 }],
            ["AWS/SQS", "NumberOfMessagesDeleted", "QueueName", local.queue_name, { stat = "Sum", period = 60 }],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", local.queue_name, { stat = "Maximum", period = 60, yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "Dead-letter queue depth"
          region = local.region
          view   = "timeSeries"
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", local.dlq_name, { stat = "Maximum", period = 60 }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Aggregator: invocations, errors, throttles, concurrency"
          region = local.region
          view   = "timeSeries"
          metrics = [
            ["AWS/Lambda", "Invocations", "FunctionName", local.aggregator_name, { stat = "Sum", period = 60 }],
            ["AWS/Lambda", "Errors", "FunctionName", local.aggregator_name, { stat = "Sum", period = 60 }],
            ["AWS/Lambda", "Throttles", "FunctionName", local.aggregator_name, { stat = "Sum", period = 60 }],
            ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", local.aggregator_name, { stat = "Maximum", period = 60, yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Aggregator duration (ms)"
          region = local.region
          view   = "timeSeries"
          metrics = [
            ["AWS/Lambda", "Duration", "FunctionName", local.aggregator_name, { stat = "p50", period = 60 }],
            ["AWS/Lambda", "Duration", "FunctionName", local.aggregator_name, { stat = "p99", period = 60 }],
            ["AWS/Lambda", "Duration", "FunctionName", local.aggregator_name, { stat = "Maximum", period = 60 }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title  = "Distribution backlog: bundles and oldest age (s)"
          region = local.region
          view   = "timeSeries"
          metrics = [
            [local.namespace, "DistributionObjectCount", "DistributionBucket", local.distribution, "service", local.service, { stat = "Maximum", period = 300 }],
            [local.namespace, "DistributionOldestObjectAgeSeconds", "DistributionBucket", local.distribution, "service", local.service, { stat = "Maximum", period = 300, yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 12, height = 6
        properties = {
          title  = "Latency objective: oldest file at publish (s); messages retried"
          region = local.region
          view   = "timeSeries"
          metrics = [
            [local.namespace, "OldestFileAgeSeconds", "service", local.service, { stat = "Maximum", period = 60 }],
            [local.namespace, "MessagesFailed", "service", local.service, { stat = "Sum", period = 60, yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title  = "Distribution backlog: bytes"
          region = local.region
          view   = "timeSeries"
          metrics = [
            [local.namespace, "DistributionBytes", "DistributionBucket", local.distribution, "service", local.service, { stat = "Maximum", period = 300 }],
          ]
        }
      },
    ]
  })
}
