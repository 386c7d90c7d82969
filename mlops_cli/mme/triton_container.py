"""NVIDIA Triton as the second container of mme-local (what SageMaker's Triton image runs).

mme-local starts its own ``tritonserver`` (the one the ``nvidia-pytriton`` wheel bundles; loopback
HTTP only, explicit model control, an empty repository of its own) and loads each extracted
tarball as SageMaker's Triton container does (its ``sagemaker_server.cc``): the folder's model
subfolder is the model (the ensemble one when there are several; the folder itself when
``config.pbtxt`` sits at its root), with its own ``config.pbtxt`` and files, under the name the
agent gives it. Triton's SageMaker front end maps the subfolder to that name in a repository it
registers; its HTTP API here has no such call, so the subfolder is linked into the server's
repository under the name and loaded with its own configuration, renamed to it (what the mapping
does). Nothing of the tarball is rewritten, and what Triton refuses comes back with Triton's own
message. (The SageMaker front end itself listens on every interface, which a local tool must not
do: that is why it is not used.)

Requests are KServe v2 JSON, as SageMaker's Triton container takes them, passed through as they
are on a keep-alive connection.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

from mlops_cli.errors import ServerError
from mlops_cli.mme.containers import ContainerError, ContainerReply, HttpPool, post_head
from mlops_cli.triton.client import ServerUnreachableError, TritonClient, TritonLoadError

LOAD_TIMEOUT = 120.0
_ENSEMBLE = re.compile(r'platform:(\s)*"ensemble"')


def model_subfolder(folder: Path) -> Path:
    """The model folder SageMaker's Triton container loads from an extracted tarball: the folder
    itself when ``config.pbtxt`` is at its root, else its subfolder (the one whose config says
    ``platform: "ensemble"`` when there are several, else the last one listed, as the container
    takes it)."""
    if (folder / "config.pbtxt").is_file():
        return folder
    chosen: Path | None = None
    ensemble: Path | None = None
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            chosen = Path(entry.path)
            config = chosen / "config.pbtxt"
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if _ENSEMBLE.search(config.read_text()):
                    ensemble = chosen
    return ensemble or chosen or folder


def renamed_config(model_dir: Path, name: str) -> str | None:
    """The folder's own ``config.pbtxt`` as JSON, under ``name``; None when it has none or it does
    not parse (Triton then reads the file itself, and says what is wrong with it)."""
    from google.protobuf import json_format, text_format

    from mlops_cli.render.triton import model_config_pb2

    try:
        text = (model_dir / "config.pbtxt").read_text()
        config = text_format.Parse(text, model_config_pb2().ModelConfig())
    except (OSError, UnicodeDecodeError, text_format.ParseError):
        return None
    config.name = name
    return str(json_format.MessageToJson(config))


# What SageMaker's Triton front end takes for "out of memory" in a load's error: it answers 507
# for those and 400 for any other refusal.
_OOM_MARKERS = (
    "CUDA out of memory",
    "CUDA_OUT_OF_MEMORY",
    "Out of memory",
    "Out Of Memory",
    "out of memory",
    "MemoryError",
    "OutOfMemory",
    "OOM",
    "Failed to allocate memory",
    "failed to allocate memory",
    "No space left on device",
)


def load_status(reason: str) -> int:
    """The HTTP status SageMaker's Triton container answers a load that failed with ``reason``."""
    return 507 if any(marker in reason for marker in _OOM_MARKERS) else 400


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TritonContainer:
    """A tritonserver process of mme-local's own, in ``workdir`` (started by :meth:`start`)."""

    kind = "triton"
    reply_type = "application/json"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.repository = workdir / "repository"
        self.log_path = workdir / "tritonserver.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self.client: TritonClient | None = None
        self._http: HttpPool | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self, timeout: float = 60.0) -> TritonContainer:
        """Start the server and wait until it is ready; :class:`ServerError` with its log's last
        line when it does not start (ExtraNotInstalledError without the ``triton`` extra)."""
        from mlops_cli.local.install import TritonInstallation

        install = TritonInstallation.locate()
        shutil.rmtree(self.repository, ignore_errors=True)  # links of a previous run
        self.repository.mkdir(parents=True)
        backends = install.link_backends(self.workdir / "backends")
        for _ in range(3):  # a port taken between the choice and the bind: choose again
            self.port = _free_port()
            argv = [
                str(install.binary),
                f"--model-repository={self.repository}",
                "--model-control-mode=explicit",
                f"--backend-directory={backends}",
                f"--cache-directory={self.workdir / 'caches'}",
                "--http-address=127.0.0.1",
                f"--http-port={self.port}",
                "--allow-grpc=false",
                "--allow-metrics=false",
                "--exit-timeout-secs=5",
                "--strict-readiness=true",
            ]
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(
                    argv,
                    env=install.environment(dict(os.environ)),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(timeout):
                self.client = TritonClient(self.url, timeout=LOAD_TIMEOUT)
                self._http = HttpPool(*self.address)
                return self
            self.stop()
        raise ServerError(f"tritonserver did not start: {self._last_log_line()}")

    def _wait_ready(self, timeout: float) -> bool:
        client = TritonClient(f"http://127.0.0.1:{self.port}", timeout=2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            with contextlib.suppress(ServerError, ServerUnreachableError, OSError):
                if client.ready():
                    return True
            time.sleep(0.1)
        return False

    def _last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = [line for line in self.log_path.read_text().splitlines() if line.strip()]
            if lines:
                return lines[-1][:300]
        return f"see {self.log_path}"

    def _client(self) -> TritonClient:
        if self.client is None:
            raise ContainerError("tritonserver is not started", status=503)
        return self.client

    def load(self, name: str, model_dir: Path) -> None:
        client = self._client()
        link = self.repository / name
        if link.is_symlink() or link.exists():
            raise ContainerError(f"a model named {name} is already loaded", status=409)
        entry = model_subfolder(model_dir)
        link.symlink_to(entry.resolve(), target_is_directory=True)
        try:
            client.load(name, timeout=LOAD_TIMEOUT, config=renamed_config(entry, name))
        except TritonLoadError as exc:
            self._forget(name)
            raise ContainerError(exc.reason, status=load_status(exc.reason)) from None
        except ServerUnreachableError as exc:
            self._forget(name)
            raise ContainerError(exc.message, status=503) from None

    def _forget(self, name: str) -> None:
        with contextlib.suppress(ServerError, ServerUnreachableError):
            self._client().unload(name, wait=0.0)
        (self.repository / name).unlink(missing_ok=True)

    def unload(self, name: str) -> None:
        """Ask Triton to unload ``name`` and drop its link; a refusal is not an error here (a
        load that follows reports what is wrong), an unreachable Triton is."""
        try:
            self._client().unload(name, wait=0.0)
        except ServerUnreachableError as exc:
            raise ContainerError(exc.message, status=503) from None
        except ServerError:
            pass
        (self.repository / name).unlink(missing_ok=True)

    def invoke_head(self, name: str, content_type: str, accept: str) -> bytes:
        path = f"/v2/models/{urllib.parse.quote(name)}/infer"
        return post_head(*self.address, path, {"Content-Type": "application/json"})

    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> ContainerReply:
        if self._http is None:
            raise ContainerError("tritonserver is not started", status=503)
        status, data, reply_type = self._http.request(
            "POST",
            f"/v2/models/{urllib.parse.quote(name)}/infer",
            body,
            {"Content-Type": "application/json"},
        )
        return ContainerReply(status, data, reply_type or self.reply_type)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
