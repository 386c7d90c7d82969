"""Triton as the second container of mme-local (what SageMaker GPU multi-model endpoints run).

A model folder extracted from a ``model.tar.gz`` holds the package (``mlops.yaml``, the python
backend's ``model.py``, weights): it is loaded through Triton's repository API with the config
built from its ``mlops.yaml`` and its files passed inline, so the server's own repository folder
is never written. Loads and unloads go through the one Triton client (``mlops_cli.triton``);
requests are KServe v2 JSON, as SageMaker's Triton container takes them, passed through as they
are on a keep-alive connection.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from mlops_cli.errors import ServerError
from mlops_cli.mme.containers import ContainerError, ContainerReply, HttpPool, post_head
from mlops_cli.triton.client import ServerUnreachableError, TritonClient, TritonLoadError

LOAD_TIMEOUT = 120.0


class TritonContainer:
    kind = "triton"
    reply_type = "application/json"

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.url)
        self.address = (parsed.hostname or "127.0.0.1", parsed.port or 8000)
        self.client = TritonClient(self.url, timeout=LOAD_TIMEOUT)
        self._http = HttpPool(*self.address)  # invocations: bodies passed through as they are

    @classmethod
    def connect(cls, url: str | None, *, workdir: Path) -> TritonContainer:
        if not url:
            raise ContainerError(
                "the triton backend needs a running Triton: start it with `mlops local up`, "
                "then restart mme-local",
                status=503,
            )
        container = cls(url)
        if not container.client.ready():
            raise ContainerError(f"Triton at {url} is not ready", status=503)
        return container

    def load(self, name: str, model_dir: Path) -> None:
        from google.protobuf import json_format

        from mlops_cli.render.triton import model_config
        from mlops_cli.spec.modelspec import load_spec

        spec = load_spec(model_dir)
        config = model_config(spec, model_name=name, device="cpu")
        if spec.entrypoint != "model.py":
            config.default_model_filename = spec.entrypoint
        files = {
            f"1/{path.relative_to(model_dir).as_posix()}": path.read_bytes()
            for path in sorted(model_dir.rglob("*"))
            if path.is_file()
        }
        try:
            self.client.load(
                name,
                timeout=LOAD_TIMEOUT,
                config=json_format.MessageToJson(config),
                files=files,
            )
        except TritonLoadError as exc:
            raise ContainerError(exc.reason, status=exc.status or 500) from None
        except ServerUnreachableError as exc:
            raise ContainerError(exc.message, status=503) from None

    def unload(self, name: str) -> None:
        """Ask Triton to unload ``name``; a refusal is not an error here (a load that follows
        reports what is wrong), an unreachable Triton is."""
        try:
            self.client.unload(name, wait=0.0)
        except ServerUnreachableError as exc:
            raise ContainerError(exc.message, status=503) from None
        except ServerError:
            return

    def invoke_head(self, name: str, content_type: str, accept: str) -> bytes:
        path = f"/v2/models/{urllib.parse.quote(name)}/infer"
        return post_head(*self.address, path, {"Content-Type": "application/json"})

    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> ContainerReply:
        status, data, reply_type = self._http.request(
            "POST",
            f"/v2/models/{urllib.parse.quote(name)}/infer",
            body,
            {"Content-Type": "application/json"},
        )
        return ContainerReply(status, data, reply_type or self.reply_type)

    def stop(self) -> None:
        """The workspace's Triton is not ours to stop."""
