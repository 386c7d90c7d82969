"""Build the iris-mms model folder: model/ (spec and handler) with weights trained here.

    python build.py --out DIR      # DIR holds mlops.yaml, handler.py, weights/classifier.safetensors

The weights are a softmax regression over three Gaussian classes in 4 features (iris-like), 300
steps of full-batch gradient descent with a fixed seed, so the build is deterministic. Safetensors
are written with numpy alone (see ../build.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from build import write_safetensors  # noqa: E402  (examples/build.py, numpy only)

CLASSES = ("setosa", "versicolor", "virginica")
CENTERS = [[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]]


def train() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    x = np.concatenate([np.array(c) + rng.normal(0, 0.35, (60, 4)) for c in CENTERS])
    x = x.astype(np.float32)
    y = np.repeat(np.arange(len(CLASSES)), 60)
    mean, std = x.mean(0), x.std(0)
    xs = (x - mean) / std
    weight = np.zeros((4, len(CLASSES)), np.float32)
    bias = np.zeros(len(CLASSES), np.float32)
    onehot = np.eye(len(CLASSES), dtype=np.float32)[y]
    for _ in range(300):
        logits = xs @ weight + bias
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / len(xs)
        weight -= 0.5 * xs.T @ grad
        bias -= 0.5 * grad.sum(0)
    return {"weight": weight, "bias": bias, "mean": mean, "std": std}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the model folder to write")
    args = parser.parse_args()
    shutil.copytree(HERE / "model", args.out, dirs_exist_ok=True)
    weights = args.out / "weights" / "classifier.safetensors"
    write_safetensors(weights, train(), {"classes": ",".join(CLASSES)})
    print(f"wrote {args.out} ({weights.stat().st_size} bytes of weights)")


if __name__ == "__main__":
    main()
