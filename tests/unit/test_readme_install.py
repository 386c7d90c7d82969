"""The README's install instructions work without a package index that holds mlops."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_every_pip_install_of_mlops_is_from_the_checkout() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    installs = [line for line in readme.splitlines() if re.search(r"pip install\b", line)]
    assert installs, "the README says how to install mlops"
    for line in installs:
        named = re.findall(r"""['"]?mlops-cli(?:\[[^\]]*\])?['"]?""", line)
        # mlops-cli is not on an index: a line may install the checkout (`.`, `-e .`) or a
        # wheel built from it, never the bare distribution name.
        assert not named, f"README installs mlops-cli from an index: {line.strip()}"
