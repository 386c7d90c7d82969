"""The promises of a load-test target (:mod:`mlops_cli.perf.targets`), checked on every protocol.

Each test runs once per endpoint, through the perftest runner (``run_perftest``), against a real
server on loopback that counts what it received:

- ``http`` and ``grpc``: the real local tritonserver (``local_triton`` of ``tests/conftest.py``)
  serving a python-backend model written here, which doubles its input, logs every input it
  receives and fails every Nth request when told to (the model's own error, as Triton returns it);
- ``http-v2-stand-in``: ``http`` against the delay server's KServe v2 routes (exact bytes seen);
- ``http-json`` and ``sagemaker``: the delay server (``tests/servers/delay_http.py``), plain and
  as SageMaker runtime (botocore, SigV4, ``TargetModel``), failing with ``error_status`` on demand.

The promises: N requests sent are N successes counted and N answers at the server; an error the
server answers is counted by its kind, never as a success, and has no latency; an unreachable
target is a connection failure that fails the run (exit 1: an error with exit code 1, or the
document's ``aborted``, which ``mlops perftest`` turns into exit 1); and every request carries a
body built by the shared payload code (:class:`mlops_cli.perf.payloads.Payload`), each payload
given sent in turn. Every run is bounded by a request count (at most 24) and the target timeout.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.aws import reset_clients
from mlops_cli.errors import MlopsError
from mlops_cli.perf.load_options import LoadOptions
from mlops_cli.perf.payloads import Payload, from_template
from mlops_cli.perf.runner import run_perftest
from mlops_cli.perf.targets import TargetSpec
from tests.conftest import triton_request
from tests.servers.delay_http import DelayServer

pytestmark = [pytest.mark.integration]

REQUESTS = 24
TIMEOUT_S = 10.0
# Three distinct bodies, built by the shared payload code: KServe v2 tensors, or a raw document.
TENSORS = '{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [{{i}}]}]}'
RAW = '{"x": [{{i}}]}'
CONNECTION_FAILURE = re.compile(
    r"cannot (connect|reach)|[Cc]onnection refused|every request failed \(connect \d+\)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PerfEndpoint(ABC):
    """One protocol against one loopback server, as the suite drives and observes it."""

    protocol: str
    payloads: list[Payload]

    @abstractmethod
    def spec(self) -> TargetSpec:
        """The target description the runner is given."""

    @abstractmethod
    def unreachable_spec(self) -> TargetSpec:
        """The same target at an address where nothing listens."""

    @abstractmethod
    def fail_every(self, every: int) -> str:
        """Make the server fail every ``every``-th request from now on; the error kind the
        target must count them under."""

    @abstractmethod
    def answered(self) -> int:
        """Successful answers the server itself counted."""

    @abstractmethod
    def seen(self) -> dict[str, int]:
        """What the server received: how many requests carried each input."""

    @abstractmethod
    def expected_seen(self, payload: Payload) -> str:
        """How a request built from ``payload`` shows in :meth:`seen`."""


# -- the delay server: http-json, sagemaker, and http against its KServe v2 routes ------------


class DelayEndpoint(PerfEndpoint):
    def __init__(self, server: DelayServer, protocol: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.protocol = protocol
        server.control(delay_ms=1, stall_s=0, error_status=0, reset=True)
        self.payloads = from_template(TENSORS if protocol == "http" else RAW, count=3)
        if protocol == "sagemaker":
            self._aws_env(monkeypatch, server.url)
        self.monkeypatch = monkeypatch

    @staticmethod
    def _aws_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        reset_clients()  # clients cached under another environment must not be reused

    def _spec(self, base: str) -> TargetSpec:
        if self.protocol == "http-json":
            return TargetSpec(protocol="http-json", url=base + "/infer", timeout_s=TIMEOUT_S)
        if self.protocol == "sagemaker":
            return TargetSpec(
                protocol="sagemaker",
                url="sagemaker://conformance-endpoint",
                models=("model-a.tar.gz",),
                timeout_s=TIMEOUT_S,
            )
        return TargetSpec(protocol="http", url=base, models=("stand-in",), timeout_s=TIMEOUT_S)

    def spec(self) -> TargetSpec:
        return self._spec(self.server.url)

    def unreachable_spec(self) -> TargetSpec:
        nowhere = f"http://127.0.0.1:{free_port()}"
        if self.protocol == "sagemaker":
            self._aws_env(self.monkeypatch, nowhere)
        return self._spec(nowhere)

    def fail_every(self, every: int) -> str:
        if self.protocol == "sagemaker":
            self.server.control(error_status=403, error_every=every)
            return "sagemaker_AccessDeniedException"
        self.server.control(error_status=503, error_every=every)
        return "http_503"

    def _status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.server.url + "/control", timeout=10) as response:
            status: dict[str, Any] = json.loads(response.read())
        return status

    def answered(self) -> int:
        status = self._status()
        return int(status["requests"]) - int(status["seen"]["failed"])

    def seen(self) -> dict[str, int]:
        return dict(self._status()["seen"]["bodies"])

    def expected_seen(self, payload: Payload) -> str:
        return payload.body().decode()

    def signed_for(self) -> dict[str, int]:
        """SageMaker only: requests per ``TargetModel``, and how many were SigV4-signed."""
        seen = self._status()["seen"]
        return {**seen["target_models"], "(signed)": seen["signed"]}


# -- the real local tritonserver: http and grpc ------------------------------------------------

MODEL = "conformance"
CONFIG = """backend: "python"
max_batch_size: 0
input [{ name: "x", data_type: TYPE_FP32, dims: [ -1 ] }]
output [{ name: "y", data_type: TYPE_FP32, dims: [ -1 ] }]
instance_group [{ kind: KIND_CPU, count: 1 }]
parameters: { key: "error_every" value: { string_value: "%d" } }
parameters: { key: "log" value: { string_value: "%s" } }
"""
# One instance, so "every Nth request" is exact; the log line is written before the answer.
MODEL_PY = '''"""y = 2 * x; fails every Nth request when told to; logs each request (its input x,
and whether it failed) as a JSON line."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"])["parameters"]
        self.every = int(parameters["error_every"]["string_value"])
        self.log = parameters["log"]["string_value"]
        self.count = 0

    def execute(self, requests):
        responses = []
        for request in requests:
            self.count += 1
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            failed = bool(self.every) and self.count % self.every == 0
            with open(self.log, "a") as log:
                log.write(json.dumps({"x": [float(v) for v in x.flatten()], "failed": failed}))
                log.write("\\n")
            if failed:
                error = pb_utils.TritonError("injected failure")
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            y = pb_utils.Tensor("y", (x * 2).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[y]))
        return responses
