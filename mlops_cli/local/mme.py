"""mme-local under the workspace: the :class:`~mlops_cli.local.manager.ManagedServer` that runs
the mme-local server program (:mod:`mlops_cli.mme`, ``mlops local up --mme``), and the one client
of its control routes (:func:`http_json`).

The server binds 127.0.0.1 on a port it picks itself and names it in a ready file once it serves,
so no other process can take the port between the choice and the bind; the containers it starts
(multi-model-server, tritonserver) share its process group and stop with it. It refuses to start
without the ``mme`` extra, in one line that names it. Its state lives in
``<workspace>/local/mme.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mlops_cli.errors import ExtraNotInstalledError, NotFoundError, ServerError
from mlops_cli.local.manager import Launch, LocalModel, LocalServerStatus, ManagedServer, UpResult
from mlops_cli.local.processes import ProcessInfo
from mlops_cli.local.state import ServerState
from mlops_cli.progress import SILENT, Reporter
from mlops_cli.workspace import Workspace

STATE_FILE = "mme.json"
LOG_FILE = "mme-local.log"
READY_FILE = "mme.ready"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(url: str, *, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
    """A JSON request to mme-local's control routes; raises ServerError when it cannot be
    reached or answers with an error (its ``Message``)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            text = exc.read().decode("utf-8", errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            text = json.loads(text).get("Message", text)
        raise ServerError(f"mme-local answered HTTP {exc.code} to {method} {url}: {text}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServerError(
            f"mme-local at {url} cannot be reached ({exc})", hint="start it: mlops local up --mme"
        ) from None


class MMEState(ServerState):
    """The recorded state of mme-local: its one HTTP port and its work folder."""

    @property
    def port(self) -> int:
        return self.ports["http"]

    @property
    def url(self) -> str:
        return self.http_url

    @property
    def workdir(self) -> str:
        return self.extra["workdir"]


class LocalMME(ManagedServer[MMEState]):
    """Start, stop and observe the workspace's mme-local server."""

    label = "mme-local"
    state_file = STATE_FILE
    log_file = LOG_FILE
    lock_file = ".mme.lock"
    state_type = MMEState

    def __init__(
        self,
        workspace: Workspace,
        *,
        startup_timeout: float = 60.0,
        stop_timeout: float = 20.0,
        reporter: Reporter = SILENT,
    ) -> None:
        super().__init__(
            workspace,
            startup_timeout=startup_timeout,
            stop_timeout=stop_timeout,
            reporter=reporter,
        )
        self.workdir = self.dir / "mme"
        self.ready_path = self.dir / READY_FILE

    def up(
        self, *, triton_url: str | None = None, environ: Mapping[str, str] | None = None
    ) -> UpResult:
        """Start the server unless it runs; return once it serves. ``environ``: the server's
        environment (default: this process's). ExtraNotInstalledError, before anything starts,
        without the ``mme`` extra (multi-model-server and the SageMaker inference toolkit).

        ``triton_url`` is not used: mme-local runs a Triton of its own, as SageMaker runs the
        Triton image (kept so that callers that pass the workspace's Triton still work)."""
        from mlops_cli.mme.containers import mme_extra_missing

        missing = mme_extra_missing()
        if missing is not None:
            raise ExtraNotInstalledError(feature=f"mme-local ({missing} is missing)", extra="mme")
        return self._start(lambda: self._launch(environ))

    def url(self) -> str:
        """The address of the running server; NotFoundError when none runs."""
        state = self.running_state()
        if state is None or "http" not in state.ports:
            raise NotFoundError(
                "mme-local is not running in this workspace", hint="start it: mlops local up --mme"
            )
        return state.url

    # -- the specialisation ------------------------------------------------------------------

    def _launch(self, environ: Mapping[str, str] | None) -> Launch:
        self.ready_path.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "mlops_cli.mme",
            "--workdir",
            str(self.workdir),
            "--ready-file",
            str(self.ready_path),
        ]
        env = dict(os.environ if environ is None else environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return Launch(argv=argv, env=env, extra={"workdir": str(self.workdir)})

    def _healthy(self, state: MMEState) -> MMEState | None:
        # the server writes the ready file (atomically) once it serves, naming its port
        try:
            port = int(json.loads(self.ready_path.read_text())["port"])
        except FileNotFoundError:
            return None
        self.ready_path.unlink(missing_ok=True)
        return replace(state, ports={"http": port})

    def _inspect(
        self, state: MMEState, observed: LocalServerStatus, members: list[ProcessInfo]
    ) -> LocalServerStatus:
        try:
            document = http_json(state.url + "/mme/status", timeout=5)
        except ServerError as exc:
            return replace(observed, state="unresponsive", note=exc.message)
        if not isinstance(document, dict):
            return replace(observed, state="unresponsive", note="mme-local answered no status")
        return replace(
            observed,
            models=_loaded_models(document),
            reported=document,
        )


def _loaded_models(document: Mapping[str, Any]) -> list[LocalModel]:
    """The models loaded now, from mme-local's status document: ``<endpoint>/<target>`` of the
    multi-model endpoints, ``<endpoint>/<component>`` of the inference components it served."""
    endpoints = document.get("endpoints")
    components = document.get("components")
    models = [
        LocalModel(name=f"{name}/{loaded['target']}", version="", state="LOADED")
        for name, endpoint in (endpoints.items() if isinstance(endpoints, dict) else ())
        if isinstance(endpoint, dict)
        for loaded in endpoint.get("loaded", [])
        if isinstance(loaded, dict) and "target" in loaded
    ]
    models += [
        LocalModel(
            name=f"{component.get('endpoint')}/{name}",
            version="",
            state=str(component.get("state", "")).upper().replace(" ", "_"),
        )
        for name, component in (components.items() if isinstance(components, dict) else ())
        if isinstance(component, dict)
    ]
    return models


__all__ = ["LocalMME", "MMEState", "http_json"]
