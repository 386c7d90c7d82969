"""Write a small Hugging Face-format model into a local hub cache, with no network.

    python make_hub_cache.py --hf-home DIR     # DIR/hub/models--acme--tiny-sentiment/...

The model is a bag-of-words sentiment classifier: a word embedding table, mean-pooled, and a
linear head over two labels, trained here with numpy on a dozen sentences (fixed seed, so the
files and the commit id are the same on every run). Its files are what a model repository on the
hub holds: ``model.safetensors`` (written with numpy alone, see ../build.py), ``config.json`` (labels and
sizes), and the tokenizer files of a word-level ``tokenizers`` tokenizer (``tokenizer.json``,
``tokenizer_config.json``, ``special_tokens_map.json``).

They are laid out the way ``huggingface_hub`` caches a download, so that with
``HF_HUB_OFFLINE=1`` and ``HF_HOME=DIR`` it resolves ``hf://acme/tiny-sentiment@main`` from disk::

    models--acme--tiny-sentiment/blobs/<sha256 of an LFS file, git blob sha1 of any other>
    models--acme--tiny-sentiment/refs/main                      the commit id
    models--acme--tiny-sentiment/snapshots/<commit>/<file>      relative symlinks to the blobs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from build import write_safetensors  # examples/build.py: safetensors with numpy alone

REPO_ID = "acme/tiny-sentiment"
LABELS = ("negative", "positive")
HIDDEN = 8
SPECIAL = ("[PAD]", "[UNK]")
TRAINING = """
1 a great model , fast and accurate
1 the answers are good and the latency is low
1 excellent results , i love this release
1 it works well and the deploy was easy
1 good docs and a helpful team
1 fast , reliable and great
0 a terrible model , slow and wrong
0 the answers are bad and the latency is high
0 awful results , i hate this release
0 it fails often and the deploy was painful
0 bad docs and a slow team
0 slow , unreliable and terrible
"""
WORDS = re.compile(r"\w+|[^\w\s]+")  # the `Whitespace` pre-tokenizer of the tokenizers library


def tokenize(text: str) -> list[str]:
    return WORDS.findall(text.lower())


def examples() -> tuple[list[list[str]], np.ndarray]:
    rows = [line.split(" ", 1) for line in TRAINING.strip().splitlines()]
    return [tokenize(text) for _, text in rows], np.array([int(label) for label, _ in rows])


def train(
    sentences: list[list[str]], labels: np.ndarray
) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Embeddings and head trained together by full-batch gradient descent on the mean-pooled
    embeddings' softmax cross-entropy."""
    vocab = {token: i for i, token in enumerate(SPECIAL)}
    for word in sorted({w for s in sentences for w in s}):
        vocab[word] = len(vocab)
    rng = np.random.default_rng(11)
    embed = rng.normal(0, 0.1, (len(vocab), HIDDEN)).astype(np.float32)
    embed[0] = 0.0  # [PAD]
    weight = np.zeros((len(LABELS), HIDDEN), np.float32)  # (out, in), as torch.nn.Linear keeps it
    bias = np.zeros(len(LABELS), np.float32)
    ids = [np.array([vocab[w] for w in s]) for s in sentences]
    onehot = np.eye(len(LABELS), dtype=np.float32)[labels]
    for _ in range(400):
        pooled = np.stack([embed[i].mean(0) for i in ids])
        logits = pooled @ weight.T + bias
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / len(ids)
        pooled_grad = grad @ weight
        weight -= 1.0 * grad.T @ pooled
        bias -= 1.0 * grad.sum(0)
        for row, sentence in zip(pooled_grad, ids, strict=True):
            np.add.at(embed, sentence, -5.0 * row / len(sentence))
    tensors = {"embeddings.weight": embed, "classifier.weight": weight, "classifier.bias": bias}
    return vocab, tensors


def model_files() -> dict[str, bytes]:
    sentences, labels = examples()
    vocab, tensors = train(sentences, labels)
    config = {
        "architectures": ["BagOfWordsForSequenceClassification"],
        "model_type": "bag-of-words",
        "vocab_size": len(vocab),
        "hidden_size": HIDDEN,
        "pooling": "mean",
        "id2label": {str(i): label for i, label in enumerate(LABELS)},
        "label2id": {label: i for i, label in enumerate(LABELS)},
    }
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for i, t in enumerate(SPECIAL)
        ],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 128,
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
    }

    def text(document: object) -> bytes:
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()

    return {
        "model.safetensors": safetensors_bytes(tensors),
        "config.json": text(config),
        "tokenizer.json": text(tokenizer),
        "tokenizer_config.json": text(tokenizer_config),
        "special_tokens_map.json": text({"pad_token": "[PAD]", "unk_token": "[UNK]"}),
        "README.md": b"# tiny-sentiment\n\nA bag-of-words sentiment classifier for examples.\n",
    }


def safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.safetensors"
        write_safetensors(path, tensors, {"format": "np"})
        return path.read_bytes()


def blob_id(name: str, data: bytes) -> str:
    """The hub names an LFS file's blob by its sha256 and any other by its git blob id."""
    if name.endswith(".safetensors"):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_cache(hub: Path, files: dict[str, bytes]) -> str:
    """Lay ``files`` out as one commit of REPO_ID in the cache ``hub``; return the commit id."""
    blobs = {name: blob_id(name, data) for name, data in files.items()}
    commit = hashlib.sha1(json.dumps(sorted(blobs.items())).encode()).hexdigest()
    root = hub / f"models--{REPO_ID.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir(exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    for name, data in files.items():
        (root / "blobs" / blobs[name]).write_bytes(data)
        os.symlink(f"../../blobs/{blobs[name]}", snapshot / name)
    (root / "refs" / "main").write_text(commit)
    return commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hf-home", type=Path, required=True, help="HF_HOME (the cache is DIR/hub)"
    )
    args = parser.parse_args()
    commit = write_cache(args.hf_home / "hub", model_files())
    print(commit)


if __name__ == "__main__":
    main()
