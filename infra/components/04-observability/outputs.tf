output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies; subscribe on-call tooling here."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the pipeline."
  value       = aws_cloudwatch_dashboard.pipeline.dashboard_name
}
