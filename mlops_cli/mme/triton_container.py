"""Triton as the second container of mme-local (what SageMaker GPU multi-model endpoints run).

A model folder extracted from a ``model.tar.gz`` holds the package (``mlops.yaml``, the python
backend's ``model.py``, weights): it is loaded through Triton's repository API with the config
built from its ``mlops.yaml`` and its files passed inline, so the server's own repository folder
is never written. Requests are KServe v2 JSON, as SageMaker's Triton container takes them.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path

from mlops_cli.mme.containers import ContainerError, ContainerReply, HttpPool, post_head


class TritonContainer:
    kind = "triton"
    reply_type = "application/json"

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.url)
        self.address = (parsed.hostname or "127.0.0.1", parsed.port or 8000)
        self._http = HttpPool(*self.address)

    @classmethod
    def connect(cls, url: str | None, *, workdir: Path) -> TritonContainer:
        if not url:
            raise ContainerError(
                "the triton backend needs a running Triton: start it with `mlops local up`, "
                "then restart mme-local",
                status=503,
            )
        container = cls(url)
        status, _, _ = container._http.request("GET", "/v2/health/ready")
        if status != 200:
            raise ContainerError(f"Triton at {url} is not ready (HTTP {status})", status=503)
        return container

    def load(self, name: str, model_dir: Path) -> None:
        from google.protobuf import json_format

        from mlops_cli.modelspec import load_spec
        from mlops_cli.render.triton import model_config

        spec = load_spec(model_dir)
        config = model_config(spec, model_name=name, device="cpu")
        if spec.entrypoint != "model.py":
            config.default_model_filename = spec.entrypoint
        parameters = {"config": json_format.MessageToJson(config)}
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                relative = path.relative_to(model_dir).as_posix()
                parameters[f"file:1/{relative}"] = base64.b64encode(path.read_bytes()).decode()
        status, data, _ = self._http.request(
            "POST",
            f"/v2/repository/models/{urllib.parse.quote(name)}/load",
            json.dumps({"parameters": parameters}).encode(),
            {"Content-Type": "application/json"},
        )
        if status != 200:
            raise ContainerError(_error_text(data) or f"HTTP {status}", status=status)

    def unload(self, name: str) -> None:
        self._http.request(
            "POST", f"/v2/repository/models/{urllib.parse.quote(name)}/unload", b"{}"
        )

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


def _error_text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text
