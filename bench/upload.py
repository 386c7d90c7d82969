"""Upload speed: `mlops upload` against its baselines, side by side on one moto server.

A model of four files of incompressible random bytes (SIZE in all) plus code goes to S3 on a moto
server started here on 127.0.0.1, and to a file:// store. Every contender runs as its own
subprocess (imports included) so that wall times and peak RSS are comparable:

- sdk-style:  tarfile gzip level 9 to a temp file, then boto3 `upload_file` (the SageMaker SDK way)
- floor:      boto3 `upload_file` of each file, default TransferConfig (bytes on the wire, nothing else)
- mlops:      `mlops upload DIR --store s3://...` first, then again unchanged
- cp -r:      the folder copied with `cp -r`, against `mlops upload --store file://...`
- tarball:    `mlops package render DIR|URI --format sagemaker --out s3://...` (streamed), from the
              model folder and from the S3 store, against sdk-style

    python bench/upload.py [--size-mib 1024] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from moto_loopback import moto_server, reset

BIN = Path(sys.executable).parent
MiB = 1 << 20


RSS_WRAPPER = textwrap.dedent(
    """
    import os, resource, subprocess, sys, time
    start = time.perf_counter()
    proc = subprocess.Popen(sys.argv[1:])
    _, status, usage = os.wait4(proc.pid, 0)
    print(f"__BENCH__ {time.perf_counter() - start:.6f} {usage.ru_maxrss * 1024}", file=sys.stderr)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def measured(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall time and peak RSS of exactly that process (os.wait4 on its pid)."""
    proc = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed: {proc.stderr[-2000:]}")
    line = next(line for line in proc.stderr.splitlines() if line.startswith("__BENCH__"))
    _, wall, rss = line.split()
    return float(wall), int(rss), proc.stdout


SDK_STYLE = textwrap.dedent(
    """
    import sys, tarfile, tempfile, os, boto3
    folder, bucket, key = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tar.gz")
        with tarfile.open(path, "w:gz", compresslevel=9) as tar:
            for name in sorted(os.listdir(folder)):
                tar.add(os.path.join(folder, name), arcname=name)
        boto3.client("s3").upload_file(path, bucket, key)
    """
)

FLOOR = textwrap.dedent(
    """
    import sys, os, boto3
    folder, bucket = sys.argv[1:3]
    client = boto3.client("s3")
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            path = os.path.join(root, name)
            client.upload_file(path, bucket, os.path.relpath(path, folder))
    """
)


def make_model(folder: Path, size: int) -> None:
    (folder / "weights").mkdir(parents=True)
    for index in range(4):
        with open(folder / "weights" / f"shard-{index}.bin", "wb") as handle:
            remaining = size // 4
            while remaining:
                chunk = min(remaining, 64 * MiB)
                handle.write(os.urandom(chunk))
                remaining -= chunk
    (folder / "model.py").write_text(
        "import numpy as np\n\n\nclass TritonPythonModel:\n    def execute(self, requests):\n        return []\n"
    )
    (folder / "mlops.yaml").write_text(
        textwrap.dedent(
            """
            name: bench-model
            runtime: triton-python
            entrypoint: model.py
            weights: [weights/*.bin]
            inputs: [{name: x, dtype: FP32, shape: [-1]}]
            outputs: [{name: y, dtype: FP32, shape: [-1]}]
            resources: {memory_mb: 2048}
            """
        )
    )
    old = time.time() - 3600  # as a model written an hour ago, not seconds ago
    for path in folder.rglob("*"):
        os.utime(path, (old, old))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the faster contenders (median)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    size = args.size_mib * MiB

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-upload-"))
    stack = contextlib.ExitStack()
    endpoint = stack.enter_context(moto_server())
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "MLOPS_WORKSPACE": str(work / "ws"),
        "XDG_CONFIG_HOME": str(work / "xdg"),
    }
    results: dict[str, dict[str, float]] = {}
    try:
        model = work / "model"
        make_model(model, size)
        subprocess.run(
            ["cat", *map(str, sorted(model.rglob("*.bin")))], stdout=subprocess.DEVNULL, check=True
        )
        mlops = str(BIN / "mlops")
        py = sys.executable

        def bucket(name: str) -> None:
            reset(endpoint)
            subprocess.run(
                [py, "-c", f"import boto3; boto3.client('s3').create_bucket(Bucket='{name}')"],
                env=env,
                check=True,
            )

        def record(name: str, wall: float, rss: int, **extra: float) -> None:
            results[name] = {"seconds": round(wall, 3), "peak_rss_mb": round(rss / MiB, 1), **extra}
            print(f"{name:40s} {wall:8.2f} s   peak RSS {rss / MiB:7.1f} MiB", flush=True)

        bucket("bench")
        wall, rss, _ = measured([py, "-c", SDK_STYLE, str(model), "bench", "model.tar.gz"], env)
        record("sdk-style tar.gz level 9 + upload", wall, rss)

        # Rounds interleave the contenders; each round starts from an empty server.
        rounds: dict[str, list[tuple[float, int, dict[str, float]]]] = {}

        def sample(name: str, argv: list[str], parse: bool = False) -> dict[str, Any]:
            wall, rss, out = measured(argv, env)
            document = json.loads(out) if parse else {}
            extra = (
                {"bytes_sent": float(document["bytes_sent"])} if "bytes_sent" in document else {}
            )
            rounds.setdefault(name, []).append((wall, rss, extra))
            return document

        # Each S3 contender starts on an emptied server (moto slows down as it holds more bytes),
        # except where it needs what the one before it stored.
        for _ in range(args.rounds):
            bucket("bench")
            shutil.rmtree(work / "ws", ignore_errors=True)  # no hash cache: a first upload
            sample("floor: boto3 upload_file per file", [py, "-c", FLOOR, str(model), "bench"])
            bucket("bench")
            first = sample(
                "mlops upload (first)",
                [mlops, "upload", str(model), "--store", "s3://bench/models", "--json"],
                True,
            )
            sample(
                "mlops upload (unchanged)",
                [mlops, "upload", str(model), "--store", "s3://bench/models", "--json"],
                True,
            )
            sample(
                "mlops model.tar.gz from S3 store to S3",
                [
                    mlops,
                    "package",
                    "render",
                    first["uri"],
                    "--format",
                    "sagemaker",
                    "--out",
                    "s3://bench/ep/v2.tar.gz",
                ],
            )
            bucket("bench")
            sample(
                "mlops model.tar.gz from folder to S3",
                [
                    mlops,
                    "package",
                    "render",
                    str(model),
                    "--format",
                    "sagemaker",
                    "--out",
                    "s3://bench/ep/v1.tar.gz",
                ],
            )
            shutil.rmtree(work / "copy", ignore_errors=True)
            shutil.rmtree(work / "fstore", ignore_errors=True)
            shutil.rmtree(work / "ws", ignore_errors=True)
            sample("cp -r", ["cp", "-r", str(model), str(work / "copy")])
            sample(
                "mlops upload to file:// (first)",
                [mlops, "upload", str(model), "--store", (work / "fstore").as_uri()],
            )
            # The same files to a new store with the workspace's hash cache warm (they were
            # hashed before): only the copies and the identity checks are left.
            shutil.rmtree(work / "fstore", ignore_errors=True)
            sample(
                "mlops upload to file:// (cache warm)",
                [mlops, "upload", str(model), "--store", (work / "fstore").as_uri()],
            )

        for name, samples in rounds.items():
            walls = sorted(s[0] for s in samples)
            median = walls[len(walls) // 2]
            extra: dict[str, float] = {}
            for sample_extra in (s[2] for s in samples):
                for key, value in sample_extra.items():
                    extra[key] = max(extra.get(key, 0.0), value)
            record(name, median, max(s[1] for s in samples), **extra)
            print(f"{'':40s} samples: {', '.join(f'{w:.2f}' for w in (s[0] for s in samples))}")
    finally:
        stack.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    s = {name: r["seconds"] for name, r in results.items()}
    checks = [
        (
            "first upload vs sdk-style",
            s["sdk-style tar.gz level 9 + upload"] / s["mlops upload (first)"],
            ">=",
            4.0,
        ),
        (
            "first upload / floor",
            s["mlops upload (first)"] / s["floor: boto3 upload_file per file"],
            "<=",
            1.15,
        ),
        (
            "first / unchanged upload",
            s["mlops upload (first)"] / s["mlops upload (unchanged)"],
            ">=",
            20.0,
        ),
        (
            "unchanged upload blob bytes sent",
            results["mlops upload (unchanged)"]["bytes_sent"],
            "<=",
            0,
        ),
        (
            "peak RSS of mlops upload (MiB)",
            results["mlops upload (first)"]["peak_rss_mb"],
            "<=",
            300,
        ),
        ("file:// upload / cp -r", s["mlops upload to file:// (first)"] / s["cp -r"], "<=", 1.3),
        (
            "file:// upload, cache warm / cp -r",
            s["mlops upload to file:// (cache warm)"] / s["cp -r"],
            "<=",
            1.3,
        ),
        (
            "tarball (from folder) vs sdk-style",
            s["sdk-style tar.gz level 9 + upload"] / s["mlops model.tar.gz from folder to S3"],
            ">=",
            3.0,
        ),
        (
            "tarball (from S3 store) vs sdk-style",
            s["sdk-style tar.gz level 9 + upload"] / s["mlops model.tar.gz from S3 store to S3"],
            ">=",
            3.0,
        ),
    ]
    print(f"\n{args.size_mib} MiB model, {time.strftime('%Y-%m-%d')}")
    for name, value, op, target in checks:
        ok = value >= target if op == ">=" else value <= target
        print(f"{name:36s} {value:8.2f}   target {op} {target:<6g} {'ok' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
