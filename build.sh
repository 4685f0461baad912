#!/usr/bin/env bash
# Builds the Lambda deployment package: dist/lambda.zip for python3.13 on arm64 (Graviton).
#
# Only the locked runtime dependencies (uv export --no-dev, no extras) and the package source go in,
# installed from manylinux binary wheels for the target platform, so the zip built on an x86_64 laptop
# or CI runner is the one that runs on Lambda. The zip is reproducible: entries are sorted, every
# timestamp is fixed and permissions are normalised, so the same lock and source give the same SHA-256.
#
# Usage: ./build.sh [--arch arm64|x86_64] [--output PATH]
#   LAMBDA_ARCH and LAMBDA_ZIP set the same from the environment (flags win).
#   The default output is dist/lambda.zip for arm64 and dist/lambda-x86_64.zip for x86_64.
#   PYTHON313 names the Python 3.13 that compiles the bytecode (default: PYTHON if it is 3.13, else uv's).
set -euo pipefail

cd "$(dirname "$0")"
root="$(pwd)"

arch="${LAMBDA_ARCH:-arm64}"
output="${LAMBDA_ZIP:-}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --arch) arch="${2:?--arch needs a value}"; shift 2 ;;
        --arch=*) arch="${1#*=}"; shift ;;
        --output) output="${2:?--output needs a value}"; shift 2 ;;
        --output=*) output="${1#*=}"; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

case "$arch" in
    arm64|aarch64) arch=arm64; platform=aarch64-manylinux2014; default_output=dist/lambda.zip ;;
    x86_64|amd64) arch=x86_64; platform=x86_64-manylinux2014; default_output=dist/lambda-x86_64.zip ;;
    *) echo "build.sh: --arch must be arm64 or x86_64 (got '$arch')" >&2; exit 2 ;;
