"""build.sh: a reproducible, runtime-only Lambda zip whose handlers import on a bare interpreter.

Builds the arm64 package twice (the digests must match) and the x86_64 variant once; the x86_64 one is
unpacked and its handler modules are imported by this machine's interpreter started with `-I -S`, so
nothing from the development environment can satisfy an import the zip itself cannot. The bytecode the
zip carries for a fast cold start must be the one Python loads, and the botocore models it keeps must
cover every client the functions create.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build.sh"

# Modules that must never ship: test tooling, linters, emulators, the HCL parser.
DEV_ONLY_TOP_LEVEL = {"pytest", "moto", "mypy", "ruff", "bandit", "hypothesis", "hcl2", "_pytest", "coverage"}

# Imports the child interpreter performs; prints what it found as JSON on stdout.
IMPORT_PROBE = """
import importlib, json, pkgutil, sys
root = sys.argv[1]
sys.path.insert(0, root)
import data_aggregator
modules = sorted(m.name for m in pkgutil.iter_modules(data_aggregator.__path__))
handlers = {}
for name in ("app", "monitor"):
    if name in modules:
        module = importlib.import_module("data_aggregator." + name)
        handlers[name] = callable(getattr(module, "handler", None))
foreign = sorted(
    name for name, module in sys.modules.items()
    if (getattr(module, "__file__", None) or "").find("site-packages") >= 0
)
from_zip = {
    name: getattr(sys.modules.get(name), "__file__", "") or ""
    for name in ("data_aggregator", "boto3", "pydantic", "aws_lambda_powertools")
}
print(json.dumps({"modules": modules, "handlers": handlers, "foreign": foreign, "from_zip": from_zip,
                  "path": sys.path}))
