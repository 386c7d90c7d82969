"""The model repository a Triton fleet loads from: a shared folder or an S3 prefix.

Deploying writes one rendered entry, ``<repository>/<model>-v<version>/``; retiring removes it.
A failed write leaves nothing of the entry, and a failed clean-up never hides the error that
caused it (:meth:`Repository.remove_quietly`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mlops_cli.aws.s3 import S3Prefix
from mlops_cli.deploy.base import Desired
from mlops_cli.errors import MlopsError
from mlops_cli.progress import SILENT, Reporter


class Repository:
    """Where rendered models are written: a folder, or an S3 prefix (``s3://bucket/prefix``).

    S3 goes through :class:`mlops_cli.aws.S3Prefix`, so an S3 failure is one translated line
    (a missing bucket, refused credentials), never a botocore exception."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._prefix = S3Prefix(location) if location.startswith("s3://") else None

    def write(self, desired: Desired, name: str, reporter: Reporter) -> None:
        """Render ``desired`` as the entry ``name``. On failure nothing of the entry is left
        (the error raised is the failure's own, whatever the clean-up meets)."""
        from mlops_cli.render.triton import render_triton

        def render(into: Path) -> None:
            render_triton(
                desired.store,
                desired.manifest,
                into,
                model_name=name,
                version=1,
                device=desired.device,
                memory_mb=desired.memory_mb,
                reporter=reporter,
            )

        if self._prefix is None:
            model_dir = Path(self.location) / name
            if model_dir.exists():
                shutil.rmtree(model_dir)  # a leftover of a failed attempt: write it anew
            try:
                render(Path(self.location))
            except BaseException:
                shutil.rmtree(model_dir, ignore_errors=True)
                raise
            return
        with tempfile.TemporaryDirectory(prefix="mlops-render-") as tmp:
            render(Path(tmp))
            self._prefix.delete_folder(name)  # a leftover of a failed attempt: write it anew
            entry = Path(tmp) / name
            try:
                for file in sorted(p for p in entry.rglob("*") if p.is_file()):
                    self._prefix.put_file(f"{name}/{file.relative_to(entry).as_posix()}", file)
            except BaseException:
                self.remove_quietly(name, reporter)
                raise

    def remove(self, name: str) -> None:
        if self._prefix is None:
            shutil.rmtree(Path(self.location) / name, ignore_errors=True)
            return
        self._prefix.delete_folder(name)

    def remove_quietly(self, name: str, reporter: Reporter = SILENT) -> None:
        """:meth:`remove` while another error is on its way: a failure here must not hide it,
        so it is only a note."""
        try:
            self.remove(name)
        except Exception as exc:  # the caller re-raises the error that matters
            reason = exc.message if isinstance(exc, MlopsError) else f"{type(exc).__name__}: {exc}"
            reporter.note(f"{name} was not removed from {self.location}: {reason}")


__all__ = ["Repository"]