'''
# How Triton reports an error response of a python-backend model, per protocol.
TRITON_ERROR_KINDS = {"http": "http_500", "grpc": "grpc_internal"}


class TritonEndpoint(PerfEndpoint):
    def __init__(self, manager: Any, protocol: str, log: Path) -> None:
        self.state = manager.read_state()
        self.protocol = protocol
        self.log = log
        self.payloads = from_template(TENSORS, count=3)
        self._load(error_every=0)

    def _load(self, *, error_every: int) -> None:
        folder = Path(self.state.model_repository) / MODEL
        (folder / "1").mkdir(parents=True, exist_ok=True)
        (folder / "config.pbtxt").write_text(CONFIG % (error_every, self.log))
        (folder / "1" / "model.py").write_text(MODEL_PY)
        triton_request(self.state.http_url, f"/v2/repository/models/{MODEL}/load", {})
        self.log.write_text("")

    def _spec(self, http_url: str, grpc_address: str) -> TargetSpec:
        url = http_url if self.protocol == "http" else f"grpc://{grpc_address}"
        return TargetSpec(protocol=self.protocol, url=url, models=(MODEL,), timeout_s=TIMEOUT_S)

    def spec(self) -> TargetSpec:
        return self._spec(self.state.http_url, f"127.0.0.1:{self.state.grpc_port}")

    def unreachable_spec(self) -> TargetSpec:
        port = free_port()
        return self._spec(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}")

    def fail_every(self, every: int) -> str:
        self._load(error_every=every)  # a new instance: its count starts again
        return TRITON_ERROR_KINDS[self.protocol]

    def _requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def answered(self) -> int:
        # The model's own log: Triton's statistics count an error response as a success.
        return sum(1 for logged in self._requests() if not logged["failed"])

    def seen(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for logged in self._requests():
            key = json.dumps(logged["x"])
            counts[key] = counts.get(key, 0) + 1
        return counts

    def expected_seen(self, payload: Payload) -> str:
        assert payload.tensors is not None
        return json.dumps([float(v) for v in payload.tensors[0].data])


# -- the fixture -------------------------------------------------------------------------------

ENDPOINTS = ("http", "grpc", "http-v2-stand-in", "http-json", "sagemaker")


@pytest.fixture(scope="module")
def delay_server() -> Iterator[DelayServer]:
    with DelayServer() as server:
        yield server


@pytest.fixture(params=ENDPOINTS)
def endpoint(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> PerfEndpoint:
    if request.param in ("http", "grpc"):
        return TritonEndpoint(
            request.getfixturevalue("local_triton"), request.param, tmp_path / "inputs.jsonl"
        )
    protocol = "http" if request.param == "http-v2-stand-in" else request.param
    if protocol == "sagemaker":
        request.addfinalizer(reset_clients)  # no client of this endpoint outlives the test
    return DelayEndpoint(request.getfixturevalue("delay_server"), protocol, monkeypatch)


def run(endpoint: PerfEndpoint, spec: TargetSpec | None = None) -> dict[str, Any]:
    """One closed-loop step of two users sending exactly ``REQUESTS`` requests, no warmup."""
    options = LoadOptions(mode="closed", levels=(2,), requests=REQUESTS, warmup_s=0.0)
    return run_perftest(spec or endpoint.spec(), options, payloads=endpoint.payloads)


# -- the promises ------------------------------------------------------------------------------


def test_n_requests_are_n_successes(endpoint: PerfEndpoint) -> None:
    before = endpoint.answered()

    doc = run(endpoint)

    [step] = doc["steps"]
    assert doc["aborted"] is None
    assert (step["requests"], step["ok"], step["errors"]) == (REQUESTS, REQUESTS, 0)
    assert step["errors_by_kind"] == {}
    assert endpoint.answered() - before == REQUESTS, "the server did not answer each request once"
    [per_model] = step["per_model"].values()
    assert (per_model["requests"], per_model["errors"]) == (REQUESTS, 0)
    # Every success has a latency, and only successes do.
    assert step["histogram"]["count"] == REQUESTS
    assert 0 < step["latency_ms"]["p50"] <= step["latency_ms"]["max"]


def test_an_error_answer_is_counted_by_kind_and_not_as_a_success(endpoint: PerfEndpoint) -> None:
    kind = endpoint.fail_every(3)
    before = endpoint.answered()

    doc = run(endpoint)

    [step] = doc["steps"]
    failed = REQUESTS // 3
    assert step["errors_by_kind"] == {kind: failed}
    assert (step["ok"], step["errors"], step["requests"]) == (REQUESTS - failed, failed, REQUESTS)
    assert step["error_rate"] == pytest.approx(failed / REQUESTS)
    assert step["histogram"]["count"] == REQUESTS - failed, "a failed request got a latency"
    [per_model] = step["per_model"].values()
    assert (per_model["requests"], per_model["errors"]) == (REQUESTS, failed)
    assert endpoint.answered() - before == REQUESTS - failed
    assert doc["aborted"] is None  # some successes: the gate, not an abort, judges the rate


def test_a_target_that_fails_every_request_aborts_the_run(endpoint: PerfEndpoint) -> None:
    kind = endpoint.fail_every(1)

    doc = run(endpoint)

    [step] = doc["steps"]
    assert (step["ok"], step["errors_by_kind"]) == (0, {kind: REQUESTS})
    assert step["latency_ms"] is None and step["histogram"]["count"] == 0
    assert all(window["p99_ms"] is None for window in step["windows"])
    assert doc["aborted"]["reason"] == f"every request failed ({kind} {REQUESTS})"


def test_an_unreachable_target_is_a_connection_failure(endpoint: PerfEndpoint) -> None:
    spec = endpoint.unreachable_spec()
    try:
        doc = run(endpoint, spec)
    except MlopsError as exc:  # refused before any load: the one line `mlops perftest` prints
        assert exc.exit_code == 1
        assert CONNECTION_FAILURE.search(exc.message), exc.message
        return
    assert doc["aborted"] is not None, "an unreachable target passed"  # exit 1 in the CLI
    assert CONNECTION_FAILURE.search(doc["aborted"]["reason"]), doc["aborted"]
    assert all(step["ok"] == 0 for step in doc["steps"])


def test_every_payload_is_sent_as_the_shared_payload_code_builds_it(
    endpoint: PerfEndpoint,
) -> None:
    doc = run(endpoint)

    assert doc["steps"][0]["ok"] == REQUESTS
    each = REQUESTS // len(endpoint.payloads)
    expected = {endpoint.expected_seen(payload): each for payload in endpoint.payloads}
    assert len(expected) == len(endpoint.payloads), "the payloads are not distinct"
    assert endpoint.seen() == expected


def test_sagemaker_requests_are_signed_and_name_their_target_model(
    delay_server: DelayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = DelayEndpoint(delay_server, "sagemaker", monkeypatch)

    run(endpoint)

    assert endpoint.signed_for() == {"model-a.tar.gz": REQUESTS, "(signed)": REQUESTS}
