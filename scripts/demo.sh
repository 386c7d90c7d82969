#!/usr/bin/env bash
# The main job end to end on the embedded local default (no cloud account): install, scaffold a
# model, validate and upload it to the workspace store, read the package back and render it for
# Triton and SageMaker, register it and route a tenant to it, then start the local Triton server,
# show its status and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
demo=$(mktemp -d)
cd "$demo"
trap 'mlops local down >/dev/null 2>&1 || true; rm -rf "$demo"' EXIT

set -x
mlops --version
mlops init iris --template triton-python
mlops validate iris
mlops upload iris
uri=$(mlops upload iris --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["uri"])')
mlops package show "$uri"
mlops package render "$uri" --format triton --out repository --device cpu
mlops package render "$uri" --format sagemaker --out iris.tar.gz
mlops register iris --alias production
mlops route set acme iris @production
mlops route resolve acme iris
mlops models show iris
mlops local up
mlops local status
mlops local down
