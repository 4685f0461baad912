# Plans 01-network with a mocked AWS provider, using the environment's var-files (tests/infra runs
# `terraform test` once per environment), and checks what the plan would build.

mock_provider "aws" {
  override_data {
    target = data.aws_availability_zones.selected
    values = { names = ["eu-west-2a", "eu-west-2b", "eu-west-2c"] }
  }
}

run "plan" {
  command = plan

  assert {
    condition     = length(aws_subnet.private) == length(var.availability_zones) && length(var.availability_zones) >= 2
    error_message = "One private subnet per listed zone, at least two zones."
  }
}
