# S3 backend of the prod environment. infra/tf.sh adds the bucket (data-aggregator-tfstate-<account>-<region>,
# created by infra/bootstrap-state.sh) and one key per component: data-aggregator/prod/<component>.tfstate.
region       = "eu-west-2"
encrypt      = true
use_lockfile = true
