"""Resolve ``hf://org/name@revision`` to a local snapshot folder through huggingface_hub.

The revision is pinned: the snapshot folder is named by the commit it resolves to, and that
commit is recorded as the package's source. With ``HF_HUB_OFFLINE=1`` resolution reads only the
local cache, which is how tests (and air-gapped machines) use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlops_cli.errors import MlopsError, NotFoundError
from mlops_cli.spec.modelspec import HFSource


@dataclass(frozen=True)
class Snapshot:
    folder: Path
    repo_root: Path  # the cache folder of the repository; snapshot symlinks point inside it
    commit: str
    source: HFSource

    def record(self) -> dict[str, str]:
        """What the package manifest keeps about this source."""
        return {
            "type": "huggingface",
            "repo": self.source.repo_id,
            "revision": self.source.revision,
            "commit": self.commit,
        }


def resolve(source: HFSource, *, cache_dir: Path | None = None) -> Snapshot:
    """Download (or find in the cache) the files of ``source`` matching its allow_patterns."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MlopsError(f"huggingface_hub is not importable: {exc}") from None
    try:
        folder = Path(
            snapshot_download(
                source.repo_id,
                revision=source.revision,
                allow_patterns=list(source.allow_patterns) or None,
                cache_dir=str(cache_dir) if cache_dir else None,
            )
        )
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise NotFoundError(f"{source.uri}: {str(exc).splitlines()[0]}") from None
    except LocalEntryNotFoundError:
        raise NotFoundError(
            f"{source.uri} is not in the local Hugging Face cache and the hub cannot be reached",
            hint="download it once with network access, or check HF_HUB_OFFLINE and HF_HOME",
        ) from None
    except HfHubHTTPError as exc:
        raise MlopsError(f"{source.uri}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise MlopsError(f"{source.uri}: {exc}") from None
    return Snapshot(
        folder=folder, repo_root=folder.parent.parent, commit=folder.name, source=source
    )