"""


@dataclass(frozen=True)
class Built:
    path: Path
    digest: str
    report: str


def _build(arch: str, output: Path) -> Built:
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(BUILD), "--arch", arch, "--output", str(output)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return Built(output, hashlib.sha256(output.read_bytes()).hexdigest(), result.stdout)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    out = tmp_path_factory.mktemp("dist")
    return {
        "arm64": _build("arm64", out / "first" / "lambda.zip"),
        "arm64-again": _build("arm64", out / "second" / "lambda.zip"),
        "x86_64": _build("x86_64", out / "lambda-x86_64.zip"),
    }


def test_same_inputs_give_the_same_sha256(builds: dict[str, Built]) -> None:
    assert builds["arm64"].digest == builds["arm64-again"].digest
    assert builds["arm64"].digest != builds["x86_64"].digest


def test_build_reports_size_and_digest(builds: dict[str, Built]) -> None:
    built = builds["arm64"]
    assert f"sha256: {built.digest}" in built.report
    assert f"size: {built.path.stat().st_size} bytes zipped" in built.report


def test_entries_are_sorted_with_fixed_time_and_mode(builds: dict[str, Built]) -> None:
    with zipfile.ZipFile(builds["arm64"].path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}


def test_only_runtime_code_ships(builds: dict[str, Built]) -> None:
    with zipfile.ZipFile(builds["arm64"].path) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {"data_aggregator", "boto3", "pydantic", "aws_lambda_powertools", "isal"} <= tops
    assert not tops & DEV_ONLY_TOP_LEVEL
    assert not [n for n in names if n.endswith((".pyi", ".pyo"))]
    assert not [n for n in names if n.startswith(("tests/", "bin/"))]
    assert not [n for n in names if ".dist-info/" in n and n.rsplit("/", 1)[-1] in {"RECORD", "INSTALLER"}]
    assert "data_aggregator/monitor.py" in names


@pytest.mark.parametrize(
    ("arch", "machine", "other"), [("arm64", "aarch64", "x86_64"), ("x86_64", "x86_64", "aarch64")]
)
def test_native_extensions_match_the_target(builds: dict[str, Built], arch: str, machine: str, other: str) -> None:
    with zipfile.ZipFile(builds[arch].path) as archive:
        extensions = [n for n in archive.namelist() if n.endswith(".so")]
    assert any(f"cpython-313-{machine}-linux-gnu" in n for n in extensions), extensions
    assert not [n for n in extensions if other in n]


def test_handlers_import_from_the_unpacked_x86_64_zip_alone(builds: dict[str, Built], tmp_path: Path) -> None:
    root = tmp_path / "unpacked"
    with zipfile.ZipFile(builds["x86_64"].path) as archive:
        archive.extractall(root)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "ARCHIVE_BUCKET_NAME": "archive-bucket",
        "DISTRIBUTION_BUCKET_NAME": "distribution-bucket",
        "IDEMPOTENCY_TABLE_NAME": "idempotency-table",
        "POWERTOOLS_SERVICE_NAME": "data-aggregator",
        "POWERTOOLS_METRICS_NAMESPACE": "DataAggregator",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    # -I ignores PYTHONPATH and the user site; -S drops site-packages (the venv's too), so the zip's
    # folder, inserted first on sys.path by the probe, is the only place third-party code can come from.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", IMPORT_PROBE, str(root)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["handlers"] == {"app": True, "monitor": True}
    # Operator tooling stays out of the function package.
    assert not {"cli", "ops", "sandbox"} & set(found["modules"]), found["modules"]
    assert found["foreign"] == [], "imports leaked from an installed site-packages"
    for name, file in found["from_zip"].items():
        assert file.startswith(str(root)), (name, file)


def _unpack(built: Built, root: Path) -> Path:
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(root)
    return root


def _lambda_like_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "ARCHIVE_BUCKET_NAME": "archive-bucket",
        "DISTRIBUTION_BUCKET_NAME": "distribution-bucket",
        "IDEMPOTENCY_TABLE_NAME": "idempotency-table",
    }


def test_every_module_ships_with_unchecked_bytecode_for_python_3_13(builds: dict[str, Built]) -> None:
    with zipfile.ZipFile(builds["arm64"].path) as archive:
        names = set(archive.namelist())
        pycs = sorted(n for n in names if n.endswith(".pyc"))
        headers = {n: archive.read(n)[:16] for n in pycs}
    sources = sorted(n for n in names if n.endswith(".py"))
    expected: set[str] = set()
    for source in sources:
        folder, _, file = source.rpartition("/")
        cached = f"__pycache__/{file.removesuffix('.py')}.cpython-313.pyc"
        expected.add(f"{folder}/{cached}" if folder else cached)
    assert sources, "no sources in the zip"
    assert set(pycs) == expected, sorted(set(pycs) ^ expected)[:10]
    # PEP 552 header: magic, then flags 0b01 = hash-based and never checked against the source, so the fixed
    # zip timestamps cannot make Python recompile; the magic is this 3.13 interpreter's.
    magic = importlib.util.MAGIC_NUMBER
    for name, header in headers.items():
        assert header[:4] == magic, name
        assert int.from_bytes(header[4:8], "little") == 0b01, name


def test_the_interpreter_loads_the_shipped_bytecode(builds: dict[str, Built], tmp_path: Path) -> None:
    root = _unpack(builds["x86_64"], tmp_path / "unpacked")
    # A source Python no longer reads: if the import still works, it came from the zip's .pyc.
    (root / "data_aggregator" / "telemetry.py").write_text("raise RuntimeError('source was compiled')\n")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import data_aggregator.telemetry as t; print(t.BUNDLES_WRITTEN)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", probe, str(root)],
        cwd=tmp_path,
        env=_lambda_like_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "BundlesWritten"


def test_botocore_models_cover_every_client_the_functions_create(builds: dict[str, Built], tmp_path: Path) -> None:
    root = _unpack(builds["x86_64"], tmp_path / "unpacked")
    shipped = {p.name for p in (root / "botocore" / "data").iterdir() if p.is_dir()}
    created = {
        service
        for source in (root / "data_aggregator").rglob("*.py")
        for service in re.findall(r"""\bclient\(\s*["']([a-z0-9-]+)["']""", source.read_text())
    }
    assert created == {"s3", "dynamodb", "sqs"}, created  # a new client needs its model listed in build.sh
    assert created <= shipped
    assert len(shipped) < 10, "only the services the functions call are kept"
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); from data_aggregator.clients import make_clients;"
        "c = make_clients(max_pool_connections=4); print(c.s3.meta.service_model.service_name,"
        " c.dynamodb.meta.service_model.service_name, c.sqs.meta.service_model.service_name)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", probe, str(root)],
        cwd=tmp_path,
        env=_lambda_like_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["s3", "dynamodb", "sqs"]
