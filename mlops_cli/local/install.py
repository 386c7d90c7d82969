"""Find the tritonserver that the nvidia-pytriton wheel bundles, and what it needs to run.

The bundled binary runs outside pytriton when three things hold (all measured on this project's
machines): the python backend stub for this interpreter's Python version sits beside
``libtriton_python.so``; the interpreter's ``bin/`` is first on PATH (the stub finds its Python
prefix, hence numpy and the model's imports, through it); and LD_LIBRARY_PATH holds the folder of
the matching libpython. Instead of copying the stub into site-packages, mlops builds a backend
folder of symlinks in the workspace and adds the wheel's bundled libraries to LD_LIBRARY_PATH, so
an installation that is read-only works too.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from mlops_cli.errors import ExtraNotInstalledError, ServerError


@dataclass(frozen=True)
class TritonInstallation:
    """Paths of one usable bundled tritonserver."""

    binary: Path
    python_backend: Path  # folder holding libtriton_python.so
    stub: Path  # triton_python_backend_stub for this Python version
    bundled_libs: Path  # nvidia_pytriton.libs

    @classmethod
    def locate(cls) -> TritonInstallation:
        """Find the installation; ExtraNotInstalledError when nvidia-pytriton is absent."""
        spec = importlib.util.find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise ExtraNotInstalledError(feature="the local Triton server", extra="triton")
        package = Path(next(iter(spec.submodule_search_locations)))
        root = package / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        found = cls(
            binary=root / "bin" / "tritonserver",
            python_backend=root / "backends" / "python",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
            bundled_libs=package.parent / "nvidia_pytriton.libs",
        )
        for path in (found.binary, found.python_backend / "libtriton_python.so", found.stub):
            if not path.exists():
                raise ServerError(
                    f"the nvidia-pytriton installation is incomplete: {path} is missing",
                    hint="reinstall it: pip install --force-reinstall 'mlops-cli[triton]'",
                )
        return found

    def link_backends(self, backends_dir: Path) -> Path:
        """(Re)build ``backends_dir/python`` as symlinks to the bundled python backend."""
        target = backends_dir / "python"
        target.mkdir(parents=True, exist_ok=True)
        links = {entry.name: entry for entry in self.python_backend.iterdir() if entry.is_file()}
        links[self.stub.name] = self.stub
        for name, source in links.items():
            link = target / name
            tmp = target / f".{name}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(source)
            os.replace(tmp, link)
        return backends_dir

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """The server's environment: this interpreter first on PATH, matching libpython."""
        env = dict(base)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])
        libdirs = [str(sysconfig.get_config_var("LIBDIR") or ""), str(self.bundled_libs)]
        if base.get("LD_LIBRARY_PATH"):
            libdirs.append(base["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(d for d in libdirs if d)
        return env
