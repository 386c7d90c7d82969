"""``mlops init``: a new model folder from a template.

A template (``templates/<name>/`` in the source tree, ``mlops_cli/templates/<name>/`` in the wheel)
holds ``mlops.yaml.tmpl``, whose only placeholder is ``{{name}}``, and inference code that is
copied verbatim. The weights the code loads are generated here with numpy from a fixed seed, so a
template always gives the same bytes: a fresh model folder uploads to the same package id anywhere.

The folder is assembled beside ``dest`` and renamed into place, so a failed init leaves nothing
behind. Only ``--force`` into a non-empty folder (and filling the caller's own working folder) moves
files in one by one, each replaced whole.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import secrets
import shutil
import stat
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_cli.errors import MlopsError, UsageError
from mlops_cli.resources import templates_dir
from mlops_cli.spec.modelspec import SPEC_FILE
from mlops_cli.validation import suggestion

if TYPE_CHECKING:
    import numpy.typing as npt

TEMPLATES: dict[str, str] = {
    "triton-python": "Triton python backend: a numpy classifier with dynamic batching",
    "triton-python-stream": "Triton python backend, decoupled: a toy language model streaming tokens",
    "sagemaker-mms": "multi-model-server handler (SageMaker multi-model endpoints): a numpy classifier",
}

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAME_RULE = (
    "1-64 characters: lower-case letters, digits, '-', '_' and '.', starting with a letter or digit"
)
PLACEHOLDER = "{{name}}"
SPEC_TEMPLATE = SPEC_FILE + ".tmpl"
SEED = 20240601
# Zip entries carry a modification time; a fixed one keeps the .npz bytes reproducible.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_SKIPPED = ("__pycache__", ".pyc", ".DS_Store")

# The toy language model learns from these sentences: a word's successors are scored by how often
# they follow it here, plus a little seeded noise that breaks ties. No word appears twice, so from
# any known word greedy decoding finishes that word's sentence and stops.
LM_START, LM_END = "<s>", "</s>"
LM_CORPUS = (
    "the model reads your prompt and writes an answer",
    "every token streams to a waiting client immediately",
    "greedy decoding always picks one likeliest next word",
)


@dataclass(frozen=True)
class InitResult:
    path: Path
    template: str
    name: str
    files: tuple[str, ...]  # POSIX paths relative to ``path``, sorted


def init_model(
    dest: Path, *, template: str, name: str | None = None, force: bool = False
) -> InitResult:
    """Create the model folder ``dest`` from ``template``.

    ``name`` defaults to the folder's name, lower-cased and reduced to the characters a model name
    allows. ``dest`` must not exist or be empty; with ``force`` a non-empty folder receives the
    template's files, replacing files of the same path and keeping every other file.

    Raises UsageError for an unknown template, a bad name or a non-empty ``dest`` without
    ``force``, before anything is written; MlopsError when writing fails, after removing what it
    wrote.
    """
    if template not in TEMPLATES:
        raise UsageError(
            f"unknown template {template!r}", hint=suggestion(template, TEMPLATES, noun="templates")
        )
    dest = Path(os.path.abspath(dest))
    model_name = _check_name(name) if name is not None else default_name(dest)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} exists and is not a folder", hint="choose another path")
    replace_empty = dest.is_dir() and not any(dest.iterdir())
    if dest.is_dir() and not replace_empty and not force:
        raise UsageError(
            f"{dest} is not empty; nothing was written",
            hint="choose a new or empty folder, or pass --force to write the template's files into it",
        )
    source = templates_dir().joinpath(template)
    if not source.is_dir():
        raise UsageError(
            f"template {template!r} is missing from this installation", hint="reinstall mlops-cli"
        )

    created = _make_parents(dest.parent)
    staging = dest.parent / f".{dest.name}.init-{secrets.token_hex(4)}"
    try:
        staging.mkdir()  # not mkdtemp: this folder may become dest, with the umask's mode
        files = _build(staging, source, template=template, name=model_name)
        if not dest.exists():
            os.replace(staging, dest)
        elif replace_empty and not dest.is_symlink() and not _is_cwd(dest):
            os.chmod(staging, stat.S_IMODE(dest.stat().st_mode))
            os.replace(staging, dest)  # rename(2) replaces an empty folder atomically
        else:
            # A non-empty folder (--force), or the caller's working folder, which a rename would
            # leave them standing in a deleted folder: move the files in instead.
            _move_into(staging, dest, files)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            raise MlopsError(
                f"cannot write {dest}: {exc.strerror or exc}; nothing was written"
            ) from exc
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return InitResult(path=dest, template=template, name=model_name, files=files)


def default_name(dest: Path) -> str:
    """A valid model name made from a folder's name (``My Model`` -> ``my-model``)."""
    base = Path(os.path.abspath(dest)).name.lower()
    name = re.sub(r"[^a-z0-9._-]+", "-", base)
    name = re.sub(r"^[^a-z0-9]+", "", name)[:64].rstrip("-._")
    if not name:
        raise UsageError(
            f"cannot make a model name from the folder name {Path(dest).name!r}",
            hint=f"pass --name NAME ({NAME_RULE})",
        )
    return name


