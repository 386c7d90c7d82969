"""The embedded workspace: one folder holding the file store, the SQLite registry and the local
server's state. It is created on first use, and a folder that cannot be written is reported before
anything is put in it."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlops_cli.errors import WorkspaceError


@dataclass(frozen=True)
class Workspace:
    """Paths inside one workspace folder. Creating the object touches nothing on disk."""

    root: Path

    @property
    def local_dir(self) -> Path:
        """State of the embedded local Triton server (pid, ports, logs, model repository)."""
        return self.root / "local"

    def ensure(self) -> Workspace:
        """Create the workspace if needed and check that it is writable.

        Raises WorkspaceError (one line, no traceback) when the folder cannot be created or
        written; in that case nothing is left behind.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(
                f"cannot create workspace {self.root}: {exc.strerror}",
                hint="choose a writable folder with --set workspace=DIR or MLOPS_WORKSPACE",
            ) from None
        self.check_writable(self.root)
        return self

    def ensure_dir(self, path: Path) -> Path:
        """Create a folder inside the workspace (after :meth:`ensure`)."""
        self.ensure()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot create {path}: {exc.strerror}") from None
        self.check_writable(path)
        return path

    @staticmethod
    def check_writable(folder: Path) -> None:
        """Raise WorkspaceError unless a file can be created in ``folder``."""
        if not os.access(folder, os.W_OK | os.X_OK):
            raise WorkspaceError(
                f"workspace folder {folder} is not writable",
                hint="fix its permissions, or choose another with --set workspace=DIR",
            )
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
                pass
        except OSError as exc:
            raise WorkspaceError(
                f"workspace folder {folder} is not writable: {exc.strerror}",
                hint="fix its permissions, or choose another with --set workspace=DIR",
            ) from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` so that readers see the old content or the new, never a partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
