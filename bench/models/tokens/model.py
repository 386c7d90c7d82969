"""Streams `count` tokens "<i>@<unix time produced>", `gap_us` microseconds apart."""

import time

import numpy as np
import triton_python_backend_utils as pb_utils

MAX_COUNT = 100_000  # a bound on one request's stream


def scalar(request, name):
    return int(pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)[0])


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            count = min(max(scalar(request, "count"), 0), MAX_COUNT)
            gap = max(scalar(request, "gap_us"), 0) / 1e6
            for i in range(count):
                if i and gap:
                    time.sleep(gap)
                token = f"{i}@{time.time():.6f}".encode()
                out = pb_utils.Tensor("token", np.array([token], dtype=object))
                sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
