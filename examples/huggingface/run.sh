#!/usr/bin/env bash
# A Hugging Face-format model from the hub's cache, with no network: make_hub_cache.py writes
# acme/tiny-sentiment (safetensors weights, config.json, tokenizer files) into a local cache laid
# out as huggingface_hub lays it out; with HF_HUB_OFFLINE=1 and HF_HOME pointing at it, mlops
# uploads hf://acme/tiny-sentiment on its own, then registers model/ (whose mlops.yaml names
# that source: the package joins the snapshot's files to model.py, and the version records the
# commit `main` resolved to), deploys it on the local Triton and invokes it.
#
#   bash run.sh      # runs in this folder's work/ (WORK=...), its .mlops/ workspace unless
#                    # MLOPS_WORKSPACE is set; KEEP=1 leaves the local Triton up
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
[[ -x "$REPO/.venv/bin/mlops" ]] && export PATH="$REPO/.venv/bin:$PATH"
WORK="${WORK:-$HERE/work}"
mkdir -p "$WORK"
cd "$WORK"
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

export HF_HOME="$WORK/hf" HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
commit=$(python3 "$HERE/make_hub_cache.py" --hf-home "$HF_HOME")
echo "hub cache: $HF_HOME/hub/models--acme--tiny-sentiment (main -> $commit)"

triton_was_up=0
mlops local status > /dev/null 2>&1 && triton_was_up=1
cleanup() {
  if [[ "${KEEP:-0}" != 1 && $triton_was_up -eq 0 ]]; then mlops local down > /dev/null || true; fi
}
trap cleanup EXIT

set -x
# The snapshot alone, as a package: every file of the commit, its source pinned to the commit.
mlops upload hf://acme/tiny-sentiment@main
mlops package show "$(mlops upload hf://acme/tiny-sentiment@main --json --quiet | field uri)"
# The servable model: the spec and the code from model/, the weights and tokenizer from the hub.
mlops validate "$HERE/model"
mlops register "$HERE/model" --alias production
mlops models versions tiny-sentiment --json |
  python3 -c 'import json, sys; print("source:", json.load(sys.stdin)[-1]["source"])'
mlops deploy tiny-sentiment
mlops invoke tiny-sentiment --input '{"text": ["a great model, fast and reliable"]}'
mlops invoke tiny-sentiment --input '{"text": [["the latency is bad"], ["good docs"]]}'
mlops undeploy tiny-sentiment
set +x
