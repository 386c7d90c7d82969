"""examples/ci/pipeline.sh, the steps the CI examples run, end to end on this machine: the local
Triton as staging, a SQLite registry, S3 on the moto server. A release that meets its SLA is
promoted and its report becomes the next baseline; one that misses it is rolled back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

PIPELINE = REPO_ROOT / "examples" / "ci" / "pipeline.sh"
BUCKET = "mlops-ci-test"
BASELINE = f"s3://{BUCKET}/perf/iris-classifier/production/report.json"


@pytest.fixture
def release(aws: Any, local_triton: Any, tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """A model folder (the iris example, weights built), the pipeline's environment, its state."""
    examples = tmp_path / "examples"
    shutil.copytree(REPO_ROOT / "examples", examples, ignore=shutil.ignore_patterns("weights"))
    subprocess.run([sys.executable, str(examples / "build.py")], check=True, capture_output=True)
    model = examples / "iris-classifier"
    state = tmp_path / "state"
    environ = {
        **os.environ,
        **aws.env(),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MLOPS_WORKSPACE": str(local_triton.workspace.root),
        "MLOPS_REGISTRY": f"sqlite:///{tmp_path / 'registry.db'}",
        "MLOPS_STORE": f"s3://{BUCKET}/store",
        "BASELINE_URI": BASELINE,
        "MODEL_DIR": str(model),
        "STATE_DIR": str(state),
        "PERF_ARGS": "--concurrency 2 --requests 200 --warmup 0s",
        "SLA": "p99<2s,error_rate<1%",
        "COMMIT": "c0ffee",
        "AUTHOR": "ci-bot",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    return model, environ, state


def pipeline(environ: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PIPELINE), *args],
        env={**environ, **extra},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def mlops(environ: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "mlops_cli", *args, "--json"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return json.loads(done.stdout)


def aliases(environ: dict[str, str]) -> dict[str, int]:
    return {a["alias"]: a["version"] for a in mlops(environ, "alias", "list", "iris-classifier")}


def test_release_promotes_then_a_missed_sla_rolls_back(
    release: tuple[Path, dict[str, str], Path], aws: Any
) -> None:
    import boto3

    model, environ, state = release
    first = pipeline(environ, "local")
    assert first.returncode == 0, first.stderr
    assert aliases(environ) == {"staging": 1, "production": 1}
    [version] = mlops(environ, "models", "versions", "iris-classifier")
    assert version["tags"] == {"commit": "c0ffee", "author": "ci-bot"}
    s3 = boto3.client("s3", endpoint_url=aws.endpoint)
    stored = s3.get_object(Bucket=BUCKET, Key=BASELINE.split("/", 3)[3])["Body"].read()
    assert json.loads(stored) == json.loads((state / "perf" / "report.json").read_text())
    assert "p99" in Path(environ["GITHUB_STEP_SUMMARY"]).read_text()

    # The next release misses its SLA: measured against the last release's report, then staging
    # goes back to v1, v2 is unloaded, and @production never moved.
    with (model / "model.py").open("a") as code:
        code.write("# v2\n")
    second = pipeline(environ, "local", SLA="p99<1us")
    assert second.returncode == 3, second.stderr
    assert "p99<1us" in second.stderr and "rolled back" in second.stderr
    report = json.loads((state / "perf" / "report.json").read_text())
    assert report["baseline"] is not None
    assert aliases(environ) == {"staging": 1, "production": 1}
    served = {(d["version"], d["state"]) for d in mlops(environ, "status")["deployments"]}
    assert served == {(1, "READY")}


def test_promote_is_compare_and_swap(release: tuple[Path, dict[str, str], Path]) -> None:
    model, environ, _ = release
    assert pipeline(environ, "local").returncode == 0
    with (model / "model.py").open("a") as code:
        code.write("# v2\n")
    for step in ("validate", "upload", "register", "deploy"):
        done = pipeline(environ, step)
        assert done.returncode == 0, done.stderr
    # While this release ran, @production moved (a hotfix promoted by hand): promote must refuse
    # to overwrite it, because it moved from the version this release started from.
    mlops(environ, "alias", "set", "iris-classifier", "production", "2")
    refused = pipeline(environ, "promote")
    assert refused.returncode == 1 and "production" in refused.stderr, refused.stderr
    mlops(environ, "alias", "set", "iris-classifier", "production", "1")
    promoted = pipeline(environ, "promote")
    assert promoted.returncode == 0, promoted.stderr
    assert aliases(environ) == {"staging": 2, "production": 2}
