"""Start-up cost of the command line against the floor set by importing Typer.

Runs, side by side in one process and interleaved round by round, ``mlops --help``,
``mlops --version`` and ``python -c "import typer"``; prints the median wall time of each and the
ratio of each mlops command to the baseline. Target: at most 1.5x.

    python bench/startup.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_RATIO = 1.5


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    mlops = shutil.which("mlops", path=str(Path(sys.executable).parent)) or shutil.which("mlops")
    if mlops is None:
        print("mlops is not installed in this environment", file=sys.stderr)
        return 1
    cases = {
        "baseline: python -c 'import typer'": [sys.executable, "-c", "import typer"],
        "mlops --help": [mlops, "--help"],
        "mlops --version": [mlops, "--version"],
    }
    for argv in cases.values():  # warm the page cache and .pyc files
        wall(argv)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, argv in cases.items():
            times[name].append(wall(argv))

    medians = {name: statistics.median(samples) for name, samples in times.items()}
    baseline = medians["baseline: python -c 'import typer'"]
    worst = 0.0
    for name, median in medians.items():
        ratio = median / baseline
        if name.startswith("mlops"):
            worst = max(worst, ratio)
        print(f"{name:40s} median {median * 1000:7.1f} ms   ratio {ratio:4.2f}x")
    verdict = "within" if worst <= TARGET_RATIO else "OVER"
    print(f"worst ratio {worst:.2f}x ({verdict} the {TARGET_RATIO}x target, {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
