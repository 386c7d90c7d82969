"""examples/fleet/run.sh: two real tritonservers sharing a repository, started by the script and
named in the fleet.yaml it writes; deploys to the fleet, a second replica placed on the other
server, both models invoked (the generator streamed over gRPC), and the servers stopped."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_cli.local.processes import process_info
from tests.conftest import REPO_ROOT, require
from tests.integration.test_example_huggingface import json_documents

pytestmark = pytest.mark.integration

RUN = REPO_ROOT / "examples" / "fleet" / "run.sh"


def test_two_server_fleet_with_replicas_answers_then_stops(tmp_path: Path) -> None:
    require(importlib.util.find_spec("pytriton") is not None, "the 'triton' extra is not installed")
    work = tmp_path / "work"
    environ = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MLOPS_WORKSPACE": str(tmp_path / "ws"),
        "WORK": str(work),
    }
    done = subprocess.run(
        ["bash", str(RUN)], env=environ, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]

    fleet = yaml.safe_load((work / "fleet.yaml").read_text())
    assert [s["name"] for s in fleet["servers"]] == ["a", "b"]
    assert all(s["grpc_url"].startswith("127.0.0.1:") for s in fleet["servers"])

    [answer] = [d for d in json_documents(done.stdout) if "probabilities" in d]
    assert [max(range(3), key=row.__getitem__) for row in answer["probabilities"]] == [0, 2]
    streamed = re.search(r"tiny-lm v1 \(alias\) · (\d+) chunks", done.stderr)  # the summary
    assert streamed and int(streamed[1]) == 8, done.stderr[-3000:]
    # Before the undeploys: the classifier READY on both servers, the generator on one.
    served = re.findall(
        r"^(iris-classifier|tiny-lm) +1 +triton:pair +(\w) +READY", done.stdout, re.M
    )
    assert sorted(served) == [("iris-classifier", "a"), ("iris-classifier", "b"), ("tiny-lm", "a")]
    assert "nothing is deployed" in done.stdout  # after them

    pids = [int(line.split()[1]) for line in (work / "servers.txt").read_text().splitlines()]
    assert len(pids) == 2
    for pid in pids:
        assert process_info(pid) is None, pid  # stopped
