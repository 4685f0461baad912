"""Runs Terraform offline over infra/: init against a local provider mirror, validate, plan tests.

Why a harness: there is no registry access where the checks run, so ``terraform init`` must install
``hashicorp/aws`` from a filesystem mirror named in a CLI configuration that the project writes itself
(never the user's own). Terraform writes ``.terraform.lock.hcl`` next to the configuration, and a lock
file recorded against the mirror's provider build must not leak into the components, so every run works
on a copy of ``infra/components`` inside an ignored cache directory, where ``init`` is also cached.

The same functions serve ``make lint`` (validate), ``make test`` (plan tests per environment) and the
mutation check (plan tests over a deliberately broken copy of infra/).

Command line: ``python -m tests.infra.tfharness validate|plans|mutations``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess  # nosec B404 - runs the terraform binary with argument lists, never a shell
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CACHE = Path(os.environ.get("TF_CHECK_CACHE") or REPO / ".tfcheck")
COMPONENTS = ("01-network", "02-stateful-resources", "03-application", "04-observability")
# Mirrors lay providers out as <host>/<namespace>/<type>/<version>/<platform>/; the host directory is
# whatever the provider's source address names, so only the namespace and type are matched here.
PROVIDER = "hashicorp/aws"
# Where terraform and the usual packaging tools put provider mirrors; `/` last, bounded in depth.
MIRROR_SEARCH_ROOTS = (
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
    Path("/"),
)


class TerraformUnavailable(RuntimeError):
    """The terraform binary or the provider mirror is missing: a skip locally, a failure in CI."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def environments(infra: Path = INFRA) -> list[str]:
    return sorted(p.name for p in (infra / "environments").iterdir() if p.is_dir())


def terraform_binary() -> str:
    found = os.environ.get("TERRAFORM") or shutil.which("terraform")
    if not found:
        raise TerraformUnavailable("no terraform binary on PATH (or in $TERRAFORM)")
    return found


def _mirror_root(provider_binary: Path) -> Path:
    """The directory a filesystem_mirror names: the parent of the host directory above ``hashicorp/aws``."""
    for parent in provider_binary.parents:
        if parent.name == "aws" and parent.parent.name == "hashicorp":
            return parent.parent.parent.parent
    raise TerraformUnavailable(f"{provider_binary} is not inside a provider mirror layout")


def _has_provider(mirror: Path) -> bool:
    return mirror.is_dir() and any((host / PROVIDER).is_dir() for host in mirror.iterdir() if host.is_dir())