def _check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"invalid model name {name!r}: {NAME_RULE}", hint="pass a valid --name")
    return name


def _build(staging: Path, source: Traversable, *, template: str, name: str) -> tuple[str, ...]:
    """Write the template's files and weights under ``staging``; return their relative paths."""
    written: list[str] = []
    for relative, entry in _walk(source):
        if relative == SPEC_TEMPLATE:
            text = entry.read_text(encoding="utf-8").replace(PLACEHOLDER, name)
            relative, data = SPEC_FILE, text.encode("utf-8")
        else:
            data = entry.read_bytes()
        _write(staging / relative, data)
        written.append(relative)
    for relative, data in _WEIGHTS[template]().items():
        _write(staging / relative, data)
        written.append(relative)
    return tuple(sorted(written))


def _walk(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name in _SKIPPED or entry.name.endswith(_SKIPPED):
            continue
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _walk(entry, relative + "/")
        else:
            yield relative, entry


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _move_into(staging: Path, dest: Path, files: tuple[str, ...]) -> None:
    """Move each built file into an existing folder, replacing a file of the same path whole."""
    for relative in files:
        if (dest / relative).is_dir():
            raise UsageError(
                f"{dest / relative} is a folder where the template has a file", hint="move it away"
            )
    for relative in files:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / relative, target)


def _is_cwd(folder: Path) -> bool:
    try:
        return folder.samefile(Path.cwd())
    except OSError:
        return False


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing ancestors; return those created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    missing.reverse()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {folder}: {exc.strerror}") from None
    return missing


# -- weights ---------------------------------------------------------------------------------


def npz_bytes(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """An ``.npz`` archive ``np.load`` reads, byte-identical for identical arrays.

    ``np.savez`` stamps each zip entry with the current time; this writes the same layout
    (uncompressed ``<key>.npy`` entries) with a fixed time instead.
    """
    import numpy as np

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.save(member, arrays[key], allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def _classifier_weights() -> dict[str, bytes]:
    import numpy as np

    rng = np.random.default_rng(SEED)
    arrays = {
        "W": rng.normal(0.0, 1.0, size=(4, 3)).astype(np.float32),
        "b": rng.normal(0.0, 0.1, size=(3,)).astype(np.float32),
    }
    return {"weights/classifier.npz": npz_bytes(arrays)}


def _lm_weights() -> dict[str, bytes]:
    import numpy as np

    vocab = [LM_START, LM_END, *sorted({word for line in LM_CORPUS for word in line.split()})]
    index = {word: i for i, word in enumerate(vocab)}
    counts = np.zeros((len(vocab), len(vocab)), dtype=np.float32)
    for line in LM_CORPUS:
        for current, following in itertools.pairwise([LM_START, *line.split(), LM_END]):
            counts[index[current], index[following]] += 1.0
    noise = np.random.default_rng(SEED).uniform(0.0, 0.1, size=counts.shape).astype(np.float32)
    scores = counts + noise
    scores[:, index[LM_START]] = -1.0  # never generated
    arrays = {
        # Fixed-width unicode, not objects: np.load reads it without allow_pickle.
        "vocab": np.array(vocab, dtype=f"<U{max(len(w) for w in vocab)}"),
        "transitions": scores,
    }
    return {"weights/lm.npz": npz_bytes(arrays)}


_WEIGHTS: dict[str, Callable[[], dict[str, bytes]]] = {
    "triton-python": _classifier_weights,
    "triton-python-stream": _lm_weights,
    "sagemaker-mms": _classifier_weights,
}
