"""Load-test targets, chosen by protocol name: ``http`` (Triton KServe v2 over HTTP), ``grpc``
(Triton over gRPC), ``sagemaker`` (SageMaker runtime, real or a loopback stand-in: a
multi-model endpoint's ``TargetModel``), ``sagemaker-ic`` (the same, an endpoint's inference
components, which stream), ``http-json`` (any HTTP JSON endpoint) and ``router`` (the tenant router, ``mlops router serve``: requests sent
as tenants drawn per request, ``targets.router``). A spec with ``routing`` follows registered model
names to wherever they are served (``targets.routed``)."""

from __future__ import annotations

from mlops_cli.errors import NotSupportedError, UsageError
from mlops_cli.perf.targets.base import (
    PROTOCOLS,
    Completion,
    ModelRouting,
    Target,
    TargetSpec,
    TenantTraffic,
)

__all__ = [
    "PROTOCOLS",
    "Completion",
    "ModelRouting",
    "Target",
    "TargetSpec",
    "TenantTraffic",
    "make_target",
]


def make_target(spec: TargetSpec) -> Target:
    """The target for ``spec.protocol``; unknown protocols list the valid ones."""
    target: Target
    if spec.routing is not None and spec.protocol in ("http", "grpc"):
        from mlops_cli.perf.targets.routed import RoutedTarget

        target = RoutedTarget(spec, open_inner=make_target)
    elif spec.protocol == "http":
        from mlops_cli.perf.targets.http import TritonHttpTarget

        target = TritonHttpTarget(spec)
    elif spec.protocol == "http-json":
        from mlops_cli.perf.targets.http import HttpJsonTarget

        target = HttpJsonTarget(spec)
    elif spec.protocol == "grpc":
        from mlops_cli.perf.targets.grpc import TritonGrpcTarget

        target = TritonGrpcTarget(spec)
    elif spec.protocol == "sagemaker":
        from mlops_cli.perf.targets.sagemaker import SageMakerTarget

        target = SageMakerTarget(spec)
    elif spec.protocol == "sagemaker-ic":
        from mlops_cli.perf.targets.sagemaker import InferenceComponentTarget

        target = InferenceComponentTarget(spec)
    elif spec.protocol == "router":
        if spec.tenants is None:
            raise UsageError(
                "the router target sends every request as a tenant: none was given",
                hint="add --tenants t1,t2 (or @FILE), or --api-keys @FILE",
            )
        from mlops_cli.perf.targets.router import RouterTarget

        target = RouterTarget(spec)
    else:
        raise UsageError(
            f"unknown protocol '{spec.protocol}'", hint=f"valid protocols: {', '.join(PROTOCOLS)}"
        )
    if spec.stream and not target.supports_stream:
        raise NotSupportedError(
            f"the {spec.protocol} target does not stream "
            "(botocore's InvokeEndpointWithResponseStream takes no TargetModel)",
            hint="drop --stream, stream through Triton (--protocol http or grpc), or deploy "
            "to inference components (--inference-component NAME)",
        )
    return target
