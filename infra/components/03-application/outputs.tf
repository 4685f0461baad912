output "aggregator_function_name" {
  description = "The aggregator function (CloudWatch FunctionName dimension)."
  value       = aws_lambda_function.aggregator.function_name
}

output "aggregator_alias_arn" {
  description = "The live alias the event source mapping invokes."
  value       = aws_lambda_alias.live.arn
}

output "aggregator_version" {
  description = "Newest published aggregator version."
  value       = aws_lambda_function.aggregator.version
}

output "monitor_function_name" {
  description = "The distribution-backlog monitor function."
  value       = aws_lambda_function.monitor.function_name
}

output "metrics_namespace" {
  description = "EMF namespace of both functions."
  value       = local.aggregator_environment["POWERTOOLS_METRICS_NAMESPACE"]
}

output "service_name" {
  description = "Powertools service name: the service dimension of every EMF metric."
  value       = local.aggregator_environment["POWERTOOLS_SERVICE_NAME"]
}

output "function_timeout_seconds" {
  description = "Aggregator timeout."
  value       = aws_lambda_function.aggregator.timeout
}
