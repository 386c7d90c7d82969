"""The example models the README demo deploys: built by examples/build.py, served for real."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cli import run
from tests.conftest import REPO_ROOT
from tests.integration.test_deploy import env  # noqa: F401  (the fixture is used by name)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/ with its weights built by the script."""
    copy = tmp_path_factory.mktemp("examples") / "examples"
    shutil.copytree(REPO_ROOT / "examples", copy, ignore=shutil.ignore_patterns("weights"))
    subprocess.run([sys.executable, str(copy / "build.py")], check=True, capture_output=True)
    return copy


def test_build_is_deterministic_safetensors(examples: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    again = tmp_path / "again"
    shutil.copytree(examples, again, ignore=shutil.ignore_patterns("weights"))
    subprocess.run([sys.executable, str(again / "build.py")], check=True, capture_output=True)
    for name in (
        "iris-classifier/weights/classifier.safetensors",
        "tiny-lm/weights/bigram.safetensors",
    ):
        assert (examples / name).read_bytes() == (again / name).read_bytes()
    tensors = load_file(str(examples / "iris-classifier/weights/classifier.safetensors"))
    assert tensors["weight"].shape == (4, 3) and tensors["bias"].dtype == np.float32


def test_examples_deploy_and_answer(
    env: Any,  # noqa: F811
    examples: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("iris-classifier", "tiny-lm"):
        run(capsys, "validate", str(examples / name))
        run(capsys, "register", str(examples / name), "--alias", "production")
        run(capsys, "deploy", name)
    answer = run(
        capsys,
        "invoke",
        "iris-classifier",
        "--input",
        '{"features": [[5.0, 3.4, 1.5, 0.2], [6.6, 3.0, 5.6, 2.0]]}',
    )
    probabilities = np.array(answer["outputs"]["probabilities"])
    assert probabilities.shape == (2, 3)
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-5)
    assert list(probabilities.argmax(1)) == [0, 2]  # it learned the classes
    streamed = run(
        capsys,
        "invoke",
        "tiny-lm",
        "--stream",
        "--input",
        '{"prompt": "the model", "max_tokens": 6}',
    )
    words = [c["outputs"]["token"] for c in streamed["chunks"]]
    assert len(words) == 6 and all(isinstance(w, str | list) for w in words)
    assert streamed["first_chunk_ms"] < streamed["total_ms"]
