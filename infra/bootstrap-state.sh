#!/usr/bin/env bash
# Creates the Terraform state bucket for an environment's account and region, once, before the first
# infra/tf.sh run. Locking uses the S3 backend's native lock file (use_lockfile = true), so no
# DynamoDB lock table is needed.
#
# Usage: infra/bootstrap-state.sh <env>
# The bucket is data-aggregator-tfstate-<account>-<region> (TF_STATE_BUCKET overrides): versioned
# (state history), encrypted, private (ACLs disabled, public access blocked), TLS only, with old
# state versions expiring after 90 days. Running it again only re-applies these settings.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
[[ $# -eq 1 ]] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
env_dir="$here/environments/$1"
[[ -d "$env_dir" ]] || { echo "bootstrap-state.sh: no environment '$1'" >&2; exit 2; }

setting() { sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\\(.*\\)\"[[:space:]]*$/\\1/p" "$2" | head -n1; }
region="$(setting region "$env_dir/backend.hcl")"
project="$(setting project "$env_dir/common.tfvars")"
account="$(aws sts get-caller-identity --query Account --output text)"
bucket="${TF_STATE_BUCKET:-${project}-tfstate-${account}-${region}}"

if aws s3api head-bucket --bucket "$bucket" --region "$region" 2>/dev/null; then
    echo "state bucket $bucket exists; re-applying its settings"
elif [[ "$region" == us-east-1 ]]; then
    aws s3api create-bucket --bucket "$bucket" --region "$region" >/dev/null
else
    aws s3api create-bucket --bucket "$bucket" --region "$region" \
        --create-bucket-configuration "LocationConstraint=$region" >/dev/null
fi

aws s3api put-public-access-block --bucket "$bucket" --region "$region" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
aws s3api put-bucket-ownership-controls --bucket "$bucket" --region "$region" \
    --ownership-controls 'Rules=[{ObjectOwnership=BucketOwnerEnforced}]'
aws s3api put-bucket-versioning --bucket "$bucket" --region "$region" --versioning-configuration Status=Enabled
aws s3api put-bucket-encryption --bucket "$bucket" --region "$region" --server-side-encryption-configuration \
    '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms"},"BucketKeyEnabled":true}]}'
aws s3api put-bucket-lifecycle-configuration --bucket "$bucket" --region "$region" --lifecycle-configuration \
    '{"Rules":[{"ID":"expire-old-state-versions","Status":"Enabled","Filter":{},
      "NoncurrentVersionExpiration":{"NoncurrentDays":90},
      "AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}}]}'
aws s3api put-bucket-policy --bucket "$bucket" --region "$region" --policy "$(cat <<JSON
{"Version":"2012-10-17","Statement":[
  {"Sid":"DenyInsecureTransport","Effect":"Deny","Principal":"*","Action":"s3:*",
   "Resource":["arn:aws:s3:::$bucket","arn:aws:s3:::$bucket/*"],
   "Condition":{"Bool":{"aws:SecureTransport":"false"}}},
  {"Sid":"DenyTlsOlderThan12","Effect":"Deny","Principal":"*","Action":"s3:*",
   "Resource":["arn:aws:s3:::$bucket","arn:aws:s3:::$bucket/*"],
   "Condition":{"NumericLessThan":{"s3:TlsVersion":"1.2"}}}
]}
JSON
)"

echo "state bucket ready: $bucket ($region)"
