"""What mme-local's agent knows about each endpoint: its models, their memory and their metrics.

Plain records with no locking and no I/O of their own (:func:`model_memory_mb` reads the
``mlops.yaml`` of an extracted model). Their one owner is :class:`~mlops_cli.mme.agent.Agent`,
which changes them only under its lock; the event loop reads single fields without it (an
endpoint's name and backend, a model's target and container name), each replaced whole.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops_cli.aws.s3_location import S3Location

DISK_PER_MEMORY = 4  # an endpoint's default disk budget, in memory budgets


@dataclass
class ModelMetrics:
    invocations: int = 0
    errors: int = 0
    cache_hits: int = 0
    loads: int = 0
    evictions: int = 0
    load_seconds: float = 0.0
    last_load_seconds: float = 0.0
    invoke_seconds: float = 0.0
    # Why the model's last load failed (until it answers after a load); None once it answered.
    # A load lasts until the first answer: a container that loads lazily fails on that answer.
    last_load_error: str | None = None
    load_failures: int = 0

    def account_answer(self, model: LoadedModel, status: int, body: bytes) -> None:
        """Count what an answer says of ``model``'s load, which lasts until it first answers: a
        server-side failure before then is its load failing (a container that loads lazily, as
        the inference toolkit does, fails there)."""
        if status < 400:
            model.answered = True
            self.last_load_error = None
        elif not model.answered and status >= 500:
            self.load_failures += 1
            self.last_load_error = first_line(body.decode("utf-8", errors="replace"))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self)
        data["mean_invoke_ms"] = (
            round(1000 * self.invoke_seconds / self.invocations, 3) if self.invocations else None
        )
        return data


@dataclass
class LoadedModel:
    target: str
    container_name: str
    path: Path
    memory_mb: float
    inflight: int = 0
    loaded_at: float = field(default_factory=time.time)
    disk_bytes: int = 0  # what its extracted files take
    answered: bool = False  # it answered since it was loaded: its load is over


@dataclass
class EndpointState:
    name: str
    s3_prefix: str
    backend: str
    memory_budget_mb: float
    disk_budget_mb: float | None = None  # None: DISK_PER_MEMORY times the memory budget
    model_cache: bool = True  # False: a model is unloaded once its requests are answered
    loaded: OrderedDict[str, LoadedModel] = field(default_factory=OrderedDict)
    reserved_mb: float = 0.0
    extracting_bytes: int = 0  # disk taken by archives being extracted now
    waiting: int = 0  # loads waiting for memory held by busy models
    metrics: dict[str, ModelMetrics] = field(default_factory=dict)
    load_locks: dict[str, threading.Lock] = field(default_factory=dict)
    # The folder handed to the container, from the extracted one (None: that folder itself); it
    # may refuse the artifact with an AgentError (an inference component's container checks).
    prepare: Callable[[Path], Path] | None = None

    @property
    def bucket(self) -> str:
        return S3Location.parse(self.s3_prefix).bucket

    @property
    def key_prefix(self) -> str:
        return S3Location.parse(self.s3_prefix).key

    @property
    def used_mb(self) -> float:
        return sum(model.memory_mb for model in self.loaded.values())

    @property
    def disk_budget_bytes(self) -> int:
        budget = self.disk_budget_mb or DISK_PER_MEMORY * self.memory_budget_mb
        return int(budget * 2**20)

    @property
    def disk_used_bytes(self) -> int:
        return self.extracting_bytes + sum(m.disk_bytes for m in self.loaded.values())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "s3_prefix": self.s3_prefix,
            "backend": self.backend,
            "memory_budget_mb": self.memory_budget_mb,
            "disk_budget_mb": self.disk_budget_mb,
            "model_cache": self.model_cache,
            "used_mb": self.used_mb,
            "disk_used_mb": round(self.disk_used_bytes / 2**20, 3),
            "loaded": [
                {
                    "target": m.target,
                    "container_name": m.container_name,
                    "memory_mb": m.memory_mb,
                    "inflight": m.inflight,
                }
                for m in self.loaded.values()
            ],
            "models": {target: m.to_dict() for target, m in sorted(self.metrics.items())},
        }


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped and bounded (a reason, for status)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), text)[:500]


def _spec_file(model_dir: Path) -> Path | None:
    """The model's ``mlops.yaml``: at the root (multi-model-server layouts), or in the version
    folder of its Triton repository entry (``<name>/<version>/mlops.yaml``)."""
    root = model_dir / "mlops.yaml"
    if root.is_file():
        return root
    return next(iter(sorted(model_dir.glob("*/[0-9]*/mlops.yaml"))), None)


def model_memory_mb(model_dir: Path, size_bytes: int) -> float:
    """A model's memory: ``resources.memory_mb`` of its ``mlops.yaml``, else its size on disk."""
    spec = _spec_file(model_dir)
    if spec is not None:
        with contextlib.suppress(Exception):
            from mlops_cli.spec.modelspec import read_yaml

            data = read_yaml(spec) or {}  # bounded: the file comes from an untrusted tarball
            memory = (data.get("resources") or {}).get("memory_mb")
            if isinstance(memory, int | float) and memory > 0:
                return float(memory)
    return max(1.0, round(size_bytes / 2**20, 3))
