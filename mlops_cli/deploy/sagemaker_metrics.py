"""What CloudWatch says about a SageMaker multi-model endpoint, for ``mlops status``.

One ``GetMetricData`` call over the last hour reads the endpoint's model cache metrics
(namespace ``/aws/sagemaker/Endpoints``: ``ModelCacheHit``, the share of invocations whose model
was loaded already; ``ModelLoadingWaitTime`` and ``ModelLoadingTime``, in microseconds) and, per
TargetModel, ``Invocations``, ``Invocation4XXErrors`` and ``Invocation5XXErrors`` (namespace
``AWS/SageMaker``) where the endpoint reports them with a ``TargetModel`` dimension. A metric
with no datapoint is absent (None), never zero: status shows what the endpoint reports and
nothing else.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_cli import aws
from mlops_cli.deploy.sagemaker_endpoint import EndpointSpec

WINDOW_S = 3600
ENDPOINT_NAMESPACE = "/aws/sagemaker/Endpoints"
INVOCATION_NAMESPACE = "AWS/SageMaker"
_CACHE_METRICS = {
    "model_cache_hit": ("ModelCacheHit", "Average", 1.0),
    "model_loading_wait_ms": ("ModelLoadingWaitTime", "Average", 0.001),
    "model_loading_ms": ("ModelLoadingTime", "Average", 0.001),
}
_MODEL_METRICS = {
    "invocations": "Invocations",
    "errors_4xx": "Invocation4XXErrors",
    "errors_5xx": "Invocation5XXErrors",
}


@dataclass
class EndpointMetrics:
    """The endpoint's cache metrics and each TargetModel's counts (None: not reported)."""

    endpoint: dict[str, float | None] = field(default_factory=dict)
    models: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def of(self, target: str) -> dict[str, Any]:
        """One TargetModel's counts, with the endpoint's cache metrics beside them."""
        return {**self.models.get(target, {}), "endpoint": dict(self.endpoint)}


def _query_id(prefix: str, index: int) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", f"{prefix}_{index}").lower()


Keys = dict[str, tuple[str, str | None]]  # query id -> (metric key, TargetModel or None)


def _queries(spec: EndpointSpec, targets: Sequence[str]) -> tuple[Keys, list[dict[str, Any]]]:
    """The GetMetricData queries, and what each query id stands for."""
    base = [
        {"Name": "EndpointName", "Value": spec.name},
        {"Name": "VariantName", "Value": spec.variant},
    ]
    found: Keys = {}
    queries: list[dict[str, Any]] = []
    for index, (key, (metric, stat, _)) in enumerate(_CACHE_METRICS.items()):
        query_id = _query_id("c", index)
        found[query_id] = (key, None)
        queries.append(_query(query_id, ENDPOINT_NAMESPACE, metric, base, stat))
    for number, target in enumerate(targets):
        dims = [*base, {"Name": "TargetModel", "Value": target}]
        for index, (key, metric) in enumerate(_MODEL_METRICS.items()):
            query_id = _query_id(f"m{number}", index)
            found[query_id] = (key, target)
            queries.append(_query(query_id, INVOCATION_NAMESPACE, metric, dims, "Sum"))
    return found, queries


def _query(
    query_id: str, namespace: str, metric: str, dims: list[dict[str, str]], stat: str
) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dims},
            "Period": WINDOW_S,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def read_metrics(spec: EndpointSpec, *, region: str, targets: Sequence[str]) -> EndpointMetrics:
    """The endpoint's metrics of the last hour (an MlopsError when CloudWatch refuses)."""
    ids, queries = _queries(spec, targets)
    now = datetime.datetime.now(datetime.UTC)
    client = aws.client("cloudwatch", use="control", region=region)
    values: dict[str, float] = {}
    try:
        for start in range(0, len(queries), 500):  # GetMetricData takes 500 queries at most
            answer = client.get_metric_data(
                MetricDataQueries=queries[start : start + 500],
                StartTime=now - datetime.timedelta(seconds=WINDOW_S),
                # a minute ahead: the request carries whole seconds, and a datapoint of this
                # very second must not fall after the end
                EndTime=now + datetime.timedelta(seconds=60),
            )
            values.update(_values(answer.get("MetricDataResults", [])))
    except Exception as exc:
        raise aws.translate(exc, what=f"endpoint {spec.name}: GetMetricData") from None
    return _arrange(ids, values)


def _values(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    found = {}
    for result in results:
        points = result.get("Values") or []
        if points:
            found[str(result["Id"])] = float(sum(points) / len(points))
    return found


def _arrange(ids: Keys, values: Mapping[str, float]) -> EndpointMetrics:
    metrics = EndpointMetrics()
    for query_id, (key, target) in ids.items():
        value = values.get(query_id)
        if target is None:
            scale = _CACHE_METRICS[key][2]
            metrics.endpoint[key] = None if value is None else round(value * scale, 3)
        else:
            metrics.models.setdefault(target, {})[key] = value
    return metrics


__all__ = ["EndpointMetrics", "read_metrics"]
