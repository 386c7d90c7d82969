"""`mlops init` scaffolds: reproducible bytes, valid model folders, and errors that change nothing."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mlops_cli.errors import EXIT_USAGE, MlopsError, UsageError
from mlops_cli.resources import templates_dir
from mlops_cli.spec import scaffold
from mlops_cli.spec.checks import validate_model_dir
from mlops_cli.spec.modelspec import load_spec
from mlops_cli.spec.scaffold import TEMPLATES, default_name, init_model

pytestmark = pytest.mark.unit


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty folder of the test's own (tmp_path also holds the autouse project folder)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: folders as "dir", files by content digest."""
    return {
        path.relative_to(root).as_posix(): "dir"
        if path.is_dir()
        else hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_same_template_gives_identical_bytes(template: str, root: Path) -> None:
    first = init_model(root / "one" / "m", template=template)
    second = init_model(root / "two" / "m", template=template)

    assert first.files == second.files
    assert sorted(first.files) == [p for p, kind in snapshot(first.path).items() if kind != "dir"]
    assert snapshot(first.path) == snapshot(second.path)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_validates_without_findings(template: str, root: Path) -> None:
    result = init_model(root / "model", template=template, name="my-model")

    spec, findings = validate_model_dir(result.path)

    assert [f for f in findings if f.severity == "error"] == []
    assert findings == []  # no warnings either
    assert spec.name == result.name == "my-model"
    assert result.template == template
    assert "mlops.yaml" in result.files and "mlops.yaml.tmpl" not in result.files


def test_weights_load_without_pickle(root: Path) -> None:
    lm = init_model(root / "lm", template="triton-python-stream").path
    classifier = init_model(root / "clf", template="triton-python").path

    with np.load(lm / "weights" / "lm.npz", allow_pickle=False) as weights:
        vocab, transitions = weights["vocab"], weights["transitions"]
    assert vocab.dtype.kind == "U"
    assert {"<s>", "</s>"} <= set(vocab.tolist())
    assert transitions.shape == (len(vocab), len(vocab))
    with np.load(classifier / "weights" / "classifier.npz", allow_pickle=False) as weights:
        assert weights["W"].shape == (4, 3)
        assert weights["b"].shape == (3,)


def test_name_defaults_to_the_sanitised_folder_name(root: Path) -> None:
    result = init_model(root / "My Fancy_Model!", template="sagemaker-mms")

    assert result.name == "my-fancy_model"
    assert load_spec(result.path).name == "my-fancy_model"
    assert default_name(Path("__Über.Model--")) == "ber.model"
    assert default_name(Path("x" * 100)) == "x" * 64
    with pytest.raises(UsageError, match="cannot make a model name") as caught:
        default_name(Path("___"))
    assert caught.value.hint is not None and "--name" in caught.value.hint


def test_names_that_yaml_would_retype_stay_strings(root: Path) -> None:
    for name in ("123", "1.5", "null", "true"):
        result = init_model(root / name, template="triton-python", name=name)
        assert load_spec(result.path).name == name


def test_unknown_template_lists_the_valid_ones(root: Path) -> None:
    with pytest.raises(UsageError) as caught:
        init_model(root / "new" / "m", template="triton-pyhton")

    assert caught.value.exit_code == EXIT_USAGE
    assert "triton-pyhton" in caught.value.message
    assert caught.value.hint is not None
    assert "did you mean 'triton-python'" in caught.value.hint
    assert all(name in caught.value.hint for name in TEMPLATES)
    assert list(root.iterdir()) == []


def test_non_empty_destination_is_refused_and_left_alone(root: Path) -> None:
    dest = root / "existing"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    (dest / "model.py").write_text("# my own model")
    before = snapshot(root)

    with pytest.raises(UsageError, match="not empty") as caught:
        init_model(dest, template="triton-python")

    assert caught.value.exit_code == EXIT_USAGE
    assert snapshot(root) == before


def test_a_file_in_the_way_is_refused(root: Path) -> None:
    (root / "model").write_text("a file")
    before = snapshot(root)

    with pytest.raises(UsageError, match="not a folder"):
        init_model(root / "model", template="triton-python")

    assert snapshot(root) == before


@pytest.mark.parametrize("name", ["Upper", "-dash-first", "has space", "x" * 65, ""])
def test_bad_name_prints_the_rule_and_writes_nothing(name: str, root: Path) -> None:
    with pytest.raises(UsageError) as caught:
        init_model(root / "a" / "b", template="triton-python", name=name)

    assert "lower-case letters, digits" in caught.value.message
    assert caught.value.exit_code == EXIT_USAGE
    assert list(root.iterdir()) == []


def test_force_writes_template_files_and_keeps_the_others(root: Path) -> None:
    dest = root / "existing"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    (dest / "model.py").write_text("# stale")

    result = init_model(dest, template="triton-python", force=True)

    assert (dest / "notes.txt").read_text() == "mine"
    assert (dest / "model.py").read_bytes() == (
        templates_dir().joinpath("triton-python", "model.py").read_bytes()
    )
    assert validate_model_dir(dest)[1] == []
    assert result.files == ("mlops.yaml", "model.py", "weights/classifier.npz")
    assert sorted(p.name for p in root.iterdir()) == ["existing"]  # no staging left


def test_an_empty_destination_is_filled(root: Path) -> None:
    dest = root / "empty"
    dest.mkdir()

    result = init_model(dest, template="sagemaker-mms")

    assert result.path == dest
    assert (dest / "MAR-INF" / "MANIFEST.json").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["empty"]


def test_the_current_empty_folder_stays_usable(isolated_config: Path) -> None:
    # The autouse fixture runs each test inside an empty folder named "project".
    result = init_model(Path("."), template="triton-python")

    assert result.path == isolated_config
    assert result.name == "project"
    assert Path.cwd() == isolated_config
    assert Path("mlops.yaml").is_file()  # the working folder was filled, not swapped away


def test_a_failure_while_building_leaves_nothing(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> dict[str, bytes]:
        raise OSError("disk full")

    monkeypatch.setitem(scaffold._WEIGHTS, "triton-python", broken)
    with pytest.raises(MlopsError, match="disk full"):
        init_model(root / "new" / "deeper" / "m", template="triton-python")
    assert list(root.iterdir()) == []

    empty = root / "empty"
    empty.mkdir()
    with pytest.raises(MlopsError, match="disk full"):
        init_model(empty, template="triton-python")
    assert snapshot(root) == {"empty": "dir"}


def test_templates_are_read_as_resources_not_paths(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As from a zipped wheel: only the Traversable API is used."""
    source = Path(str(templates_dir()))
    archive = root / "templates.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zipped.write(path, f"templates/{path.relative_to(source).as_posix()}")
    monkeypatch.setattr(scaffold, "templates_dir", lambda: zipfile.Path(archive, "templates/"))

    from_zip = init_model(root / "zip" / "m", template="triton-python-stream")
    from_tree = init_model(root / "tree" / "m", template="triton-python-stream")

    assert snapshot(from_zip.path) == snapshot(from_tree.path)
