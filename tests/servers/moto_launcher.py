"""Run moto 5.2.x in server mode, with small SageMaker patches, for tests only.

Usage (in a process of its own; ``tests/servers/moto.py`` does this for pytest)::

    python tests/servers/moto_launcher.py --port P [--host 127.0.0.1] [--creating-describes N]

Serves moto's werkzeug app on HOST:P until SIGTERM or SIGINT, then exits 0.
This file lives in the test tree on purpose: the product must never import it.

DynamoDB requests are serialised (see ``serialise_dynamodb``).

Patches applied to ``moto.sagemaker`` (each one fills a gap in stock moto 5.2.5):

1. Instance types. ``FakeEndpointConfig.validate_instance_type`` checks a hard-coded
   list without ``ml.g5.*``, ``ml.g6.*``, ``ml.g6e.*``, ``ml.p4d.*``, ``ml.p5.*``,
   ``ml.inf2.*`` and the like. Any name matching ``INSTANCE_TYPE_RE``
   (``ml.<family>.<size>``, e.g. ``ml.g5.xlarge``, ``ml.p4d.24xlarge``) is now accepted;
   anything else still gets moto's own ValidationException.

2. ``UpdateEndpoint``. Stock moto has no backend method and no response handler
   (HTTP 500 NotImplementedError, which boto3 retries). Added
   ``SageMakerModelBackend.update_endpoint`` and the handler; it returns ``EndpointArn``.
   It raises ``ValidationException`` when the endpoint or the endpoint config does not
   exist, when the endpoint is still ``Creating``/``Updating`` ("Cannot update
   in-progress endpoint ...") and when it is ``Failed``; otherwise it points the endpoint
   at the new config (``EndpointConfigName``, ``ProductionVariants``) at once.

3. Status lifecycle. Stock moto endpoints are ``InService`` at once. After CreateEndpoint
   (resp. UpdateEndpoint) the endpoint is ``Creating`` (resp. ``Updating``) for the next
   N DescribeEndpoint HTTP calls, N = ``--creating-describes`` (default 2), and the
   describe after those N shows the final status. N = 0 means final at once.
   Only DescribeEndpoint counts; ListEndpoints shows the current status without
   advancing it. ``POST /moto-api/reset`` clears this state with everything else.

4. Failure injection (test-only rule). If, at the time of CreateEndpoint or
   UpdateEndpoint, the endpoint config being deployed has the tag
   ``mlops-test:fail-update`` with value ``true`` (case-insensitive; set with
   ``Tags=`` on CreateEndpointConfig or with AddTags on the config's ARN), the final
   status is ``Failed`` instead of ``InService``, and DescribeEndpoint then shows
   ``FailureReason``: the value of the config's ``mlops-test:failure-reason`` tag if it
   has one, else ``DEFAULT_FAILURE_REASON``. ``EndpointConfigName`` keeps naming the
   new config (there is no rollback). Until then the status is ``Creating``/``Updating``
   exactly as in 3.

5. Call log (test-only route). Every request is recorded as ``{"service", "operation",
   "method", "path", "mutating"}``: the operation comes from ``X-Amz-Target`` (JSON
   protocols), the ``/operation/<Op>`` path (smithy RPC v2 CBOR, e.g. CloudWatch), the
   ``Action=`` form field (query protocol), else ``<METHOD> <path>`` (REST, e.g. S3).
   An operation named Create*/Update*/Delete*/Put*/Register*/Deregister*/Add*/Tag*/Untag*,
   or a REST PUT/POST/DELETE, is mutating. ``GET /mlops-test/calls`` returns the log as a
   JSON list; ``POST /moto-api/reset`` also clears it. The operations below
   (Create/Update/DeleteInferenceComponent, RegisterScalableTarget, PutScalingPolicy,
   DeregisterScalableTarget, DeleteScalingPolicy) are mutating; Describe*/List* are not.

Patches 6-8 live in ``moto_components.py`` beside this file.

6. Inference-component endpoints. Stock moto answers CreateEndpointConfig with a variant
   without ``ModelName`` with HTTP 500 (KeyError) and drops ``ExecutionRoleArn``. Now a
   variant may omit ``ModelName`` when the config has ``ExecutionRoleArn`` (else
   ValidationException ``IC_ROLE_REQUIRED``); a variant with ``ModelName`` must still name
   an existing Model, and may not carry ``ManagedInstanceScaling`` (ValidationException
   ``MANAGED_SCALING_NEEDS_IC``, as SageMaker refuses it outside inference-component
   endpoints). DescribeEndpointConfig returns ``ExecutionRoleArn``; DescribeEndpoint's
   variants also carry ``ManagedInstanceScaling`` and ``RoutingConfig``. DeleteEndpoint of
   an endpoint that still has inference components is a ValidationException
   (``"Cannot delete endpoint ... inference components attached: ..."``), as SageMaker
   refuses it until they are deleted.

7. Inference components: Create/Describe/Update/Delete/ListInferenceComponents (stock moto
   has none: HTTP 500). Create validates like SageMaker, in this order, each a
   ValidationException (HTTP 400): name pattern/length 63 (AWS's "1 validation error
   detected: Value ... at 'inferenceComponentName' failed to satisfy constraint: ...");
   a duplicate name (``Cannot create already existing inference component "<arn>".``);
   ``Specification`` present (``Specifications`` lists are not modelled: refused);
   ``ComputeResourceRequirements`` with ``MinMemoryRequiredInMb`` >= 128, cores >= 0.25,
   accelerators >= 1 (constraint messages at ``specification.computeResourceRequirements.*``);
   ``Specification.ModelName`` or ``Container.Image``; ``Could not find model "<arn>".``;
   ``RuntimeConfig.CopyCount`` >= 1 on create; ``Could not find endpoint "<arn>".``;
   an endpoint whose variants host a Model (``Inference components are not supported on
   endpoint ...``); an endpoint not InService (``Cannot create inference component ...:
   endpoint "<arn>" is <Status>, not InService.``); an unknown variant (``Could not find
   variant ...``; VariantName may be omitted when the endpoint has one variant).
   Lifecycle as 3.: ``Creating`` (resp. ``Updating``) for the next N
   DescribeInferenceComponent calls, then final; List does not advance it. Failure
   injection as 4., from the component's own tags (``Tags=`` on create, or AddTags on its
   ARN): a create ends ``Failed`` with ``FailureReason``; an update ends back
   ``InService`` on its previous Specification and copy count with ``FailureReason`` set
   (SageMaker rolls a failed update back; it does not leave the component Failed).
   Describe returns InferenceComponentName/Arn, EndpointName/Arn, VariantName,
   Specification (as given), RuntimeConfig {DesiredCopyCount, CurrentCopyCount (0 until
   InService)}, InferenceComponentStatus, FailureReason (when set), CreationTime,
   LastModifiedTime; an unknown name is ``Could not find inference component "<arn>".``.
   Update needs ``Specification`` or ``RuntimeConfig`` and an InService component
   (``Cannot update in-progress inference component ...`` / ``Cannot update failed
   inference component ...``). Delete refuses a Creating/Updating component (``Cannot
   delete in-progress inference component ...``, a Deleting one too), else the component
   is ``Deleting`` for the next N DescribeInferenceComponent calls (listed as such, still
   holding its endpoint), then gone with its Application Auto Scaling target and policies.
   List filters: EndpointNameEquals, VariantNameEquals, StatusEquals, NameContains,
   Creation/LastModifiedTime Before/After; SortBy Name|CreationTime|Status (default
   CreationTime), SortOrder (default Descending), MaxResults (default 10) + NextToken.

8. Application Auto Scaling for inference components. Stock moto rejects the dimension
   ``sagemaker:inference-component:DesiredCopyCount``; it is now accepted (resource id
   ``inference-component/<name>``). RegisterScalableTarget for it needs the component
   to exist (ValidationException ``Inference component "<name>" does not exist.``) and,
   for a new target, MinCapacity and MaxCapacity with Min <= Max. PutScalingPolicy for
   it needs a registered target (ObjectNotFoundException ``No scalable target registered
   for service namespace: ..., resource ID: ..., scalable dimension: ...``) and a
   TargetTrackingScaling PredefinedMetricType of ``SageMakerInferenceComponent*``
   (ValidationException otherwise). For every namespace: DeregisterScalableTarget and
   DeleteScalingPolicy of something missing answer ObjectNotFoundException (not
   ValidationException), and deregistering a target deletes its policies, as AWS does.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

# Python puts this script's folder first on sys.path, and that folder holds
# ``moto.py`` (the pytest helper), which would shadow the real ``moto`` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def _components_module() -> Any:
    """``moto_components.py`` beside this script, loaded by path (this folder is off sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("moto_components", _HERE / "moto_components.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["moto_components"] = module
    spec.loader.exec_module(module)
    return module


_COMPONENTS = _components_module()
FAIL_TAG_KEY: str = _COMPONENTS.FAIL_TAG_KEY
FAIL_REASON_TAG_KEY: str = _COMPONENTS.FAIL_REASON_TAG_KEY

DEFAULT_FAILURE_REASON = (
    "mlops-test: injected failure (endpoint config tagged mlops-test:fail-update=true)"
)
INSTANCE_TYPE_RE = re.compile(
    r"^ml\.[a-z][a-z0-9-]*\.(?:nano|micro|small|medium|large|[0-9]*xlarge)$"
)
LIFECYCLE_ATTR = "_mlops_test_lifecycle"


@dataclass
class _Lifecycle:
    """Pending status change of one endpoint, kept on the (per-region) backend."""

    describes_left: int
    final_status: str
    failure_reason: str | None


def _lifecycles(backend: Any) -> dict[str, _Lifecycle]:
    # Stored on the backend object, so moto's reset (which rebuilds backends) clears it.
    table: dict[str, _Lifecycle] = backend.__dict__.setdefault(LIFECYCLE_ATTR, {})
    return table


def apply_patches(creating_describes: int) -> None:
    """Monkeypatch moto.sagemaker in this process (see the module docstring)."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sagemaker import models, responses
    from moto.sagemaker.exceptions import ValidationError

    # 1. moto validates endpoint-config instance types against a fixed list without
    #    current GPU/Inferentia families; accept any well-formed ml.<family>.<size>.
    original_validate = models.FakeEndpointConfig.validate_instance_type

    def validate_instance_type(self: Any, instance_type: str) -> None:
        if not INSTANCE_TYPE_RE.match(instance_type):
            original_validate(self, instance_type)

    models.FakeEndpointConfig.validate_instance_type = validate_instance_type  # type: ignore[method-assign]

    # 3./4. Start the Creating/Updating phase and decide its outcome from the config's tags.
    def begin_transition(backend: Any, endpoint: Any, phase: str) -> None:
        config = backend.endpoint_configs[endpoint.endpoint_config_name]
        tags = {t.get("Key"): t.get("Value") for t in (config.tags or [])}
        failing = str(tags.get(FAIL_TAG_KEY, "")).lower() == "true"
        state = _Lifecycle(
            describes_left=creating_describes,
            final_status="Failed" if failing else "InService",
            failure_reason=(tags.get(FAIL_REASON_TAG_KEY) or DEFAULT_FAILURE_REASON)
            if failing
            else None,
        )
        endpoint.failure_reason = None
        endpoint.endpoint_status = phase
        _COMPONENTS._variants_by_endpoint(backend)[endpoint.endpoint_name] = list(
            config.production_variants
        )
        _lifecycles(backend)[endpoint.endpoint_name] = state
        advance(backend, endpoint.endpoint_name, count=False)

    def advance(backend: Any, endpoint_name: str, *, count: bool) -> None:
        state = _lifecycles(backend).get(endpoint_name)
        endpoint = backend.endpoints.get(endpoint_name)
        if state is None or endpoint is None:
            return
        if state.describes_left > 0:
            if count:
                state.describes_left -= 1
            return
        endpoint.endpoint_status = state.final_status
        endpoint.failure_reason = state.failure_reason
        del _lifecycles(backend)[endpoint_name]

    # 3. moto creates endpoints InService at once; start them in Creating.
    original_create_endpoint = models.SageMakerModelBackend.create_endpoint

    def create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
        endpoint = original_create_endpoint(self, endpoint_name, endpoint_config_name, tags)
        begin_transition(self, endpoint, "Creating")
        return endpoint

    models.SageMakerModelBackend.create_endpoint = create_endpoint  # type: ignore[method-assign]

    # 3. Only DescribeEndpoint over HTTP moves the lifecycle on (counted before answering).
    original_describe_handler = responses.SageMakerResponse.describe_endpoint

    def describe_endpoint_handler(self: Any) -> Any:
        advance(self.sagemaker_backend, self._get_param("EndpointName"), count=True)
        return original_describe_handler(self)

    responses.SageMakerResponse.describe_endpoint = describe_endpoint_handler  # type: ignore[method-assign]

    # 2. moto has no UpdateEndpoint at all: backend method ...
    def update_endpoint(
        self: Any,
        endpoint_name: str,
        endpoint_config_name: str,
        **_ignored: Any,  # RetainAllVariantProperties, DeploymentConfig, ...: accepted, unused
    ) -> str:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = models.FakeEndpoint.arn_formatter(
                endpoint_name, self.account_id, self.region_name
            )
            raise ValidationError(message=f'Could not find endpoint "{arn}".')
        config = self.endpoint_configs.get(endpoint_config_name)
        if config is None:
            arn = models.FakeEndpointConfig.arn_formatter(
                endpoint_config_name, self.account_id, self.region_name
            )
            raise ValidationError(message=f'Could not find endpoint configuration "{arn}".')
        if endpoint.endpoint_status in ("Creating", "Updating", "Deleting", "SystemUpdating"):
            raise ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
        if endpoint.endpoint_status == "Failed":
            raise ValidationError(message=f'Cannot update failed endpoint "{endpoint.arn}".')
        endpoint.endpoint_config_name = endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(
            config.production_variants
        )
        endpoint.data_capture_config = config.data_capture_config
        endpoint.last_modified_time = utcnow()
        begin_transition(self, endpoint, "Updating")
        endpoint_arn: str = endpoint.arn
        return endpoint_arn

    models.SageMakerModelBackend.update_endpoint = update_endpoint  # type: ignore[attr-defined]

    # 2. ... and its response handler (moto dispatches on method names found on the class).
    def update_endpoint_handler(self: Any) -> Any:
        arn = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
        )
        return ActionResult({"EndpointArn": arn})

    responses.SageMakerResponse.update_endpoint = update_endpoint_handler  # type: ignore[attr-defined]

    _COMPONENTS.patch_endpoint_configs()
    _COMPONENTS.patch_inference_components(creating_describes)
    _COMPONENTS.patch_application_autoscaling()


MUTATING_RE = re.compile(r"^(Create|Update|Delete|Put|Register|Deregister|Add|Tag|Untag)")
CALLS_PATH = "/mlops-test/calls"


class CallLog:
    """WSGI middleware that records every AWS request (see 5. in the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        import io
        import json
        from urllib.parse import parse_qs

        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == CALLS_PATH:
            with self.lock:
                body = json.dumps(self.calls).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path.startswith("/moto-api/reset"):
            with self.lock:
                self.calls.clear()
            return self.app(environ, start_response)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service, operation, rest = "", "", False
        if target:
            service, _, operation = target.rpartition(".")
        elif "/operation/" in path:
            parts = path.strip("/").split("/")
            service, operation = parts[1] if len(parts) > 1 else "", parts[-1]
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            content_type = environ.get("CONTENT_TYPE", "")
            if length and content_type.startswith("application/x-www-form-urlencoded"):
                raw = environ["wsgi.input"].read(length)
                environ["wsgi.input"] = io.BytesIO(raw)
                operation = parse_qs(raw.decode("utf-8", "replace")).get("Action", [""])[0]
            if not operation:
                rest = True
                operation = f"{method} {path}"
        mutating = (
            method in ("PUT", "POST", "DELETE") if rest else bool(MUTATING_RE.match(operation))
        )
        entry = {
            "service": service,
            "operation": operation,
            "method": method,
            "path": path,
            "mutating": mutating,
        }
        with self.lock:
            self.calls.append(entry)
        return self.app(environ, start_response)


def serve(host: str, port: int) -> None:
    """Serve moto's app on host:port until SIGTERM/SIGINT."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    # Same setup as moto.server.ThreadedMotoServer, but binding happens here in the
    # main thread, so "address in use" makes this process exit non-zero at once.
    server = make_server(
        host,
        port,
        CallLog(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="moto-server", daemon=True
    )
    thread.start()
    print(f"moto_launcher: serving on http://{host}:{server.server_port}", flush=True)
    while not stop.wait(0.2):
        if not thread.is_alive():
            raise SystemExit("moto_launcher: server thread died")
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    print("moto_launcher: stopped", flush=True)


def serialise_dynamodb() -> None:
    """Run DynamoDB requests one at a time.

    moto's threaded server runs transactions without a lock, and a cancelled transaction
    restores a copy of the table taken before it started, so concurrent transactions can undo
    each other's writes; real DynamoDB never does. Serialising requests restores the atomicity
    the registry's compare-and-swap tests rely on.
    """
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--creating-describes", type=int, default=2, metavar="N")
    args = parser.parse_args(argv)
    if args.creating_describes < 0:
        parser.error("--creating-describes must be >= 0")
    apply_patches(args.creating_describes)
    serialise_dynamodb()
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
