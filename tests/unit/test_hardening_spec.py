"""Hostile or broken specs (issue 12, items 3 and 9-13): an entrypoint that leaves the package is
refused wherever a spec is read; YAML bombs and huge files are refused before they are built;
names end where their pattern ends; validate reports what upload refuses, all of it, in one
shape; a triton-python entrypoint Triton would not load is refused; weights that are all empty
files are a warning."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.cli.main import main
from mlops_cli.packages.manifest import FileEntry, PackageManifest
from mlops_cli.stores import open_store
from tests.cli import error_line, run
from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit

BOMB = "".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
        *(
            f"{level}: &{level} [{', '.join([f'*{prev}'] * 9)}]\n"
            for prev, level in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


@pytest.fixture
def model(isolated_config: Path) -> Path:
    folder = isolated_config / "tiny"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    return folder


def set_spec(folder: Path, old: str, new: str) -> None:
    spec = folder / "mlops.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))


def store_root() -> Path:
    return Path.cwd() / ".mlops" / "store"


def validate_json(capsys: pytest.CaptureFixture[str], folder: Path, code: int) -> Any:
    assert main(["validate", str(folder), "--json"]) == code
    out = capsys.readouterr().out
    return json.loads(out)


def crafted_package(folder: Path, spec_text: str) -> str:
    """Put a package into the configured file store WITHOUT validating it (as another tool, an
    older mlops or a hand-edited store could); return its URI."""
    store = open_store(f"file://{store_root()}")
    (folder / "mlops.yaml").write_text(spec_text)
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        store.put_blob(digest, path)
        relative = path.relative_to(folder).as_posix()
        entries.append(FileEntry(path=relative, size=path.stat().st_size, sha256=digest))
    return store.put_manifest(PackageManifest(name="tiny", files=tuple(entries)))


ESCAPING = ["/etc/hostname", "../host.py", "code/../../host.py"]


# -- item 3: the entrypoint stays in the package -------------------------------------------


@pytest.mark.parametrize("entrypoint", ESCAPING)
def test_escaping_entrypoint_is_refused_by_validate_and_upload(
    model: Path, entrypoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (model.parent / "host.py").write_text(
        "class TritonPythonModel:\n    def execute(self, r): ...\n"
    )
    set_spec(model, "entrypoint: model.py", f"entrypoint: {entrypoint}")
    document = validate_json(capsys, model, 2)
    [finding] = [f for f in document["findings"] if f["severity"] == "error"]
    assert finding["key_path"] == "entrypoint"
    assert "absolute path" in finding["message"] or "leaves the model folder" in finding["message"]
    line = error_line(capsys, "upload", str(model), code=2)
    assert "entrypoint" in line and entrypoint in line
    line = error_line(capsys, "register", str(model), code=2)
    assert "entrypoint" in line
    assert not (store_root() / "packages").exists() or not any(
        (store_root() / "packages").rglob("*.json")
    )


def test_entrypoint_symlink_out_of_the_folder_is_refused(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "host.py"
    shutil.copyfile(model / "model.py", outside)
    (model / "model.py").unlink()
    (model / "model.py").symlink_to(outside)
    document = validate_json(capsys, model, 2)
    assert any(
        f["key_path"] == "entrypoint" and "symlink out of the model folder" in f["message"]
        for f in document["findings"]
    )
    assert "symlink out of the model folder" in error_line(capsys, "upload", str(model), code=2)
    from mlops_cli.spec.modelspec import SpecError, load_spec

    with pytest.raises(SpecError, match="symlink out of the model folder"):
        load_spec(model)  # what mme-local's triton backend reads an extracted tarball with


@pytest.mark.parametrize("entrypoint", ["/etc/hostname", "../../x.py"])
def test_stored_package_with_escaping_entrypoint_is_refused_by_register_and_render(
    model: Path, entrypoint: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = (
        (model / "mlops.yaml")
        .read_text()
        .replace("entrypoint: model.py", f"entrypoint: {entrypoint}")
    )
    uri = crafted_package(model, text)
    line = error_line(capsys, "register", uri, code=2)
    assert "entrypoint" in line and entrypoint in line
    assert "tiny" not in json.dumps(run(capsys, "models", "list"))
    out = tmp_path / "repo"
    assert "entrypoint" in error_line(capsys, "package", "render", uri, "--out", str(out), code=2)
    assert not out.exists()
    tarball = tmp_path / "model.tar.gz"
    line = error_line(
        capsys, "package", "render", uri, "--format", "sagemaker", "--out", str(tarball), code=2
    )
    assert "entrypoint" in line and not tarball.exists()


# -- item 9: bounded YAML ------------------------------------------------------------------


def test_yaml_bomb_is_refused_with_one_line(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (model / "mlops.yaml").write_text(BOMB)
    for command in ("validate", "upload"):
        line = error_line(capsys, command, str(model), code=2)
        assert "expands to more than" in line and len(line) < 300
    assert not store_root().exists()


def test_bomb_in_fleet_and_endpoint_files_is_refused(tmp_path: Path) -> None:
    from mlops_cli.deploy.fleet_file import FleetFileError, load_fleet

    path = tmp_path / "fleet.yaml"
    path.write_text(BOMB)
    with pytest.raises(FleetFileError, match="expands to more than"):
        load_fleet(path)


def test_huge_spec_files_are_refused_before_parsing(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = model / "mlops.yaml"
    original = spec.read_text()
    spec.write_text(original + ("# " + "x" * 1021 + "\n") * 8 * 1024)  # 8 MiB of comments
    line = error_line(capsys, "upload", str(model), code=2)
    assert "bytes, more than the" in line and len(line) < 300
    spec.write_text(original.replace("description: y = 2x", "description: " + "d" * (8 << 20)))
    line = error_line(capsys, "validate", str(model), code=2)
    assert "bytes, more than the" in line and len(line) < 300
    assert not store_root().exists()


def test_long_values_are_quoted_as_a_short_excerpt(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = "d" * 100_000
    set_spec(model, "description: y = 2x, with a small weights file", f"description: {long}")
    line = error_line(capsys, "upload", str(model), code=2)
    assert "description" in line and "100000 characters long" in line and len(line) < 300
    set_spec(model, f"description: {long}", f"description: ok\n? {long}\n: 1")
    line = error_line(capsys, "upload", str(model), code=2)
    assert "unknown key" in line and len(line) < 600
    document = validate_json(capsys, model, 2)
    assert all(len(json.dumps(f)) < 600 for f in document["findings"])


def test_recursive_and_deep_documents_are_refused_and_merge_keys_still_work() -> None:
    from mlops_cli.errors import ValidationError
    from mlops_cli.validation import parse_yaml

    with pytest.raises(ValidationError, match="contains it"):
        parse_yaml("a: &a [1, *a]\n", source="s")
    with pytest.raises(ValidationError, match="nests deeper"):
        parse_yaml("a: " + "[" * 500 + "]" * 500 + "\n", source="s")
    merged = parse_yaml("base: &b {x: 1}\nother: {<<: *b, y: 2}\n", source="s")
    assert merged["other"] == {"x": 1, "y": 2}


# -- item 10: names end where their pattern ends -------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("name: tiny", 'name: "tiny\\n"', "name"),
        ("{name: x, dtype", '{name: "x\\n", dtype', "inputs[0].name"),
        ("resources:", 'labels: {"team\\n": a}\nresources:', "labels"),
    ],
)
def test_a_trailing_newline_does_not_pass_a_name_pattern(
    model: Path, old: str, new: str, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    set_spec(model, old, new)
    document = validate_json(capsys, model, 2)
    assert any(f["key_path"].startswith(key) for f in document["findings"]), document
    assert "does not match" in error_line(capsys, "upload", str(model), code=2)
    assert not store_root().exists()


def test_fleet_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    from mlops_cli.deploy.fleet_file import FleetFileError, load_fleet

    path = tmp_path / "fleet.yaml"
    path.write_text(
        'name: "prod\\n"\nrepository: repo\nservers:\n  - {url: "http://127.0.0.1:8000"}\n'
    )
    with pytest.raises(FleetFileError, match="does not match"):
        load_fleet(path)


def test_registry_names_are_matched_whole() -> None:
    from mlops_cli.errors import UsageError
    from mlops_cli.registry.base import check_name

    for kind, value in (("model", "abc\n"), ("alias", "prod\n"), ("tenant", "acme\n")):
        with pytest.raises(UsageError):
            check_name(kind, value)


def test_ecma_dollar_in_patterns() -> None:
    from mlops_cli.validation import ecma_pattern

    assert not ecma_pattern("^[a-z]+$").search("abc\n")
    assert ecma_pattern("^[a-z]+$").search("abc")
    assert ecma_pattern("^[$a]+$").search("$a$")  # a $ in a class is a character
    assert ecma_pattern(r"^a\$$").search("a$")


# -- item 11: validate runs upload's scan and lists every problem in one shape -------------


def test_validate_refuses_what_upload_refuses(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "secret").write_text("outside")
    (model / "link.bin").symlink_to(tmp_path / "secret")
    document = validate_json(capsys, model, 2)
    assert any("points outside the model folder" in f["message"] for f in document["findings"])
    assert "points outside" in error_line(capsys, "upload", str(model), code=2)
    (model / "link.bin").unlink()

    os.mkfifo(model / "pipe")
    document = validate_json(capsys, model, 2)
    assert any("FIFO" in f["message"] for f in document["findings"])
    (model / "pipe").unlink()

    (model / os.fsdecode(b"bad-\xff.bin")).write_bytes(b"x")
    document = validate_json(capsys, model, 2)
    assert any("not UTF-8" in f["message"] for f in document["findings"])


def test_validate_lists_every_schema_error_in_the_findings_shape(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_spec(model, "entrypoint: model.py", "entrypont: model.py\ncolour: blue")
    set_spec(model, "dtype: FP32, shape: [-1]}\noutputs", "dtype: FP33, shape: [-1]}\noutputs")
    set_spec(model, "memory_mb: 64", "memory_mb: 0")
    document = validate_json(capsys, model, 2)
    errors = {f["key_path"]: f for f in document["findings"] if f["severity"] == "error"}
    assert document["valid"] is False
    assert {"entrypont", "colour", "inputs[0].dtype", "resources.memory_mb"} <= set(errors)
    assert "did you mean 'entrypoint'" in errors["entrypont"]["hint"]
    assert any("required" in f["message"] for f in errors.values())  # the missing entrypoint

    assert main(["validate", str(model)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == len(document["findings"])
    assert all(line.startswith(("error: ", "warning: ")) for line in lines)
    assert any("entrypont" in line and "unknown key" in line for line in lines)

    line = error_line(capsys, "upload", str(model), code=2)
    assert "more; `mlops validate` lists them" in line


def test_validate_findings_and_warnings_share_the_shape(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_spec(model, "memory_mb: 64", "gpu: {count: 0}")  # memory undeclared: a warning
    assert main(["validate", str(model)]) == 0
    captured = capsys.readouterr()
    assert "valid (tiny, triton-python)" in captured.out
    assert any(
        line.startswith("warning: ") and "resources.memory_mb" in line
        for line in captured.err.splitlines()
    )


# -- item 12: a triton-python entrypoint Triton would not load ------------------------------


def test_triton_python_entrypoint_in_a_subfolder_is_refused(
    model: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (model / "code").mkdir()
    shutil.move(model / "model.py", model / "code" / "model.py")
    set_spec(model, "entrypoint: model.py", "entrypoint: code/model.py")
    document = validate_json(capsys, model, 2)
    [finding] = [f for f in document["findings"] if f["severity"] == "error"]
    assert finding["key_path"] == "entrypoint" and "loads model.py" in finding["message"]
    assert "loads model.py" in error_line(capsys, "upload", str(model), code=2)
    assert "loads model.py" in error_line(capsys, "register", str(model), code=2)

    uri = crafted_package(model, (model / "mlops.yaml").read_text())
    assert "loads model.py" in error_line(capsys, "register", uri, code=2)
    out = tmp_path / "repo"
    line = error_line(capsys, "package", "render", uri, "--out", str(out), code=2)
    assert "loads model.py" in line and not out.exists()


def test_dot_slash_model_py_is_the_root_model_py(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_spec(model, "entrypoint: model.py", "entrypoint: ./model.py")
    assert validate_json(capsys, model, 0)["valid"] is True


# -- item 13: weights that are all empty files ----------------------------------------------


def test_weights_matching_only_empty_files_is_a_warning(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (model / "weights" / "small.bin").write_bytes(b"")
    (model / "weights" / "other.bin").write_bytes(b"")
    document = validate_json(capsys, model, 0)
    [warning] = [f for f in document["findings"] if f["key_path"] == "weights[0]"]
    assert warning["severity"] == "warning"
    assert "matches only empty files" in warning["message"] and "small.bin" in warning["message"]
    assert main(["validate", str(model)]) == 0
    assert "matches only empty files" in capsys.readouterr().err
    assert main(["upload", str(model), "--no-cache", "--json"]) == 0
    captured = capsys.readouterr()
    uploaded = json.loads(captured.out)
    assert uploaded["files"] == 4
    # Not a terminal and --json: the warning still reaches stderr and the JSON result.
    assert "matches only empty files" in captured.err
    assert any("matches only empty files" in line for line in uploaded["warnings"])
    (model / "weights" / "small.bin").write_bytes(b"w")
    document = validate_json(capsys, model, 0)
    assert not any(f["key_path"] == "weights[0]" for f in document["findings"])
