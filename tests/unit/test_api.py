"""The library API called directly, with no command line: typed results, outcomes instead of
exits, and the registry and store left as the calls say."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlops_cli import api
from mlops_cli.config import Settings, resolve_settings
from mlops_cli.errors import EXIT_USAGE, NotFoundError
from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit


@pytest.fixture
def model(isolated_config: Path) -> Path:
    folder = isolated_config / "tiny"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    return folder


@pytest.fixture
def settings(isolated_config: Path) -> Settings:
    return resolve_settings()


def test_validate_upload_register_and_resolve_without_the_cli(
    model: Path, settings: Settings
) -> None:
    report = api.validate(folder=model)
    assert report.outcome.ok and report.errors == [] and report.spec is not None
    assert report.to_dict()["valid"] is True

    uploaded = api.upload(source=str(model), settings=settings)
    assert uploaded.files >= 2 and uploaded.blobs_sent == uploaded.blobs_total
    again = api.upload(source=str(model), settings=settings)
    assert (again.digest, again.blobs_sent) == (uploaded.digest, 0)  # nothing sent twice

    registered = api.register(source=uploaded.uri, settings=settings, alias="staging")
    assert registered.registered.created
    name = report.spec.name
    [version] = api.list_versions(model=name, settings=settings)
    assert version.version == 1 and version.package_digest == uploaded.digest

    overview = api.show_model(model=name, settings=settings)
    assert [(a.alias, a.version) for a in overview.aliases] == [("staging", 1)]
    assert overview.to_dict()["aliases"][0]["alias"] == "staging"

    api.set_route(tenant="acme", model=name, settings=settings, alias="staging")
    resolution = api.resolve_route(tenant="acme", model=name, settings=settings)
    assert (resolution.version, resolution.source) == (1, "route")


def test_validation_errors_are_an_outcome_not_an_exception(model: Path) -> None:
    spec = model / "mlops.yaml"
    spec.write_text(spec.read_text() + "\nreplicas_wanted: 3\n")
    report = api.validate(folder=model)
    assert report.errors and report.outcome.exit_code == EXIT_USAGE
    assert report.outcome.error is None  # the findings are the report; no extra error line
    assert report.to_dict()["valid"] is False


def test_damage_left_in_the_store_is_an_outcome_with_its_error(
    model: Path, settings: Settings
) -> None:
    uploaded = api.upload(source=str(model), settings=settings)
    assert api.verify_store(settings=settings).outcome.ok
    blobs = sorted(p for p in settings.workspace.rglob("*") if "blobs" in p.parts and p.is_file())
    assert len(blobs) == uploaded.blobs_total
    blobs[0].write_bytes(b"not what it was")
    check = api.verify_store(settings=settings)
    assert len(check.result.damaged) == 1
    assert check.outcome.exit_code == 1 and check.outcome.error is not None
    assert "--repair" in (check.outcome.error.hint or "")
    repaired = api.verify_store(settings=settings, repair=True)
    assert repaired.outcome.ok and repaired.result.damaged[0].quarantined


def test_status_reads_an_empty_registry_as_nothing_deployed(settings: Settings) -> None:
    report = api.status(settings=settings)
    assert report.deployments == [] and report.outcome.ok
    with pytest.raises(NotFoundError):
        api.status(settings=settings, model="ghost")


def test_local_up_with_a_deployment_not_loaded_again_says_so_in_one_error() -> None:
    """`local up` whose reload failed exits 1 with an error line (shown with --quiet and in the
    --json document), not only warnings."""
    from mlops_cli.api.local import LocalUp
    from mlops_cli.deploy.local import LocalStart
    from mlops_cli.local.manager import LocalServerStatus

    running = LocalServerStatus(state="running", server="local Triton")
    assert LocalUp(LocalStart(False, running, ["a-v1"], {})).outcome.ok
    outcome = LocalUp(LocalStart(False, running, [], {"b-v2": "load failed"})).outcome
    assert outcome.exit_code == 1 and outcome.error is not None
    assert "1 deployment(s) were not loaded again: b-v2" in outcome.error.message
