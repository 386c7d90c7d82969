"""Build the example models' weights: a softmax classifier trained with numpy, and a word-level
bigram language model counted from a small corpus. Both are written as safetensors files.

    python examples/build.py        # writes examples/*/weights/*.safetensors (deterministic)

The safetensors format is small enough to write here without the library: an 8-byte
little-endian header length, a JSON header (dtype, shape, byte offsets of each tensor), then the
raw little-endian data. ``safetensors.numpy.load_file`` reads what this writes.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DTYPES = {np.dtype("float32"): "F32", np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}

CORPUS = """
the model reads your prompt and writes an answer one word at a time .
each word is sent to you as soon as it is ready , so the first word arrives early .
the server keeps the model in memory and answers many requests at once .
a new version of the model is loaded beside the old one , and the route moves when it is ready .
no request fails while the version changes , because the old one drains before it is unloaded .
the registry remembers every version , and each tenant is routed to the version it should get .
"""


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": DTYPES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    raw += b" " * (-len(raw) % 8)  # align the data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
    tmp.replace(path)


def build_classifier() -> Path:
    """Softmax regression on three Gaussian classes in 4 features (iris-like), 300 steps of
    full-batch gradient descent with a fixed seed."""
    rng = np.random.default_rng(7)
    centers = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
    x = np.concatenate([c + rng.normal(0, 0.35, size=(60, 4)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(3), 60)
    mean, std = x.mean(0), x.std(0)
    xs = (x - mean) / std
    w = np.zeros((4, 3), np.float32)
    b = np.zeros(3, np.float32)
    onehot = np.eye(3, dtype=np.float32)[y]
    for _ in range(300):
        logits = xs @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / len(xs)
        w -= 0.5 * xs.T @ grad
        b -= 0.5 * grad.sum(0)
    accuracy = float(((xs @ w + b).argmax(1) == y).mean())
    path = HERE / "iris-classifier" / "weights" / "classifier.safetensors"
    write_safetensors(
        path,
        {"weight": w, "bias": b, "mean": mean.astype(np.float32), "std": std.astype(np.float32)},
        {"classes": "setosa,versicolor,virginica", "train_accuracy": f"{accuracy:.3f}"},
    )
    return path


def build_language_model() -> Path:
    """Bigram log-probabilities (add-one smoothed) over the corpus's words."""
    words = re.findall(r"[a-z]+|[.,]", CORPUS.lower())
    vocab = ["<s>", "</s>", *sorted(set(words))]
    index = {word: i for i, word in enumerate(vocab)}
    counts = np.ones((len(vocab), len(vocab)), np.float32)
    for sentence in CORPUS.strip().splitlines():
        tokens = ["<s>", *re.findall(r"[a-z]+|[.,]", sentence.lower()), "</s>"]
        for a, b in itertools.pairwise(tokens):
            counts[index[a], index[b]] += 5.0
    logprobs = np.log(counts / counts.sum(1, keepdims=True)).astype(np.float32)
    vocab_bytes = np.frombuffer("\n".join(vocab).encode(), dtype=np.uint8)
    path = HERE / "tiny-lm" / "weights" / "bigram.safetensors"
    write_safetensors(
        path, {"logprobs": logprobs, "vocab": vocab_bytes}, {"tokens": str(len(vocab))}
    )
    return path


if __name__ == "__main__":
    for built in (build_classifier(), build_language_model()):
        print(f"wrote {built.relative_to(HERE.parent)} ({built.stat().st_size} bytes)")
