"""A Triton python-backend model: a tiny numpy classifier.

    probabilities = softmax(features @ W + b)     features [batch, 4] -> probabilities [batch, 3]

Replace the weights and the arithmetic with your own model; keep the tensor names in step with
mlops.yaml.
"""

from pathlib import Path

import numpy as np

# Provided by the Triton python backend at run time; not installable from PyPI.
import triton_python_backend_utils as pb_utils

WEIGHTS = Path(__file__).parent / "weights" / "classifier.npz"


def softmax(logits):
    # Subtracting the row maximum keeps exp() from overflowing; the result is unchanged.
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class TritonPythonModel:
    def initialize(self, args):
        """Called once per model instance when Triton loads the model."""
        with np.load(WEIGHTS) as weights:
            self.w = weights["W"].astype(np.float32)  # [4, 3]
            self.b = weights["b"].astype(np.float32)  # [3]

    def execute(self, requests):
        """Answer a list of requests (dynamic batching may hand over several at once)."""
        batches = [
            pb_utils.get_input_tensor_by_name(request, "features").as_numpy()
            for request in requests
        ]
        # One matrix product for every request Triton grouped together, then split per request.
        probabilities = softmax(np.concatenate(batches) @ self.w + self.b).astype(np.float32)
        ends = np.cumsum([len(batch) for batch in batches])[:-1]
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("probabilities", rows)])
            for rows in np.split(probabilities, ends)
        ]

    def finalize(self):
        """Called once when the model is unloaded."""
        self.w = self.b = None
