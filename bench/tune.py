"""`mlops tune` against the full grid on the same model, in one run.

The model is built here: each execute sleeps BASE + PER_ITEM per batched request, so its
throughput and latency follow from its instance count and batch size. On the embedded Triton (a
workspace of its own under the temp folder), the same space is searched twice under the same SLA:
``--strategy grid`` (every configuration at every concurrency) and the coordinate search.
Targets: the search takes at most a third of the grid's measurements and of its wall time, and
its best throughput is within 10% of the grid's best (also shown: the throughput the grid itself
measured for the configuration the search chose, the same server in the same minutes).

    python bench/tune.py [--sla 'p99<150ms'] [--window 0.3s] [--rounds 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE_MS, PER_ITEM_MS = 40.0, 2.0
MODEL_PY = f'''"""Sleeps {BASE_MS} ms + {PER_ITEM_MS} ms per request in the batch on each execute."""

import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        time.sleep(({BASE_MS} + {PER_ITEM_MS} * len(requests)) / 1000.0)
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor("y", pb_utils.get_input_tensor_by_name(r, "x").as_numpy() * 2)
                ]
            )
            for r in requests
        ]
'''
SPEC = """name: sleeper
runtime: triton-python
entrypoint: model.py
inputs:
  - {name: x, dtype: FP32, shape: [4]}
outputs:
  - {name: y, dtype: FP32, shape: [4]}
batching: {max_batch_size: 8, dynamic: true}
resources: {memory_mb: 64}
"""
SPACE = {
    "instances": "1,2,4",
    "batch_sizes": "1,4,8,16",
    "queue_delays": "0,2ms",
    "preferred": "none",
    "max_concurrency": 64,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sla", default="p99<150ms")
    parser.add_argument("--window", default="0.3s")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    from mlops_cli.api.packages import register
    from mlops_cli.api.tuning import tune
    from mlops_cli.config import resolve_settings
    from mlops_cli.local import LocalTriton
    from mlops_cli.tune.options import TuneFlags, tune_options
    from mlops_cli.workspace import Workspace

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-tune-"))
    folder = work / "sleeper"
    folder.mkdir()
    (folder / "model.py").write_text(MODEL_PY)
    (folder / "mlops.yaml").write_text(SPEC)
    settings = resolve_settings(
        cwd=work,
        environ={},
        set_pairs=[
            f"workspace={work / '.mlops'}",
            f"registry=sqlite:///{work / 'registry.db'}",
            f"store=file://{work / 'store'}",
        ],
    )
    manager = LocalTriton(Workspace(settings.workspace), settings.local)
    manager.up()
    failures = 0
    try:
        register(source=str(folder), settings=settings)
        for round_number in range(1, args.rounds + 1):
            runs: dict[str, Any] = {}
            for strategy in ("grid", "coordinate"):
                options = tune_options(
                    TuneFlags(
                        sla=args.sla,
                        strategy=strategy,
                        warmup="0.3s",
                        window=args.window,
                        max_windows=6,
                        budget="30m",
                        **SPACE,  # type: ignore[arg-type]
                    )
                )
                began = time.monotonic()
                runs[strategy] = (tune(ref="sleeper@1", settings=settings, options=options).run,
                                  time.monotonic() - began)  # fmt: skip
            failures += report(round_number, args.sla, runs)
    finally:
        manager.down()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


def report(round_number: int, sla: str, runs: dict[str, Any]) -> int:
    (grid, grid_s), (tuned, tuned_s) = runs["grid"], runs["coordinate"]
    print(f"\n**Round {round_number}: SLA `{sla}`, model {BASE_MS:g} ms + {PER_ITEM_MS:g} ms per "
          f"batched request, {grid.space.grid_measurements} grid measurements**\n")  # fmt: skip
    print("| search | measurements | loads | wall s | best configuration | req/s | p99 ms |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for name, run, seconds in (("grid", grid, grid_s), ("coordinate", tuned, tuned_s)):
        best = run.best
        print(
            f"| {name} | {run.log.measured} | {run.log.loads} | {seconds:.1f} | "
            + (
                f"{best.config.describe()} at {run.space.load.label(best.level)} | "
                f"{best.figures.throughput_rps:,.1f} | {best.p99_ms:.1f} |"
                if best
                else "none met the SLA | - | - |"
            )
        )
    if grid.best is None or tuned.best is None:
        print("\nno configuration met the SLA: nothing to compare")
        return 1
    grid_best = grid.best.figures.throughput_rps
    same = [m.figures.throughput_rps for m in grid.log.measurements
            if m.met and m.config == tuned.best.config]  # fmt: skip
    measurements = tuned.log.measured / grid.log.measured
    wall = tuned_s / grid_s
    throughput = tuned.best.figures.throughput_rps / grid_best
    checks = {
        f"measurements {measurements:.2f} of the grid's (target <= 0.33)": measurements <= 1 / 3,
        f"wall time {wall:.2f} of the grid's (target <= 0.33)": wall <= 1 / 3,
        f"best throughput {throughput:.2f} of the grid's (target >= 0.90)": throughput >= 0.9,
    }
    print()
    for text, met in checks.items():
        print(f"- {text}: {'met' if met else 'MISSED'}")
    if same:
        print(f"- the chosen configuration as the grid measured it: {max(same) / grid_best:.2f} "
              "of the grid's best")  # fmt: skip
    return sum(not met for met in checks.values())


if __name__ == "__main__":
    sys.exit(main())
