"""Which SageMaker serving image runs which runtime on which device: the one compatibility table,
and the checks a multi-model endpoint deploy makes with it before anything is created.

================  ======  =====================================================================
runtime           device  image (one per region, :data:`IMAGES`)
================  ======  =====================================================================
triton-python     gpu     ``sagemaker-tritonserver:24.09-py3`` (NVIDIA Triton, GPU build)
triton-python     cpu     ``sagemaker-tritonserver:24.09-py3-cpu`` (NVIDIA Triton, CPU build)
sagemaker-mms     gpu     ``mxnet-inference:1.9.0-gpu-py38`` (multi-model-server + toolkit)
sagemaker-mms     cpu     ``mxnet-inference:1.9.0-cpu-py38``
================  ======  =====================================================================

Triton runtimes run only in a Triton image (the framework images' multi-model-server cannot run
a ``TritonPythonModel``); ``sagemaker-mms`` runs only in a multi-model-server image. A GPU image
needs a GPU instance and a CPU image a CPU one (the tags say which: Triton's CPU build ends in
``-cpu``, the framework images name ``-cpu-``/``-gpu-``). An ``image_uri`` the endpoint file names
is read the same way; one that is neither (a custom image) is taken as it is.

:func:`check_pairing` refuses, with the reason, a pair the endpoint could never serve: a runtime
the image cannot run, a GPU model on a CPU instance type, an image built for the other device, a
model larger than the instance's memory. Nothing here calls AWS.
"""

from __future__ import annotations

from mlops_cli.errors import UsageError
from mlops_cli.render.image_kind import Container, Device, ImageKind, classify_image

DLC_ACCOUNT = "763104351884"  # AWS Deep Learning Containers, most regions
# Regions whose Deep Learning Containers live in an account of their own.
REGION_ACCOUNTS = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-3": "364406365360",
    "ap-southeast-3": "907027046896",
    "ca-west-1": "204538143572",
    "eu-south-1": "692866216735",
    "il-central-1": "780543022126",
    "me-south-1": "217643126080",
}
KNOWN_REGIONS = frozenset(
    [
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "eu-central-1",
        "eu-north-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "sa-east-1",
        *REGION_ACCOUNTS,
    ]
)


# (container, device) -> repository:tag of the table above
IMAGES: dict[tuple[Container, Device], str] = {
    ("triton", "gpu"): "sagemaker-tritonserver:24.09-py3",
    ("triton", "cpu"): "sagemaker-tritonserver:24.09-py3-cpu",
    ("mms", "gpu"): "mxnet-inference:1.9.0-gpu-py38",
    ("mms", "cpu"): "mxnet-inference:1.9.0-cpu-py38",
}
RUNTIME_CONTAINER: dict[str, Container] = {"triton-python": "triton", "sagemaker-mms": "mms"}
_CONTAINER_NAME = {"triton": "NVIDIA Triton", "mms": "multi-model-server"}

# Host memory (GiB) per vCPU of each hosting family, and vCPUs per size: the memory of a type.
_GIB_PER_VCPU = {
    "t2": 4.0, "t3": 2.0, "m4": 4.0, "m5": 4.0, "m5d": 4.0, "m6i": 4.0, "m6id": 4.0, "m7i": 4.0,
    "c4": 1.875, "c5": 2.0, "c5d": 2.0, "c6i": 2.0, "c6id": 2.0, "c7i": 2.0,
    "r5": 8.0, "r5d": 8.0, "r6i": 8.0, "r7i": 8.0,
    "g4dn": 4.0, "g5": 4.0, "g6": 4.0, "g6e": 8.0,
    "p3": 7.625, "p4d": 12.0, "p4de": 12.0, "p5": 10.667,
}  # fmt: skip
_VCPUS = {
    "medium": 2, "large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32,
    "9xlarge": 36, "12xlarge": 48, "16xlarge": 64, "18xlarge": 72, "24xlarge": 96,
    "32xlarge": 128, "48xlarge": 192,
}  # fmt: skip
_GPU_FAMILIES = frozenset(["g4dn", "g5", "g6", "g6e", "p2", "p3", "p4d", "p4de", "p5"])


class IncompatibleImageError(UsageError):
    """The runtime, the device, the image and the instance type cannot serve the model."""


