"""A tenant's head over the shared feature extractor: softmax(relu(x @ E + e) @ H + h)."""

import json
import struct
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

WEIGHTS = Path(__file__).parent / "weights"


def load_safetensors(path):
    """name -> float32 array, from a safetensors file (numpy only)."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    header.pop("__metadata__", None)
    data = raw[8 + size :]
    return {
        name: np.frombuffer(data[begin:end], dtype=np.float32).reshape(info["shape"])
        for name, info in header.items()
        for begin, end in [info["data_offsets"]]
    }


class TritonPythonModel:
    def initialize(self, args):
        extractor = load_safetensors(WEIGHTS / "extractor.safetensors")
        head = load_safetensors(WEIGHTS / "head.safetensors")
        self.e_w, self.e_b = extractor["weight"], extractor["bias"]
        self.h_w, self.h_b = head["weight"], head["bias"]

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "features").as_numpy()
            logits = np.maximum(x @ self.e_w + self.e_b, 0.0) @ self.h_w + self.h_b
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            out = pb_utils.Tensor("scores", p.astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
