#!/usr/bin/env bash
# The main job end to end on the embedded local default (no cloud account):
# install, start the local Triton server, show its status, stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
demo=$(mktemp -d)
cd "$demo"
trap 'mlops local down >/dev/null 2>&1 || true; rm -rf "$demo"' EXIT

set -x
mlops --version
mlops config show
mlops local up
mlops local status
mlops local status --json
mlops local down