def provider_mirror() -> Path:
    """The provider mirror: $TF_PROVIDER_MIRROR, else found on disk once and remembered in the cache."""
    explicit = os.environ.get("TF_PROVIDER_MIRROR")
    if explicit:
        path = Path(explicit)
        if not _has_provider(path):
            raise TerraformUnavailable(f"TF_PROVIDER_MIRROR has no <host>/{PROVIDER} directory")
        return path
    remembered = CACHE / "mirror-path"
    if remembered.exists():
        path = Path(remembered.read_text(encoding="utf-8").strip())
        if _has_provider(path):
            return path
    for root in MIRROR_SEARCH_ROOTS:
        if not root.is_dir():
            continue
        result = subprocess.run(  # nosec B603 B607 - fixed argument list
            [
                "find", str(root), "-maxdepth", "9",
                "(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/dev", "-o", "-path", str(REPO), ")",
                "-prune", "-o",
                "-path", f"*/{PROVIDER}/*", "-name", "terraform-provider-aws*", "-print",
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        hits = [line for line in result.stdout.splitlines() if line.strip()]
        if hits:
            path = _mirror_root(Path(sorted(hits)[-1]))
            CACHE.mkdir(parents=True, exist_ok=True)
            remembered.write_text(f"{path}\n", encoding="utf-8")
            return path
    raise TerraformUnavailable(f"no filesystem mirror of {PROVIDER} found (set TF_PROVIDER_MIRROR)")


def cli_config() -> Path:
    """A CLI configuration that installs the AWS provider from the mirror and never from the network."""
    mirror = provider_mirror()
    path = CACHE / "terraform.tfrc"
    text = f"provider_installation {{\n  filesystem_mirror {{\n    path = {json.dumps(str(mirror))}\n  }}\n}}\n"
    CACHE.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def terraform_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TF_CLI_CONFIG_FILE=str(cli_config()),
        TF_DATA_DIR=str(data_dir),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        NO_COLOR="1",
        CHECKPOINT_DISABLE="1",
        # As an operator passes it (infra/environments/prod/02-stateful-resources.tfvars): the external
        # ID is a secret and never sits in a var-file, whose value would win over this one.
        TF_VAR_uploader_external_id="test-uploader-external-id",
    )
    env.pop("TF_WORKSPACE", None)
    return env


def _sync_tree(source: Path, target: Path) -> None:
    """Mirror the configuration files of ``source`` into ``target`` (Terraform's own files are kept)."""
    wanted = {
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file() and ".terraform" not in path.parts and path.name != ".terraform.lock.hcl"
    }
    for path in list(target.rglob("*")) if target.exists() else []:
        rel = path.relative_to(target)
        if path.is_file() and rel.parts[0] != ".terraform" and rel.name != ".terraform.lock.hcl" and rel not in wanted:
            path.unlink()
    for rel in wanted:
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = (source / rel).read_bytes()
        if not dest.exists() or dest.read_bytes() != data:
            dest.write_bytes(data)


@dataclass(frozen=True)
class Workspace:
    """A copy of infra/components plus per-component Terraform data, ready for validate and test."""

    infra: Path
    root: Path

    def component_dir(self, component: str) -> Path:
        return self.root / "components" / component

    def data_dir(self, component: str) -> Path:
        return CACHE / "data" / component

    def run(self, component: str, args: Sequence[str], *, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # nosec B603 - terraform with an argument list
            [terraform_binary(), *args],
            cwd=self.component_dir(component),
            env=terraform_env(self.data_dir(component)),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def var_files(self, env: str, components: Iterable[str]) -> list[str]:
        files = [self.infra / "environments" / env / "common.tfvars"]
        files += [self.infra / "environments" / env / f"{c}.tfvars" for c in components]
        return [f"-var-file={f}" for f in files if f.exists()]


def workspace(infra: Path = INFRA, name: str = "work") -> Workspace:
    """Copy ``infra`` into the cache and make sure every component is initialised against the mirror."""
    terraform_binary()
    root = CACHE / name
    _sync_tree(infra / "components", root / "components")
    ws = Workspace(infra=infra, root=root)
    for component in COMPONENTS:
        _init(ws, component)
    return ws


def _init(ws: Workspace, component: str) -> None:
    """``init -backend=false``, repeated only when the provider requirements or the mirror change."""
    # Provider requirements live in versions.tf; the test files name the modules init must record.
    digest = hashlib.sha256(cli_config().read_bytes())
    for path in [ws.component_dir(component) / "versions.tf", *sorted(ws.component_dir(component).glob("tests/*.hcl"))]:
        digest.update(path.name.encode() + path.read_bytes())
    stamp_value = digest.hexdigest()
    stamp = ws.data_dir(component) / "init.stamp"
    lock = ws.component_dir(component) / ".terraform.lock.hcl"
    if stamp.exists() and lock.exists() and stamp.read_text(encoding="utf-8") == stamp_value:
        return
    shared_lock = CACHE / "locks" / f"{component}.terraform.lock.hcl"
    if stamp.exists() and shared_lock.exists() and stamp.read_text(encoding="utf-8") == stamp_value:
        shutil.copyfile(shared_lock, lock)
        return
    result = ws.run(component, ["init", "-backend=false", "-input=false", "-no-color"])
    if result.returncode != 0:
        raise RuntimeError(f"terraform init failed for {component}:\n{result.stdout}\n{result.stderr}")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    shared_lock.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(lock, shared_lock)
    stamp.write_text(stamp_value, encoding="utf-8")


def metrics_var_file() -> Path:
    """The code's metric catalogue as a tfvars file, so plan tests compare alarms with what is emitted."""
    sys.path.insert(0, str(REPO / "src"))
    from data_aggregator import telemetry

    emitted = {name: list(telemetry.HANDLER_DIMENSIONS) for name in sorted(telemetry.HANDLER_METRICS)}
    emitted.update({name: list(telemetry.MONITOR_DIMENSIONS) for name in sorted(telemetry.MONITOR_METRICS)})
    path = CACHE / "emitted-metrics.tfvars.json"
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"emitted_metrics": emitted}, indent=2) + "\n", encoding="utf-8")
    return path


