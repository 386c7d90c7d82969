"""The SageMaker multi-model endpoint agent, played locally.

For each endpoint (an S3 prefix of ``model.tar.gz`` files, a memory and a disk budget: one
simulated instance), a TargetModel is loaded on its first invocation: fetched from S3, extracted
within the disk the endpoint has left (:mod:`mlops_cli.mme.extract` refuses a bomb before it
writes), and handed as it is to the container, which loads it or says why not. A model's load lasts
until it first answers; the reason its last load failed is kept for ``mlops status``. With the
endpoint's model cache off, a model is unloaded as soon as its requests are answered. Loaded models form a least-recently-used set; a load that would exceed
the budget first unloads the least recently used idle models. When every loaded model is serving
requests, the load waits for one of them to finish (as SageMaker holds an invocation while its
model loads, up to the 60 s invocation timeout) and answers 429 ``ModelNotReadyException`` only
when none finished in time. Errors are SageMaker's: an HTTP status, an error code and a message
(:class:`AgentError`).

Each TargetModel is loaded into the container under its own name (:func:`container_name`): two
TargetModels never share one, and a container that already holds a model under that name is not
taken to hold this TargetModel.

Locking: one agent lock guards the bookkeeping (cheap, never held across I/O); its condition
wakes loads waiting for memory when a model becomes idle or is unloaded; one lock per TargetModel
serialises its load and unload, so concurrent first calls load it once.

The records the agent keeps per endpoint are in :mod:`mlops_cli.mme.endpoint_state`; the
SageMaker errors it raises are built in :mod:`mlops_cli.mme.runtime_errors`.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_cli.mme.containers import Container, ContainerError, ContainerReply
from mlops_cli.mme.endpoint_state import (
    EndpointState,
    LoadedModel,
    ModelMetrics,
    first_line,
    model_memory_mb,
)
from mlops_cli.mme.extract import (
    ArchiveLimits,
    ArchiveTooLargeError,
    UnsafeArchiveError,
    check_archive,
    extract_checked,
)
from mlops_cli.mme.runtime_errors import (
    ACCOUNT,
    AgentError,
    download_failed,
    extract_failed,
    insufficient_storage,
    model_error,
    not_ready,
)

_TARGET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+-]{0,1023}")  # whole string: fullmatch
INVOCATION_TIMEOUT_S = 60.0  # SageMaker's limit for one invocation, a model's load included
_READABLE_NAME_CHARS = 64


def container_name(endpoint: str, target: str) -> str:
    """The name TargetModel ``target`` of ``endpoint`` has in the container: readable (the
    characters containers accept) and distinct for every (endpoint, target) pair, which the
    readable part alone is not (``col.x`` and ``col_x``), through a digest of the pair."""
    stem = target.removesuffix(".tar.gz").removesuffix(".tgz")
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", f"{endpoint}__{stem}")[:_READABLE_NAME_CHARS]
    # A TargetModel has no "/": the pair is read back unambiguously from "endpoint/target".
    digest = hashlib.sha256(f"{endpoint}/{target}".encode()).hexdigest()[:16]
    return f"{readable}-{digest}"


class Agent:
    """Endpoints, their model caches and the containers models are loaded into.

    ``memory_wait_s``: how long a load waits for memory held by models serving requests before
    it is refused with 429 (SageMaker's invocation timeout by default).
    """

    def __init__(
        self,
        workdir: Path,
        container_factory: Callable[[str], Container],
        *,
        memory_wait_s: float = INVOCATION_TIMEOUT_S,
    ) -> None:
        self.workdir = workdir
        self.memory_wait_s = memory_wait_s
        self._factory = container_factory
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified when memory may have freed
        self._container_lock = threading.Lock()
        self._containers: dict[str, Container] = {}
        self.endpoints: dict[str, EndpointState] = {}

    # -- endpoints -------------------------------------------------------------------------

    def register(
        self,
        name: str,
        *,
        s3_prefix: str,
        backend: str,
        memory_budget_mb: float,
        disk_budget_mb: float | None = None,
        model_cache: bool = True,
    ) -> bool:
        """Make ``name`` known (or update its prefix, backend and budgets); True when it is new."""
        with self._lock:
            state = self.endpoints.get(name)
            if state is None:
                self.endpoints[name] = EndpointState(
                    name, s3_prefix, backend, memory_budget_mb, disk_budget_mb, model_cache
                )
                return True
            state.s3_prefix, state.memory_budget_mb = s3_prefix, memory_budget_mb
            state.backend, state.disk_budget_mb = backend, disk_budget_mb
            state.model_cache = model_cache
            self._room.notify_all()
            return False

    def endpoint(self, name: str) -> EndpointState:
        with self._lock:
            state = self.endpoints.get(name)
        if state is None:
            raise AgentError(
                400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found."
            )
        return state

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "endpoints": {name: ep.describe() for name, ep in sorted(self.endpoints.items())},
                "containers": {kind: c.url for kind, c in self._containers.items()},
            }

    def container(self, backend: str) -> Container:
        with self._container_lock:
            if backend not in self._containers:
                self._containers[backend] = self._factory(backend)
            return self._containers[backend]

    def close(self) -> None:
        with self._container_lock:
            for container in self._containers.values():
                with contextlib.suppress(Exception):
                    container.stop()
            self._containers.clear()

    # -- invocation ------------------------------------------------------------------------

    def invoke(
        self, endpoint: str, target: str, body: bytes, content_type: str, accept: str
    ) -> ContainerReply:
        """Send one request to ``target`` on ``endpoint``, loading it first if needed.

        Blocking. mme-local's event loop runs the same steps without blocking on a warm model:
        :meth:`resolve`, :meth:`acquire_loaded` (else :meth:`acquire` in a thread), the
        container's :meth:`~Container.invoke_head` on its own connection, :meth:`finish`.
        """
        ep = self.resolve(endpoint, target)
        model = self.acquire(ep, target)
        container = self.container(ep.backend)
        started = time.perf_counter()
        try:
            reply = container.invoke(model.container_name, body, content_type, accept)
        except OSError as exc:  # finish raises: the container is unreachable
            return self.finish(ep, model, time.perf_counter() - started, None, exc)
        return self.finish(ep, model, time.perf_counter() - started, reply)

    def resolve(self, endpoint: str, target: str) -> EndpointState:
        """The endpoint, once ``target`` is known to be a valid TargetModel name (no I/O)."""
        ep = self.endpoint(endpoint)
        if not _TARGET_RE.fullmatch(target) or ".." in target:
            raise AgentError(400, "ValidationError", f"Invalid TargetModel {target!r}.")
        return ep

    def started_container(self, backend: str) -> Container | None:
        """The container of ``backend`` if it runs (never blocks, unlike :meth:`container`)."""
        return self._containers.get(backend)

    def finish(
        self,
        ep: EndpointState,
        model: LoadedModel,
        elapsed: float,
        reply: ContainerReply | None,
        error: OSError | None = None,
    ) -> ContainerReply:
        """Account for one invocation acquired with :meth:`acquire` or :meth:`acquire_loaded`:
        the container's reply, or an AgentError (424 ModelError, 500 unreachable)."""
        target = model.target
        forgotten = uncached = False
        with self._lock:
            model.inflight -= 1
            if ep.waiting and model.inflight == 0:
                self._room.notify_all()
            metrics = ep.metrics[target]
            metrics.invocations += 1
            metrics.invoke_seconds += elapsed
            if reply is None or reply.status >= 400:
                metrics.errors += 1
            if reply is not None:
                metrics.account_answer(model, reply.status, reply.body)
            else:
                metrics.account_answer(model, 500, str(error).encode())
            if reply is not None and reply.status == 404 and ep.loaded.get(target) is model:
                # The container no longer has it (restarted, or unloaded behind our back): forget
                # it, so that the next call loads it again, as SageMaker's agent would.
                del ep.loaded[target]
                forgotten = True
                self._room.notify_all()
            elif not ep.model_cache and model.inflight == 0 and ep.loaded.get(target) is model:
                del ep.loaded[target]  # no caching: unloaded once its requests are answered
                uncached = True
                self._room.notify_all()
        if forgotten:
            shutil.rmtree(model.path, ignore_errors=True)
        if uncached:  # the container's unload blocks: never in the caller (the event loop)
            threading.Thread(
                target=self._unload_files, args=(ep, model), name="mme-uncache", daemon=True
            ).start()
        if reply is None:
            raise AgentError(
                500, "InternalFailure", f"The {ep.backend} container is unreachable: {error}"
            )
        if reply.status >= 400:
            text = reply.body.decode("utf-8", errors="replace").strip()
            raise model_error(ep.name, target, reply.status, text)
        return reply

    def acquire_loaded(self, ep: EndpointState, target: str) -> LoadedModel | None:
        """The loaded model with one more request in flight, or None when it must be loaded
        (then call :meth:`acquire`). Never blocks on I/O."""
        with self._lock:
            model = ep.loaded.get(target)
            if model is None:
                return None
            ep.loaded.move_to_end(target)
            model.inflight += 1
            ep.metrics[target].cache_hits += 1
            return model

    def acquire(
        self, ep: EndpointState, target: str, *, deadline: float | None = None
    ) -> LoadedModel:
        """The loaded model with one more request in flight (loading it on a miss; blocking).

        ``deadline`` (``time.monotonic()``; default: :attr:`memory_wait_s` from now) bounds the
        waits for a concurrent load of the same model and for memory held by busy models."""
        if deadline is None:
            deadline = time.monotonic() + self.memory_wait_s
        with self._lock:
            metrics = ep.metrics.setdefault(target, ModelMetrics())
            model = ep.loaded.get(target)
            if model is not None:
                ep.loaded.move_to_end(target)
                model.inflight += 1
                metrics.cache_hits += 1
                return model
            load_lock = ep.load_locks.setdefault(target, threading.Lock())
        if not load_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise not_ready(target, "it is still being loaded or unloaded")
        try:
            with self._lock:
                model = ep.loaded.get(target)
                if model is not None:  # loaded by a concurrent first call
                    ep.loaded.move_to_end(target)
                    model.inflight += 1
                    metrics.cache_hits += 1
                    return model
            return self._load(ep, target, deadline)
        finally:
            load_lock.release()

    def _download(self, ep: EndpointState, target: str, into: Path) -> None:
        # The client is built (and cached) in this loader thread, outside the agent lock: the
        # event loop takes that lock on every invocation.
        from mlops_cli.aws.s3 import S3Prefix

        prefix = S3Prefix(ep.s3_prefix, max_pool=32)
        try:
            prefix.download(target, into)
        except Exception as exc:  # the message names the key that was fetched
            raise download_failed(ep.bucket, prefix.key(target), target, exc) from None

    def _load(self, ep: EndpointState, target: str, deadline: float) -> LoadedModel:
        try:
            return self._fetch_and_load(ep, target, deadline)
        except AgentError as exc:
            if exc.code != "ModelNotReadyException":  # waiting for memory is no load failure
                with self._lock:
                    metrics = ep.metrics[target]
                    metrics.load_failures += 1
                    metrics.last_load_error = first_line(exc.message)
            raise

    def _fetch_and_load(self, ep: EndpointState, target: str, deadline: float) -> LoadedModel:
        started = time.perf_counter()
        downloads = self.workdir / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        stem = target.removesuffix(".tar.gz").removesuffix(".tgz")
        folder = self.workdir / "models" / ep.name / f"{stem}-{uuid.uuid4().hex[:8]}"
        with tempfile.NamedTemporaryFile(dir=downloads, suffix=".tar.gz") as archive:
            self._download(ep, target, Path(archive.name))
            size = self._extract(ep, target, Path(archive.name), folder, deadline)
        try:
            entry = folder if ep.prepare is None else ep.prepare(folder)
            need = model_memory_mb(folder, size)
            self._make_room(ep, target, deadline, need_mb=need)
        except BaseException:
            self._release(ep, disk=size)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        name = container_name(ep.name, target)
        try:
            _load_replacing_leftover(self.container(ep.backend), name, entry)
        except BaseException as exc:
            self._release(ep, memory=need, disk=size)
            shutil.rmtree(folder, ignore_errors=True)
            if not isinstance(exc, ContainerError | OSError):
                raise  # the container did not start: the server answers InternalFailure
            message = getattr(exc, "message", str(exc))
            raise AgentError(
                424,
                "ModelError",
                f"Failed to load model {target} into the {ep.backend} container: {message}",
                OriginalStatusCode=getattr(exc, "status", 500),
                OriginalMessage=message,
            ) from None
        elapsed = time.perf_counter() - started
        model = LoadedModel(target, name, folder, need, inflight=1, disk_bytes=size)
        with self._lock:
            ep.reserved_mb -= need
            ep.extracting_bytes -= size  # now counted as the loaded model's
            ep.loaded[target] = model
            metrics = ep.metrics[target]
            metrics.loads += 1
            metrics.load_seconds += elapsed
            metrics.last_load_seconds = elapsed
        return model

    def _release(self, ep: EndpointState, *, memory: float = 0.0, disk: int = 0) -> None:
        with self._lock:
            ep.reserved_mb -= memory
            ep.extracting_bytes -= disk
            self._room.notify_all()

    def _extract(
        self, ep: EndpointState, target: str, archive: Path, folder: Path, deadline: float
    ) -> int:
        """Check the archive (writing nothing), make room on the endpoint's disk for what it
        declares, then extract it: 507 when it can never fit, 400 for an archive SageMaker could
        not extract either; nothing is left behind on a refusal. The disk stays reserved (as
        ``extracting_bytes``) until the caller counts it as a loaded model's or releases it."""
        what = f"TargetModel {target}"
        try:
            declared = check_archive(archive, ArchiveLimits(ep.disk_budget_bytes), what=what)
        except ArchiveTooLargeError as exc:
            raise insufficient_storage(ep, target, exc.message) from None
        except UnsafeArchiveError as exc:
            raise extract_failed(exc.message) from None
        self._make_room(ep, target, deadline, need_bytes=declared)
        try:
            extract_checked(archive, folder, what=what)
        except BaseException as exc:
            self._release(ep, disk=declared)
            if isinstance(exc, UnsafeArchiveError):
                raise extract_failed(exc.message) from None
            raise
        return declared

    def _make_room(
        self,
        ep: EndpointState,
        target: str,
        deadline: float,
        *,
        need_mb: float = 0.0,
        need_bytes: int = 0,
    ) -> None:
        """Reserve ``need_mb`` of memory and ``need_bytes`` of disk, unloading least recently
        used idle models to make room; while every loaded model is busy, wait (until
        ``deadline``) for one to become idle."""
        if need_mb > ep.memory_budget_mb:
            raise AgentError(
                507,
                "InsufficientStorage",
                f"TargetModel {target} needs {need_mb:g} MB and the instance has "
                f"{ep.memory_budget_mb:g} MB: it can never be loaded on endpoint {ep.name}.",
            )
        while True:
            with self._lock:
                fits_memory = ep.used_mb + ep.reserved_mb + need_mb <= ep.memory_budget_mb
                if fits_memory and ep.disk_used_bytes + need_bytes <= ep.disk_budget_bytes:
                    ep.reserved_mb += need_mb
                    ep.extracting_bytes += need_bytes
                    return
                victim: LoadedModel | None = None
                victim_lock: threading.Lock | None = None
                for candidate in ep.loaded.values():  # least recently used first
                    lock = ep.load_locks.setdefault(candidate.target, threading.Lock())
                    if candidate.inflight == 0 and lock.acquire(blocking=False):
                        victim, victim_lock = candidate, lock
                        break
                if victim is None or victim_lock is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        held = "memory" if not fits_memory else "disk"
                        raise not_ready(
                            target, f"the instance's {held} is held by models serving requests"
                        )
                    ep.waiting += 1
                    try:
                        # Woken when a model becomes idle or memory is released; the timeout
                        # is a safety net for a lock released without a notification.
                        self._room.wait(min(remaining, 0.5))
                    finally:
                        ep.waiting -= 1
                    continue
                del ep.loaded[victim.target]
                ep.metrics.setdefault(victim.target, ModelMetrics()).evictions += 1
            try:
                self._unload_files(ep, victim)
            finally:
                victim_lock.release()

    def _unload_files(self, ep: EndpointState, model: LoadedModel) -> None:
        with contextlib.suppress(ContainerError, OSError):
            self.container(ep.backend).unload(model.container_name)
        shutil.rmtree(model.path, ignore_errors=True)

    def unload(self, endpoint: str, target: str, *, timeout: float = 30.0) -> bool:
        """Unload ``target`` once its requests finish; True when it was loaded."""
        return self.unload_from(self.endpoint(endpoint), target, timeout=timeout)

    def unload_from(self, ep: EndpointState, target: str, *, timeout: float = 30.0) -> bool:
        """:meth:`unload` for an endpoint state the caller holds (one not registered by name:
        an inference component's)."""
        with self._lock:
            lock = ep.load_locks.setdefault(target, threading.Lock())
        with lock:
            deadline = time.monotonic() + timeout
            while True:
                with self._lock:
                    model = ep.loaded.get(target)
                    if model is None:
                        return False
                    if model.inflight == 0 or time.monotonic() > deadline:
                        del ep.loaded[target]
                        self._room.notify_all()
                        break
                time.sleep(0.02)
            self._unload_files(ep, model)
            return True


def _load_replacing_leftover(container: Container, name: str, folder: Path) -> None:
    """Load ``folder`` as ``name``. A container that already holds a model under that name (it
    answers 409) holds a leftover of this same TargetModel, whose load or unload failed half-way
    and whose files are gone: it is unloaded and the load tried once more. A second refusal is an
    error, never taken as loaded."""
    try:
        container.load(name, folder)
    except ContainerError as exc:
        if exc.status != 409:
            raise
        container.unload(name)
        container.load(name, folder)
