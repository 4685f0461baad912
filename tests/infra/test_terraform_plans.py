"""terraform validate and the plan tests of every component for every environment, offline.

The assertions themselves live next to the configuration (``infra/components/*/tests/*.tftest.hcl``)
and run against a mocked AWS provider, so they see the evaluated plan: for_each and count expanded,
variables validated, preconditions checked and, for 03 and 04, the outputs of the earlier components
really produced. This module drives them per environment and fails on any failed run. Without a
terraform binary or the provider mirror these tests skip locally and fail in CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra import mutations, tfharness


@pytest.fixture(scope="module")
def workspace() -> Iterator[tfharness.Workspace]:
    try:
        yield tfharness.workspace()
    except tfharness.TerraformUnavailable as exc:
        if tfharness.in_ci():
            pytest.fail(f"terraform checks are required in CI: {exc}")
        pytest.skip(f"terraform checks unavailable here: {exc}")


@pytest.mark.parametrize("component", tfharness.COMPONENTS)
def test_validate(workspace: tfharness.Workspace, component: str) -> None:
    result = tfharness.validate(workspace, component)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("env", tfharness.environments())
@pytest.mark.parametrize("component", tfharness.COMPONENTS)
def test_plan(workspace: tfharness.Workspace, component: str, env: str) -> None:
    result = tfharness.plan_tests(workspace, component, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout, result.stdout
    assert " passed" in result.stdout, result.stdout


@pytest.mark.parametrize("name", mutations.REPRESENTATIVE)
def test_plan_tests_catch_representative_breakage(workspace: tfharness.Workspace, name: str) -> None:
    (mutation,) = [m for m in mutations.MUTATIONS if m.name == name]
    outcome = mutations.run_mutation(mutation)
    assert outcome.caught, f"{mutation.description} went unnoticed:\n{outcome.output}"


def test_missing_terraform_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI must not pass on a machine that could not run the checks; a workstation gets a clear skip."""
    monkeypatch.setenv("TERRAFORM", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    assert tfharness.main(["validate"]) == 1
    monkeypatch.setenv("CI", "")
    assert tfharness.main(["validate"]) == 0


def test_missing_provider_mirror_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TF_PROVIDER_MIRROR", str(tmp_path))
    with pytest.raises(tfharness.TerraformUnavailable, match="TF_PROVIDER_MIRROR"):
        tfharness.provider_mirror()
