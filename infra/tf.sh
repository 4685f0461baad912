#!/usr/bin/env bash
# Runs Terraform for one environment, component by component, in deployment order.
#
# Usage: infra/tf.sh <env> <plan|apply|destroy|init|output|validate> [component] [-- terraform args...]
#   infra/tf.sh dev plan                       plan every component (01 -> 04)
#   infra/tf.sh dev apply 03-application       apply one component
#   infra/tf.sh prod apply -- -auto-approve    extra arguments go to terraform
# destroy walks the components in reverse order.
#
# Backend and variables come from infra/environments/<env>/: backend.hcl (region, lock file),
# common.tfvars (project, environment, region) and <component>.tfvars. The state bucket is
# data-aggregator-tfstate-<account>-<region> (infra/bootstrap-state.sh creates it) unless
# TF_STATE_BUCKET names another. Each component keeps its own .terraform/<env> data directory, so
# switching environments never reuses another environment's backend.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
components=(01-network 02-stateful-resources 03-application 04-observability)

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[[ $# -ge 2 ]] || usage
env="$1"; action="$2"; shift 2
selected=()
if [[ $# -gt 0 && "$1" != "--" ]]; then selected=("$1"); shift; fi
[[ $# -gt 0 && "$1" == "--" ]] && shift
extra=("$@")

env_dir="$here/environments/$env"
[[ -d "$env_dir" ]] || { echo "tf.sh: no environment '$env' under infra/environments" >&2; exit 2; }
case "$action" in plan|apply|destroy|init|output|validate) ;; *) usage ;; esac

if [[ ${#selected[@]} -eq 0 ]]; then
    selected=("${components[@]}")
    if [[ "$action" == destroy ]]; then
        selected=(04-observability 03-application 02-stateful-resources 01-network)
    fi
fi
for component in "${selected[@]}"; do
    [[ -d "$here/components/$component" ]] || { echo "tf.sh: unknown component '$component'" >&2; exit 2; }
done

# `key = "value"` lines of the environment's files, read without evaluating them.
setting() { sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\\(.*\\)\"[[:space:]]*$/\\1/p" "$2" | head -n1; }

region="$(setting region "$env_dir/backend.hcl")"
project="$(setting project "$env_dir/common.tfvars")"
[[ -n "$region" && -n "$project" ]] || { echo "tf.sh: backend.hcl needs region, common.tfvars needs project" >&2; exit 2; }

if [[ -z "${TF_STATE_BUCKET:-}" ]]; then
    account="$(aws sts get-caller-identity --query Account --output text)"
    TF_STATE_BUCKET="${project}-tfstate-${account}-${region}"
fi
export TF_VAR_state_bucket="$TF_STATE_BUCKET"
export TF_VAR_state_region="$region"

for component in "${selected[@]}"; do
    dir="$here/components/$component"
    echo "==> $env / $component: terraform $action" >&2
    export TF_DATA_DIR="$dir/.terraform/$env"
    terraform -chdir="$dir" init -input=false -reconfigure \
        -backend-config="$env_dir/backend.hcl" \
        -backend-config="bucket=$TF_STATE_BUCKET" \
        -backend-config="key=$project/$env/$component.tfstate" >/dev/null
    var_files=(-var-file="$env_dir/common.tfvars")
    [[ -f "$env_dir/$component.tfvars" ]] && var_files+=(-var-file="$env_dir/$component.tfvars")
    case "$action" in
        init) ;;
        validate) terraform -chdir="$dir" validate ;;
        output) terraform -chdir="$dir" output "${extra[@]}" ;;
        *) terraform -chdir="$dir" "$action" -input=false "${var_files[@]}" "${extra[@]}" ;;
    esac
done
