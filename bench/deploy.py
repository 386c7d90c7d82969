"""Deploy speed and cut-over safety on the embedded Triton, side by side in one run.

- Overhead: wall time of `mlops deploy MODEL@V` (a fresh process: start-up, registry, rendering
  the package, load, READY, record) against Triton's own `load_model` of the same rendered model
  on the same server, until it is READY. Rounds alternate the two; medians. Target: at most 1.3.
- Cut-over: requests sent at a fixed rate (each resolved through the registry, as a router would,
  then sent to that version) while `mlops deploy` cuts over between versions several times.
  Target: 0 failed out of at least 2,000.

    python bench/deploy.py [--rounds 5] [--rate 200] [--requests 2400]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from mlops_cli.local.server import running_server

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "models" / "answer"
MLOPS = [sys.executable, "-m", "mlops_cli"]


def mlops(env: dict[str, str], *args: str) -> dict[str, object]:
    out = subprocess.run(
        [*MLOPS, *args, "--json"], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"mlops {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout) if out.stdout.strip() else {}


def post(url: str, body: object = None) -> int:
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def register_answers(env: dict[str, str], work: Path, count: int) -> None:
    for answer in range(1, count + 1):
        folder = work / f"answer-{answer}"
        shutil.copytree(FIXTURE, folder)
        (folder / "weights" / "answer.txt").write_text(f"{answer}\n")
        mlops(env, "register", str(folder), *(["--alias", "production"] if answer == 1 else []))


def overhead(env: dict[str, str], state: dict[str, object], rounds: int) -> tuple[float, float]:
    base = f"http://127.0.0.1:{state['http_port']}"
    repository = Path(str(state["model_repository"]))
    mlops(env, "deploy", "answer@1", "--no-switch")  # render once, then copy as the baseline model
    shutil.copytree(repository / "answer-v1", repository / "baseline")
    config = repository / "baseline" / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "answer-v1"', 'name: "baseline"'))
    mlops(env, "undeploy", "answer")
    raw, ours = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        assert post(f"{base}/v2/repository/models/baseline/load") == 200
        while not ready(f"{base}/v2/models/baseline/ready"):
            time.sleep(0.01)
        raw.append(time.perf_counter() - start)
        post(f"{base}/v2/repository/models/baseline/unload")
        while ready(f"{base}/v2/models/baseline/ready"):
            time.sleep(0.05)
        time.sleep(1.5)  # the unloaded stub exits in the background

        start = time.perf_counter()
        mlops(env, "deploy", "answer@1", "--no-switch")
        ours.append(time.perf_counter() - start)
        mlops(env, "undeploy", "answer")
        time.sleep(1.5)
    return statistics.median(raw), statistics.median(ours)


def cut_over(
    env: dict[str, str], state: dict[str, object], rate: float, total: int
) -> dict[str, int]:
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.routing import resolve

    mlops(env, "deploy", "answer@1")
    registry = open_registry(env["MLOPS_REGISTRY"])
    port = int(str(state["http_port"]))
    counts = {"sent": 0, "failed": 0, "wrong_version": 0}
    versions: set[int] = set()
    done = threading.Event()

    def send() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body = json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [0]}]}
        )
        start = time.monotonic()
        for i in range(total):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            version = resolve(registry, "bench", "answer").version
            versions.add(version)
            counts["sent"] += 1
            try:
                connection.request("POST", f"/v2/models/answer-v{version}/infer", body)
                response = connection.getresponse()
                payload = response.read()
                if response.status != 200:
                    counts["failed"] += 1
                elif json.loads(payload)["outputs"][0]["data"][0] != version:
                    counts["wrong_version"] += 1
            except (OSError, http.client.HTTPException):
                counts["failed"] += 1
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        done.set()

    worker = threading.Thread(target=send)
    worker.start()
    switches = 0
    version = 1
    while not done.wait(1.0):
        version = 3 - version  # 1 -> 2 -> 1 -> ...
        mlops(env, "deploy", f"answer@{version}", "--drain", "1")
        switches += 1
    worker.join()
    counts["switches"] = switches
    counts["versions_seen"] = len(versions)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--requests", type=int, default=2400)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlops-bench-deploy-"))
    env = {
        **os.environ,
        "MLOPS_WORKSPACE": str(work / ".mlops"),
        "MLOPS_REGISTRY": f"sqlite:///{work / 'registry.db'}",
        "MLOPS_STORE": f"file://{work / 'store'}",
    }
    try:
        register_answers(env, work, 2)
        mlops(env, "local", "up")
        running = running_server(work / ".mlops" / "local")
        assert running is not None, "the local Triton is not running"
        state: dict[str, object] = {
            "http_port": running.http_port,
            "model_repository": running.model_repository,
        }
        raw, ours = overhead(env, state, args.rounds)
        counts = cut_over(env, state, args.rate, args.requests)
    finally:
        subprocess.run([*MLOPS, "local", "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    ratio = ours / raw
    print(f"Triton load_model until READY   {raw * 1000:8.0f} ms (median of {args.rounds})")
    print(f"mlops deploy (new process)      {ours * 1000:8.0f} ms (median of {args.rounds})")
    print(
        f"cut-over: {counts['sent']} requests at {args.rate:g}/s across {counts['switches']} switches: "
        f"{counts['failed']} failed, {counts['wrong_version']} answered by the wrong version"
    )
    print()
    print(time.strftime("%Y-%m-%d"))
    print(
        f"deploy / load_model time   {ratio:8.2f}   target <= 1.3   {'ok' if ratio <= 1.3 else 'MISSED'}"
    )
    ok = counts["failed"] == 0 and counts["wrong_version"] == 0 and counts["sent"] >= 2000
    print(
        f"failed requests in cut-over {counts['failed']:7d}   target 0 of >= 2000   {'ok' if ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