esac
output="${output:-$default_output}"
[[ "$output" = /* ]] || output="$root/$output"

# `uv run` exports UV (its own path); otherwise take the one on PATH.
uv="${UV:-$(command -v uv || true)}"
if [[ -z "$uv" ]] || ! "$uv" --version >/dev/null 2>&1; then
    echo "build.sh: uv is required (make bootstrap installs it)" >&2
    exit 1
fi
# Two things keep the function's cold start short (docs/performance.md, "Cold start"):
# * bytecode ships in the zip. Lambda's /var/task is read-only, so Python cannot cache what it compiles:
#   without .pyc files every cold start compiles every module it imports (about two thirds of the init
#   time). They are compiled by Python 3.13 (the runtime's bytecode format) with unchecked hashes, so
#   the fixed 1980 timestamps in the zip never make Python recompile or reread a source to check it;
#   the sources stay next to them for tracebacks.
# * botocore's service models are kept only for the services the functions call (botocore_services below):
#   the other four hundred are most of the package's bytes and are data, never imported code.
python="${PYTHON:-python3}"  # any Python 3 works for pruning and zipping
# Bytecode must be written by the runtime's minor version: another one's .pyc would be ignored.
python313="${PYTHON313:-}"
if [[ -z "$python313" ]]; then
    if "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
        python313="$python"
    else
        python313="$("$uv" python find 3.13 2>/dev/null || true)"
    fi
fi
if [[ -z "$python313" ]] || ! "$python313" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then
    echo "build.sh: a Python 3.13 interpreter is needed to compile the bytecode (set PYTHON313)" >&2
    exit 1
fi
# Every service a function creates a client for (clients.py, monitor.py), plus X-Ray, which the tracing
# SDK calls outside Lambda, and STS, which credential providers may call.
botocore_services=(dynamodb s3 sqs sts xray)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/package"
mkdir -p "$stage" "$(dirname "$output")"

# Runtime dependencies exactly as locked, with their hashes; the project itself is copied below.
"$uv" export --frozen --no-dev --no-emit-project --format requirements-txt --quiet \
    --output-file "$work/requirements.txt"

# --no-deps: the export is already the full, resolved set; nothing else may sneak in.
"$uv" pip install --quiet --no-config --no-deps --require-hashes \
    --python-version 3.13 --python-platform "$platform" --only-binary=:all: \
    --no-compile --target "$stage" -r "$work/requirements.txt"

cp -R src/data_aggregator "$stage/data_aggregator"
# Operator tooling (CLI, replay/verify/consume, the local sandbox) never runs inside Lambda.
rm -rf "$stage/data_aggregator/cli.py" "$stage/data_aggregator/ops" "$stage/data_aggregator/sandbox"

# The zip is written by Python so that order, timestamps and modes are under our control.
"$python" - "$stage" "$output" "$python313" "${botocore_services[@]}" <<'PY'
"""Prune what Lambda never reads, compile the bytecode it does, then write a deterministic zip."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

stage, output, python313 = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
botocore_services = set(sys.argv[4:])

# Console scripts, caches, type stubs and installer bookkeeping are dead weight in a function. A
# dist-info folder keeps what importlib.metadata and licence compliance need: METADATA, entry points,
# top_level.txt and the licence files.
KEEP_METADATA = {"METADATA", "entry_points.txt", "top_level.txt"}
LICENCE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")


def unwanted(rel: Path, is_dir: bool) -> bool:
    top, name = rel.parts[0], rel.name
    if top == "bin" or name == ".lock" or top.endswith("-stubs"):
        return True
    if top.endswith(".dist-info") and len(rel.parts) > 1:
        if len(rel.parts) == 2:
            return not (name in KEEP_METADATA or name.startswith(LICENCE_PREFIXES) or name == "licenses")
        return rel.parts[1] != "licenses"
    if is_dir:
        return name == "__pycache__"
    return rel.suffix in {".pyc", ".pyo", ".pyi"}


for path in sorted(stage.rglob("*"), reverse=True):
    if not path.exists() and not path.is_symlink():
        continue
    rel = path.relative_to(stage)
    if unwanted(rel, path.is_dir()):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

models = stage / "botocore" / "data"
missing = botocore_services - {p.name for p in models.iterdir() if p.is_dir()}
if missing:
    sys.exit(f"build.sh: botocore has no model for {sorted(missing)}")
for service in sorted(p for p in models.iterdir() if p.is_dir() and p.name not in botocore_services):
    shutil.rmtree(service)

# /var/task is where Lambda unpacks the zip: recording it as the source path (instead of this scratch
# folder) keeps the bytecode, and so the zip, identical from one build to the next. A fixed hash seed
# keeps the order of frozenset constants fixed too.
subprocess.run(
    [python313, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
     "-s", str(stage), "-p", "/var/task", str(stage)],
    check=True,
    env={**os.environ, "PYTHONHASHSEED": "0"},
)

# 1980-01-01 is the earliest time a zip can record; any fixed value would do.
epoch = (1980, 1, 1, 0, 0, 0)
files = sorted((p for p in stage.rglob("*") if p.is_file()), key=lambda p: p.relative_to(stage).as_posix())
output.unlink(missing_ok=True)
with zipfile.ZipFile(output, "w") as archive:
    for path in files:
        rel = path.relative_to(stage).as_posix()
        info = zipfile.ZipInfo(rel, date_time=epoch)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 3  # Unix, so external_attr below is read as a mode
        info.external_attr = 0o100644 << 16  # regular file, rw-r--r--: Lambda only reads and dlopens

        archive.writestr(info, path.read_bytes(), compresslevel=9)
PY

size=$(wc -c <"$output" | tr -d ' ')
if command -v sha256sum >/dev/null 2>&1; then
    digest=$(sha256sum "$output" | cut -d' ' -f1)
else
    digest=$(shasum -a 256 "$output" | cut -d' ' -f1)
fi
unpacked=$("$python" -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' "$output")
echo "built ${output#"$root"/} (python3.13, $arch)"
echo "size: $size bytes zipped, $unpacked bytes unzipped (Lambda limit: 262144000 unzipped)"
echo "sha256: $digest"
