"""examples/sagemaker-mms/run.sh: a sagemaker-mms model deployed to mme-local with the example's
endpoint.yaml, S3 on a moto server the script starts itself, invoked through mlops and through
boto3's sagemaker-runtime client; every server it started is stopped at the end."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_cli.local.processes import process_info
from tests.conftest import REPO_ROOT, require
from tests.integration.test_example_huggingface import json_documents

pytestmark = pytest.mark.integration

RUN = REPO_ROOT / "examples" / "sagemaker-mms" / "run.sh"


def test_mms_model_on_mme_local_answers_and_the_servers_stop(tmp_path: Path) -> None:
    from tests.servers.mms import mms_unavailable_reason

    reason = mms_unavailable_reason()
    require(reason is None, f"multi-model-server cannot run: {reason}")
    require(importlib.util.find_spec("moto") is not None, "moto[server] is not installed")
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MLOPS_WORKSPACE": str(tmp_path / "ws"),
        "WORK": str(tmp_path / "work"),
    }
    done = subprocess.run(
        ["bash", str(RUN)], env=environ, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]

    [answer] = [d for d in json_documents(done.stdout) if "classes" in d]
    assert answer["classes"] == ["setosa", "virginica"]
    assert all(abs(sum(row) - 1) < 1e-5 for row in answer["probabilities"])
    assert "boto3: {'classes': ['versicolor']" in done.stdout
    status = re.search(r"^iris-mms +1 +mme-local:iris-mme .*$", done.stdout, re.MULTILINE)
    assert status and " READY " in status[0], done.stdout

    # The moto server the script started and mme-local (each pid on stdout) are gone.
    moto = re.search(r"moto server http://127\.0\.0\.1:\d+ \(pid (\d+)\)", done.stdout)
    mme = re.search(r"mme-local: running pid (\d+)", done.stdout)
    assert moto and mme, done.stdout
    for pid in (moto[1], mme[1]):
        assert process_info(int(pid)) is None, pid  # gone, or a zombie its parent has not reaped
