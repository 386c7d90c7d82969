"""A decoupled (streaming) Triton python-backend model: a toy bigram language model.

Each request carries a ``prompt`` and ``max_tokens``; the model answers with one response per
generated token, then a final empty response that closes the stream. Generation starts from the
last prompt word it knows (else from the start token) and always follows the highest-scoring next
word, so the same prompt always gives the same tokens.

Replace the bigram table with a real model; the streaming part (response sender, final flag) stays
the same.
"""

from pathlib import Path

import numpy as np

# Provided by the Triton python backend at run time; not installable from PyPI.
import triton_python_backend_utils as pb_utils

WEIGHTS = Path(__file__).parent / "weights" / "lm.npz"
START, END = "<s>", "</s>"
DEFAULT_MAX_TOKENS = 16


def first_value(request, name):
    """The single element of input ``name``, or None when the request does not carry it."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy().reshape(-1)[0]


class TritonPythonModel:
    def initialize(self, args):
        """Called once per model instance when Triton loads the model."""
        with np.load(WEIGHTS) as weights:
            self.vocab = [str(word) for word in weights["vocab"]]
            self.scores = weights["transitions"]  # [V, V]: score of word j following word i
        self.index = {word: i for i, word in enumerate(self.vocab)}

    def generate(self, prompt, max_tokens):
        """Yield up to ``max_tokens`` words, stopping early at the end token."""
        known = [self.index[w] for w in prompt.lower().split() if w in self.index]
        current = known[-1] if known else self.index[START]
        for _ in range(max_tokens):
            current = int(np.argmax(self.scores[current]))
            if self.vocab[current] == END:
                return
            yield self.vocab[current]

    def execute(self, requests):
        """Stream each request's tokens through its response sender; return None (decoupled)."""
        for request in requests:
            sender = request.get_response_sender()
            try:
                prompt = first_value(request, "prompt")
                prompt = prompt.decode("utf-8") if isinstance(prompt, bytes) else str(prompt)
                # mlops.yaml makes max_tokens required; the default serves configs that do not.
                max_tokens = first_value(request, "max_tokens")
                max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else int(max_tokens)
                for word in self.generate(prompt, max_tokens):
                    token = pb_utils.Tensor("token", np.array([word.encode("utf-8")], dtype=object))
                    sender.send(pb_utils.InferenceResponse(output_tensors=[token]))
            except Exception as exc:  # report the failure on the stream rather than drop it
                error = pb_utils.TritonError(f"generation failed: {exc}")
                sender.send(pb_utils.InferenceResponse(error=error))
            # Every stream must be closed exactly once, with the final flag.
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def finalize(self):
        """Called once when the model is unloaded."""
        self.scores = None
