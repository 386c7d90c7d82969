"""The built wheel works outside the source tree: schemas and templates ship inside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_wheel_installs_and_runs_outside_the_tree(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(REPO_ROOT),
        ],
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("mlops_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mlops_cli/schemas/config.schema.json" in names
    assert "mlops_cli/templates/README.md" in names
    assert "mlops_cli/py.typed" in names

    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    installed = run([str(python), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PYTHON"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    mlops = str(env_dir / "bin" / "mlops")

    version = run([mlops, "--version"], cwd=elsewhere, env=env)
    assert version.returncode == 0 and version.stdout.startswith("mlops "), version.stderr
    as_module = run([str(python), "-m", "mlops_cli", "--version"], cwd=elsewhere, env=env)
    assert as_module.stdout == version.stdout

    shown = run([mlops, "config", "show", "--json"], cwd=elsewhere, env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["values"]["workspace"] == str(elsewhere / ".mlops")

    where = run(
        [str(python), "-c", "from mlops_cli.resources import schemas_dir; print(schemas_dir())"],
        cwd=elsewhere,
        env=env,
    )
    assert str(env_dir) in where.stdout and str(REPO_ROOT) not in where.stdout

    # A schema is really used: an unknown key is caught by the packaged schema.
    bad = run([mlops, "--set", "local.http_prot=1", "config", "show"], cwd=elsewhere, env=env)
    assert bad.returncode == 2 and "did you mean 'local.http_port'" in bad.stderr

    # Without the triton extra, the local server asks for it in one line.
    missing = run([mlops, "local", "up"], cwd=elsewhere, env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "error: the local Triton server needs the 'triton' extra, which is not installed "
        "(hint: pip install 'mlops-cli[triton]')"
    ]
    assert not (elsewhere / ".mlops").exists(), "a failed command created the workspace"