def validate(ws: Workspace, component: str) -> subprocess.CompletedProcess[str]:
    return ws.run(component, ["validate", "-no-color"])


# A plan test of a component also plans the components it reads (run blocks with their own module),
# so it needs their variables too.
UPSTREAM = {
    "01-network": ("01-network",),
    "02-stateful-resources": ("02-stateful-resources",),
    "03-application": ("01-network", "02-stateful-resources", "03-application"),
    "04-observability": ("01-network", "02-stateful-resources", "03-application", "04-observability"),
}


def plan_tests(ws: Workspace, component: str, env: str) -> subprocess.CompletedProcess[str]:
    """``terraform test`` of one component with one environment's var-files and the metric catalogue."""
    args = ["test", "-no-color", *ws.var_files(env, UPSTREAM[component]), f"-var-file={metrics_var_file()}"]
    return ws.run(component, args)


def failed_assertions(output: str) -> list[str]:
    """Title and message of each error terraform test printed (failed assertions, preconditions...)."""
    messages: list[str] = []
    for chunk in output.split("\nError: ")[1:]:
        title, _, body = chunk.partition("\n")
        body = body.split("\nError: ")[0]
        paragraphs = [p for p in body.split("\n\n") if p.strip() and not p.lstrip().startswith(("on ", "with "))]
        message = " ".join(paragraphs[0].split()) if paragraphs else ""
        messages.append(f"{title.strip()}: {message}" if message else title.strip())
    return messages


def _cmd_validate(_: argparse.Namespace) -> int:
    ws = workspace()
    status = 0
    for component in COMPONENTS:
        started = time.monotonic()
        result = validate(ws, component)
        verdict = "ok" if result.returncode == 0 else "FAILED"
        print(f"infra: terraform validate {component}: {verdict} ({time.monotonic() - started:.1f} s)")
        if result.returncode != 0:
            print(result.stdout + result.stderr)
            status = 1
    return status


def _cmd_plans(args: argparse.Namespace) -> int:
    ws = workspace()
    status = 0
    for env in args.env or environments():
        for component in args.component or COMPONENTS:
            started = time.monotonic()
            result = plan_tests(ws, component, env)
            verdict = "ok" if result.returncode == 0 else "FAILED"
            print(f"infra: plan tests {env}/{component}: {verdict} ({time.monotonic() - started:.1f} s)")
            if result.returncode != 0:
                print(result.stdout + result.stderr)
                status = 1
    return status


def _cmd_mutations(args: argparse.Namespace) -> int:
    from tests.infra.mutations import MUTATIONS, run_mutation

    selected = [m for m in MUTATIONS if not args.only or m.name in args.only]
    survivors = 0
    print("| breakage | caught | by |")
    print("|---|---|---|")
    for mutation in selected:
        outcome = run_mutation(mutation)
        survivors += 0 if outcome.caught else 1
        by = "; ".join(outcome.messages[:2]) or "-"
        print(f"| {mutation.description} | {'yes' if outcome.caught else 'NO'} | {by} |", flush=True)
    return 1 if survivors else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.infra.tfharness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("validate", help="terraform validate every component").set_defaults(func=_cmd_validate)
    plans = sub.add_parser("plans", help="terraform test every component for every environment")
    plans.add_argument("--env", action="append")
    plans.add_argument("--component", action="append")
    plans.set_defaults(func=_cmd_plans)
    mutations = sub.add_parser("mutations", help="break infra/ on purpose and check the plan tests notice")
    mutations.add_argument("--only", action="append")
    mutations.set_defaults(func=_cmd_mutations)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except TerraformUnavailable as exc:
        if in_ci():
            print(f"infra: FAILED: {exc} (required in CI)", file=sys.stderr)
            return 1
        print(f"infra: SKIPPED terraform checks: {exc}", file=sys.stderr)
        return 0


if __name__ == "__main__":
    sys.exit(main())
