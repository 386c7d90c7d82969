"""examples/huggingface/run.sh: a Hugging Face-format model written into a local hub cache,
uploaded through ``hf://`` with ``HF_HUB_OFFLINE=1``, registered with its pinned commit, deployed
on the session's local Triton and invoked (one text, then a batch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

RUN = REPO_ROOT / "examples" / "huggingface" / "run.sh"


def json_documents(text: str) -> list[Any]:
    """Every JSON object printed on its own lines (``mlops invoke`` pretty-prints one)."""
    decoder = json.JSONDecoder()
    documents = []
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.rstrip() == "{":
            documents.append(decoder.raw_decode("".join(lines[index:]))[0])
    return documents


def test_hub_model_uploaded_offline_deployed_and_answering(
    local_triton: Any, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HF_")},
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MLOPS_WORKSPACE": str(local_triton.workspace.root),
        "MLOPS_REGISTRY": f"sqlite:///{tmp_path / 'registry.db'}",
        "MLOPS_STORE": f"file://{tmp_path / 'store'}",
        "WORK": str(work),
        # Nothing may be fetched: a proxy that does not exist catches any attempt.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    done = subprocess.run(
        ["bash", str(RUN)], env=environ, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]

    repo = work / "hf" / "hub" / "models--acme--tiny-sentiment"
    commit = (repo / "refs" / "main").read_text().strip()
    assert (repo / "snapshots" / commit / "tokenizer.json").is_symlink()
    assert f"'commit': '{commit}'" in done.stdout  # the version's source, pinned

    one, batch = [d for d in json_documents(done.stdout) if "label" in d]
    assert one["label"] == [["positive"]] and one["probabilities"][0][1] > 0.9
    assert batch["label"] == [["negative"], ["positive"]]

    # The registered package: the folder's spec and code joined to the snapshot's allowed files.
    def mlops(*args: str) -> Any:
        out = subprocess.run(
            [sys.executable, "-m", "mlops_cli", *args, "--json"],
            env=environ,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(out.stdout)

    [version] = mlops("models", "versions", "tiny-sentiment")
    assert version["source"]["commit"] == commit
    files = {f["path"] for f in mlops("package", "show", version["package_uri"])["files"]}
    assert files == {
        "mlops.yaml",
        "model.py",
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
