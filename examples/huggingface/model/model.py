"""A Hugging Face-format sentiment classifier served by Triton's python backend.

The files beside this one come from the hub snapshot: ``config.json`` (labels), ``tokenizer.json``
(a word-level tokenizer: lowercase, split into words and punctuation, unknown words to [UNK])
and ``model.safetensors`` (embeddings, mean-pooled, then a linear head). numpy only.
"""

import json
import re
import struct
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

HERE = Path(__file__).parent
DTYPES = {"F32": np.float32, "I32": np.int32}
WORDS = re.compile(r"\w+|[^\w\s]+")  # the tokenizers library's `Whitespace` pre-tokenizer


def load_safetensors(path):
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    header.pop("__metadata__", None)
    data = raw[8 + size :]
    return {
        name: np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        for name, info in header.items()
        for begin, end in [info["data_offsets"]]
    }


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads((HERE / "config.json").read_text())
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        tokenizer = json.loads((HERE / "tokenizer.json").read_text())["model"]
        self.vocab = tokenizer["vocab"]
        self.unk = self.vocab[tokenizer["unk_token"]]
        tensors = load_safetensors(HERE / "model.safetensors")
        self.embed = tensors["embeddings.weight"]
        self.weight, self.bias = tensors["classifier.weight"], tensors["classifier.bias"]

    def pooled(self, text):
        ids = [self.vocab.get(w, self.unk) for w in WORDS.findall(text.lower())]
        return self.embed[ids].mean(0) if ids else np.zeros(self.embed.shape[1], np.float32)

    def execute(self, requests):
        responses = []
        for request in requests:
            texts = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
            pooled = np.stack(
                [self.pooled(t.decode() if isinstance(t, bytes) else str(t)) for t in texts]
            )
            logits = pooled @ self.weight.T + self.bias
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            labels = np.array([[self.labels[i].encode()] for i in p.argmax(1)], dtype=object)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("label", labels),
                        pb_utils.Tensor("probabilities", p.astype(np.float32)),
                    ]
                )
            )
        return responses
