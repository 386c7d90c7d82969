"""The embedded local Triton server that mlops manages under the workspace."""

from mlops_cli.local.server import LocalModel, LocalServerStatus, LocalTriton, UpResult

__all__ = ["LocalModel", "LocalServerStatus", "LocalTriton", "UpResult"]
