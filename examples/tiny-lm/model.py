"""A bigram language model that streams: one response per word, sent as soon as it is chosen."""

import json
import struct
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

WEIGHTS = Path(__file__).parent / "weights" / "bigram.safetensors"
DTYPES = {"F32": np.float32, "I32": np.int32, "U8": np.uint8}
TOKEN_SECONDS = 0.02  # pace the words a little, as a real model's decoding steps would


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


def scalar(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy().reshape(-1)[0]


class TritonPythonModel:
    def initialize(self, args):
        tensors = load_safetensors(WEIGHTS)
        self.logprobs = tensors["logprobs"]
        self.vocab = bytes(tensors["vocab"]).decode().split("\n")
        self.index = {word: i for i, word in enumerate(self.vocab)}

    def words(self, prompt, max_tokens):
        """Greedy decoding from the last known prompt word; repeated words are avoided."""
        known = [self.index[w] for w in prompt.lower().split() if w in self.index]
        current = known[-1] if known else self.index["<s>"]
        used = set()
        for _ in range(max_tokens):
            scores = self.logprobs[current].copy()
            scores[list(used)] -= 2.0
            current = int(np.argmax(scores))
            if self.vocab[current] == "</s>":
                return
            used.add(current)
            yield self.vocab[current]

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                prompt = scalar(request, "prompt")
                prompt = prompt.decode() if isinstance(prompt, bytes) else str(prompt)
                max_tokens = int(scalar(request, "max_tokens"))
                for i, word in enumerate(self.words(prompt, max_tokens)):
                    if i:
                        time.sleep(TOKEN_SECONDS)
                    out = pb_utils.Tensor("token", np.array([word.encode()], dtype=object))
                    sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
            except Exception as exc:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
