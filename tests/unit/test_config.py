"""Configuration: precedence, provenance, and one clear line for each kind of bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlops_cli.cli.main import main
from mlops_cli.config import env_var_for, resolve_settings
from mlops_cli.errors import ConfigError

pytestmark = pytest.mark.unit


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def show_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, dict[str, object]]:
    assert main(["config", "show", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_defaults_expand_the_workspace(isolated_config: Path) -> None:
    settings = resolve_settings()
    assert settings.workspace == isolated_config / ".mlops"
    assert settings.store == f"file://{isolated_config}/.mlops/store"
    assert settings.registry == f"sqlite:///{isolated_config}/.mlops/registry.db"
    assert settings.local.http_port == 0
    assert not (isolated_config / ".mlops").exists(), "resolving settings must not create anything"


def test_precedence_and_provenance(
    isolated_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = write(
        tmp_path / "xdg" / "mlops" / "config.yaml",
        "target: triton\nlocal:\n  http_port: 1001\n  grpc_port: 1002\n  metrics_port: 1003\n  log_verbose: 1\n",
    )
    project = write(
        isolated_config / ".mlops" / "config.yaml",
        "local:\n  http_port: 2001\n  grpc_port: 2002\n  metrics_port: 2003\n",
    )
    monkeypatch.setenv("MLOPS_LOCAL_GRPC_PORT", "3002")
    monkeypatch.setenv("MLOPS_LOCAL_METRICS_PORT", "3003")
    doc = show_json(capsys, "--set", "local.metrics_port=4003")
    values, sources = doc["values"], doc["sources"]
    assert values["target"] == "triton" and sources["target"] == f"user config {user}"
    assert values["local.log_verbose"] == 1
    assert (
        values["local.http_port"] == 2001
        and sources["local.http_port"] == f"project config {project}"
    )
    assert (
        values["local.grpc_port"] == 3002
        and sources["local.grpc_port"] == "env MLOPS_LOCAL_GRPC_PORT"
    )
    assert values["local.metrics_port"] == 4003
    assert sources["local.metrics_port"] == "flag --set local.metrics_port"
    assert values["local.stop_timeout"] == 15 and sources["local.stop_timeout"] == "default"
    assert doc["files"] == [str(user), str(project)]


def test_project_config_is_found_from_a_subfolder(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated_config / ".mlops" / "config.yaml", "store: s3://bucket/models\n")
    deep = isolated_config / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    settings = resolve_settings()
    assert settings.store == "s3://bucket/models"
    assert settings.workspace == isolated_config / ".mlops"


def test_explicit_config_file_and_relative_workspace(isolated_config: Path, tmp_path: Path) -> None:
    other = write(
        tmp_path / "elsewhere" / "mlops.yaml",
        "workspace: ws\nregistry: 'sqlite:///{workspace}/r.db'\n",
    )
    settings = resolve_settings(config_file=other)
    assert settings.workspace == tmp_path / "elsewhere" / "ws"
    assert settings.registry == f"sqlite:///{tmp_path / 'elsewhere' / 'ws'}/r.db"


def test_command_flags_beat_everything(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_LOCAL_HTTP_PORT", "3001")
    settings = resolve_settings(
        set_pairs=["local.http_port=4001"], overrides={"local.http_port": 5001}
    )
    assert settings.local.http_port == 5001
    assert settings.sources["local.http_port"] == "flag --http-port"


def test_env_var_names() -> None:
    assert env_var_for("local.http_port") == "MLOPS_LOCAL_HTTP_PORT"
    assert env_var_for("store") == "MLOPS_STORE"


# -- bad input ---------------------------------------------------------------------------------


def one_error_line(capsys: pytest.CaptureFixture[str], args: list[str], code: int = 2) -> str:
    assert main(args) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_unknown_key_names_file_path_and_suggestion(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(isolated_config / ".mlops" / "config.yaml", "local:\n  http_prot: 8000\n")
    line = one_error_line(capsys, ["config", "show"])
    assert str(path) in line
    assert "local.http_prot" in line
    assert "unknown key" in line
    assert "did you mean 'http_port'" in line


def test_unknown_top_level_key(isolated_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(isolated_config / ".mlops" / "config.yaml", "registy: sqlite:///x.db\n")
    line = one_error_line(capsys, ["config", "show"])
    assert "registy" in line and "did you mean 'registry'" in line


def test_malformed_yaml_names_line_and_column(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        isolated_config / ".mlops" / "config.yaml", "store: file:///x\nlocal:\n  http_port: [1, 2\n"
    )
    line = one_error_line(capsys, ["config", "show"])
    assert "malformed YAML" in line
    assert f"{path}:4:1" in line or f"{path}:3:" in line, line


def test_wrong_type_names_the_key(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(isolated_config / ".mlops" / "config.yaml", "local:\n  http_port: eighty\n")
    line = one_error_line(capsys, ["config", "show"])
    assert "local.http_port" in line and "'eighty' is not of type 'integer'" in line


def test_not_a_mapping(isolated_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(isolated_config / ".mlops" / "config.yaml", "- a\n- b\n")
    assert "must be a mapping" in one_error_line(capsys, ["config", "show"])


def test_bad_env_value(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLOPS_LOCAL_HTTP_PORT", "http")
    line = one_error_line(capsys, ["config", "show"])
    assert "env MLOPS_LOCAL_HTTP_PORT" in line and "expected integer" in line
    monkeypatch.setenv("MLOPS_LOCAL_HTTP_PORT", "70000")
    assert "70000 is greater than the maximum" in one_error_line(capsys, ["config", "show"])


def test_bad_set_flags(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, ["--set", "local.http_prot=1", "config", "show"])
    assert "did you mean 'local.http_port'" in line
    assert "KEY=VALUE" in one_error_line(capsys, ["--set", "nonsense", "config", "show"])
    assert "'nowhere' is not allowed" in one_error_line(
        capsys, ["--set", "target=nowhere", "config", "show"]
    )


def test_missing_explicit_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, ["--config", str(tmp_path / "nope.yaml"), "config", "show"])
    assert "config file not found" in line


def test_config_error_class() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings(set_pairs=["local.startup_timeout=-1"])
    assert info.value.key_path == "local.startup_timeout"
    assert isinstance(info.value, ValueError)


def test_unwritable_workspace_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = one_error_line(capsys, ["--set", f"workspace={blocker}/ws", "local", "up"], code=1)
    assert "cannot create workspace" in line
    assert blocker.read_text() == "not a folder"
    if os.geteuid() != 0:  # root writes anywhere; a read-only folder only stops others
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        line = one_error_line(capsys, ["--set", f"workspace={locked}", "local", "up"], code=1)
        assert "not writable" in line
        assert list(locked.iterdir()) == []


def test_workspace_on_a_read_only_filesystem(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, ["--set", "workspace=/proc/mlops-ws", "local", "up"], code=1)
    assert "workspace" in line


def test_shipped_example_config_validates(isolated_config: Path) -> None:
    from tests.conftest import REPO_ROOT

    settings = resolve_settings(config_file=REPO_ROOT / "examples" / "config.yaml")
    assert settings.target == "local"
    assert settings.local.stop_timeout == 15
