"""Softmax regression served by Triton's python backend, weights read from safetensors."""

import json
import struct
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

WEIGHTS = Path(__file__).parent / "weights" / "classifier.safetensors"
DTYPES = {"F32": np.float32, "I32": np.int32, "U8": np.uint8}


def load_safetensors(path):
    """name -> array, from a safetensors file (numpy only)."""
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
        tensors = load_safetensors(WEIGHTS)
        self.weight, self.bias = tensors["weight"], tensors["bias"]
        self.mean, self.std = tensors["mean"], tensors["std"]

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "features").as_numpy()
            logits = ((x - self.mean) / self.std) @ self.weight + self.bias
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            out = pb_utils.Tensor("probabilities", p.astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
