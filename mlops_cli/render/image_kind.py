"""What a SageMaker serving image runs, read from its URI: the model server (NVIDIA Triton or
multi-model-server) and the device it is built for. Shared by the deploy targets, which pick and
check images, and by mme-local, which starts the container a component's image names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Container = Literal["triton", "mms"]
Device = Literal["cpu", "gpu"]

_TAG_DEVICE = re.compile(r"(?:^|[-_.])(cpu|gpu)(?:$|[-_.])")


@dataclass(frozen=True)
class ImageKind:
    """What an image runs: its model server and the device it is built for (None: either)."""

    container: Container | None  # None: a custom image, not one of the table's
    device: Device | None


def classify_image(uri: str) -> ImageKind:
    """What an image URI runs, read from its repository name and tag."""
    repository, _, tag = uri.rpartition("/")[2].partition(":")
    if "tritonserver" in repository:
        return ImageKind("triton", "cpu" if tag.endswith("-cpu") else "gpu")
    if repository.endswith("-inference") or "multi-model" in repository:
        found = _TAG_DEVICE.search(tag)
        device: Device | None = None
        if found is not None:
            device = "gpu" if found.group(1) == "gpu" else "cpu"
        return ImageKind("mms", device)
    return ImageKind(None, None)


__all__ = ["Container", "Device", "ImageKind", "classify_image"]