def container_of(runtime: str) -> Container:
    """The model server a runtime needs."""
    try:
        return RUNTIME_CONTAINER[runtime]
    except KeyError:
        raise IncompatibleImageError(
            f"no SageMaker multi-model container runs the {runtime!r} runtime",
            hint=f"runtimes with a container: {', '.join(sorted(RUNTIME_CONTAINER))}",
        ) from None


def is_gpu_instance(instance_type: str) -> bool:
    return instance_type.split(".")[1] in _GPU_FAMILIES


def instance_memory_mb(instance_type: str) -> float | None:
    """The host memory of ``ml.<family>.<size>``; None for a type the table does not know."""
    _, family, size = [*instance_type.split("."), "", ""][:3]
    per_vcpu, vcpus = _GIB_PER_VCPU.get(family), _VCPUS.get(size)
    if per_vcpu is None or vcpus is None:
        return None
    return per_vcpu * vcpus * 1024


def default_image(region: str, *, container: Container, device: Device) -> str:
    """The table's image for ``container`` on ``device`` in ``region``."""
    if region not in KNOWN_REGIONS:
        return _sdk_image(region, container=container, device=device)
    account = REGION_ACCOUNTS.get(region, DLC_ACCOUNT)
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{IMAGES[(container, device)]}"


def _sdk_image(region: str, *, container: Container, device: Device) -> str:
    """The image of a region the table does not know, from the optional ``sagemaker`` SDK."""
    try:
        from sagemaker import image_uris  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise UsageError(
            f"no default serving image known for region {region}",
            hint="set image_uri in the endpoint file, or pip install 'mlops-cli[sagemaker]'",
        ) from None
    uri: str = image_uris.retrieve(
        "sagemaker-tritonserver" if container == "triton" else "mxnet",
        region=region,
        version="24.09" if container == "triton" else "1.9.0",
        instance_type="ml.g5.xlarge" if device == "gpu" else "ml.m5.xlarge",
        image_scope="inference",
    )
    return uri


def check_pairing(
    *,
    model: str,
    runtime: str,
    device: Device,
    image: str,
    instance_type: str,
    memory_mb: float,
) -> None:
    """Refuse (:class:`IncompatibleImageError`, with the reason) a model the endpoint could not
    serve: see the module docstring."""
    needed = container_of(runtime)
    kind = classify_image(image)
    if kind.container is not None and kind.container != needed:
        raise IncompatibleImageError(
            f"{model} is a {runtime} model, which runs in {_CONTAINER_NAME[needed]}, and the "
            f"endpoint's image {image} runs {_CONTAINER_NAME[kind.container]}",
            hint="deploy it to an endpoint of its own, or drop image_uri from the endpoint file",
        )
    gpu_instance = is_gpu_instance(instance_type)
    if device == "gpu" and not gpu_instance:
        raise IncompatibleImageError(
            f"{model} asks for a GPU and {instance_type} has none",
            hint="use a GPU instance type (ml.g5.xlarge, ...), or serve it on CPU: --device cpu",
        )
    if kind.device is not None and kind.device != ("gpu" if gpu_instance else "cpu"):
        other = "CPU" if kind.device == "gpu" else "GPU"
        raise IncompatibleImageError(
            f"image {image} is built for {kind.device.upper()} instances and {instance_type} is "
            f"a {other} instance",
            hint="drop image_uri (the image follows the instance type), or name the "
            f"{other} build of the image",
        )
    memory = instance_memory_mb(instance_type)
    if memory is not None and memory_mb > memory:
        raise IncompatibleImageError(
            f"{model} needs {memory_mb:g} MB and {instance_type} has {memory:g} MB of memory",
            hint="use a larger instance type",
        )


def choose_image(
    *, region: str, runtime: str, device: Device, image_uri: str | None, instance_type: str
) -> str:
    """The endpoint's image: the endpoint file's, else the table's for the runtime and the
    instance type's device."""
    if image_uri:
        return image_uri
    hardware: Device = "gpu" if is_gpu_instance(instance_type) else "cpu"
    return default_image(region, container=container_of(runtime), device=hardware)


__all__ = [
    "IMAGES",
    "ImageKind",
    "IncompatibleImageError",
    "check_pairing",
    "choose_image",
    "classify_image",
    "container_of",
    "default_image",
    "instance_memory_mb",
    "is_gpu_instance",
]
