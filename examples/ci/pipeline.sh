#!/usr/bin/env bash
# The release pipeline of one model repository, step by step; the GitHub Actions workflow and the
# GitLab CI file in this folder call these same steps, and `local` runs them all on this machine.
#
#   bash pipeline.sh local                 # every step against the embedded default (local Triton,
#                                          # SQLite registry) and a moto server standing in for S3
#   bash pipeline.sh validate|upload|register|deploy|perftest|promote|rollback   # one step (CI)
#   bash pipeline.sh local-down            # stop the servers `local` left running
#   bash pipeline.sh release               # validate .. perftest, then promote, or roll back
#
# Settings come from the environment (the CI files set them):
#   MODEL_DIR     the model folder, holding mlops.yaml (default: .)
#   MLOPS_STORE, MLOPS_REGISTRY, MLOPS_TARGET   where packages, versions and staging live
#   TARGET_ARGS   extra deploy/undeploy flags, e.g. "--fleet fleet.yaml" or "--endpoint staging.yaml"
#   SLA           the gate (default: the first line of $MODEL_DIR/sla.txt, else p99<250ms,error_rate<0.1%)
#   PERF_ARGS     the load (default: --concurrency 1,4 --duration 10s); keep it the same between
#                 releases: the baseline is compared step by step, by label
#   BASELINE_URI  where the last release's report.json lives (s3://bucket/key or a path)
#   STATE_DIR     what one step leaves for the next: version, previous aliases, report (default: .mlops-ci)
#   COMMIT, AUTHOR  lineage tags (default: from GITHUB_* / CI_COMMIT_* or git)
# Exit codes are mlops': 1 failed, 2 invalid, 3 SLA or baseline not met (after `release` rolled back).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODEL_DIR="${MODEL_DIR:-.}"
STATE_DIR="${STATE_DIR:-.mlops-ci}"
PERF_ARGS="${PERF_ARGS:---concurrency 1,4 --duration 10s}"
TARGET_ARGS="${TARGET_ARGS:-}"
mkdir -p "$STATE_DIR"

say() { echo "pipeline: $*" >&2; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
state() { cat "$STATE_DIR/$1"; }
model_name() {
  python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$MODEL_DIR/mlops.yaml"
}
# The version an alias points at, or nothing (no such model or alias yet).
alias_version() {
  mlops alias list "$1" --json 2>/dev/null | python3 -c '
import json, sys
try:
    rows = json.load(sys.stdin)
except ValueError:
    rows = []
rows = rows if isinstance(rows, list) else []  # {"error": ...}: no such model yet
print(next((str(r["version"]) for r in rows if r["alias"] == sys.argv[1]), ""))' "$2" || true
}
sla() {
  if [[ -n "${SLA:-}" ]]; then echo "$SLA"
  elif [[ -f "$MODEL_DIR/sla.txt" ]]; then head -n 1 "$MODEL_DIR/sla.txt"
  else echo "p99<250ms,error_rate<0.1%"; fi
}

step_validate() { mlops validate "$MODEL_DIR"; }

step_upload() {
  mlops upload "$MODEL_DIR" --json | field uri > "$STATE_DIR/package"
  say "package $(state package)"
}

step_register() {
  local model commit author
  model=$(model_name)
  commit="${COMMIT:-${GITHUB_SHA:-${CI_COMMIT_SHA:-$(git -C "$MODEL_DIR" rev-parse HEAD 2>/dev/null || echo unknown)}}}"
  author="${AUTHOR:-${GITHUB_ACTOR:-${GITLAB_USER_LOGIN:-$(git -C "$MODEL_DIR" log -1 --format=%ae 2>/dev/null || echo unknown)}}}"
  echo "$model" > "$STATE_DIR/model"
  alias_version "$model" production > "$STATE_DIR/previous-production"
  alias_version "$model" staging > "$STATE_DIR/previous-staging"
  # From the folder, so the version also records git's commit and dirty flag; the upload step
  # already sent the blobs, so this only registers.
  mlops register "$MODEL_DIR" --tag "commit=$commit" --tag "author=$author" \
    --description "CI release of $commit" --json | field version > "$STATE_DIR/version"
  say "$model version $(state version) (production was $(state previous-production))"
}

step_deploy() {
  # shellcheck disable=SC2086  # TARGET_ARGS is a list of flags
  mlops deploy "$(state model)@$(state version)" --alias staging $TARGET_ARGS
}

step_perftest() {
  local baseline=() code=0
  rm -rf "$STATE_DIR/perf" "$STATE_DIR/baseline.json"
  if [[ -n "${BASELINE_URI:-}" ]] &&
    [[ $(python3 "$HERE/baseline.py" get "$BASELINE_URI" "$STATE_DIR/baseline.json") == found ]]; then
    baseline=(--baseline "$STATE_DIR/baseline.json")
    say "baseline: the last release's report, $BASELINE_URI"
  fi
  # shellcheck disable=SC2086  # PERF_ARGS is a list of flags
  mlops perftest "$(state model)@$(state version)" --sla "$(sla)" --report "$STATE_DIR/perf" \
    "${baseline[@]}" $PERF_ARGS || code=$?
  if [[ -n "${GITHUB_STEP_SUMMARY:-}" && -f "$STATE_DIR/perf/summary.md" ]]; then
    cat "$STATE_DIR/perf/summary.md" >> "$GITHUB_STEP_SUMMARY"
  fi
  return "$code"
}

step_promote() {
  local model version previous
  model=$(state model) version=$(state version) previous=$(state previous-production)
  # Compare-and-swap: if another release moved @production since this one started, exit 1.
  mlops alias set "$model" production "$version" --expect-version "${previous:-none}"
  if [[ -n "${BASELINE_URI:-}" ]]; then
    python3 "$HERE/baseline.py" put "$STATE_DIR/perf/report.json" "$BASELINE_URI"
  fi
}

step_rollback() {
  local model version staging production
  if [[ ! -f "$STATE_DIR/version" ]]; then say "nothing registered, nothing to roll back"; return 0; fi
  model=$(state model) version=$(state version)
  staging=$(state previous-staging) production=$(state previous-production)
  if [[ "$(alias_version "$model" staging)" == "$version" && "$staging" != "$version" ]]; then
    if [[ -n "$staging" ]]; then
      mlops alias set "$model" staging "$staging" --expect-version "$version"
    else
      mlops alias delete "$model" staging --expect-version "$version"
    fi
  fi
  if [[ "$version" != "$production" && "$version" != "$staging" ]]; then
    # shellcheck disable=SC2086
    mlops undeploy "$model@$version" $TARGET_ARGS
  fi
  say "rolled back: $model@staging -> ${staging:-none}, @production stays ${production:-none}"
}

release() {
  step_validate
  step_upload
  step_register
  step_deploy || { step_rollback; return 1; }
  local code=0
  step_perftest || code=$?
  if [[ $code -ne 0 ]]; then
    step_rollback
    return "$code"
  fi
  step_promote
}

# Every step on this machine: the embedded default for the registry and the staging target (the
# local Triton, started on demand), and S3 on a moto server. Unless AWS_ENDPOINT_URL names one
# already, a moto server is started and left running with the local Triton, so that the next
# `local` run is the next release (with this one's report as its baseline); `local-down` stops both.
local_setup() {
  local repo
  repo="$(cd "$HERE/../.." && pwd)"
  [[ -x "$repo/.venv/bin/mlops" ]] && export PATH="$repo/.venv/bin:$PATH"
  if [[ "$MODEL_DIR" == . && ! -f mlops.yaml ]]; then MODEL_DIR="$repo/examples/iris-classifier"; fi
  if [[ "$MODEL_DIR" == "$repo/examples/iris-classifier" && ! -f "$MODEL_DIR/weights/classifier.safetensors" ]]; then
    python3 "$repo/examples/build.py"
  fi
  if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \
      AWS_REGION=us-east-1
    if ! kill -0 "$(cat "$STATE_DIR/moto.pid" 2>/dev/null || echo none)" 2>/dev/null; then
      python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        > "$STATE_DIR/moto.port"
      nohup python3 -m moto.server -H 127.0.0.1 -p "$(state moto.port)" > "$STATE_DIR/moto.log" 2>&1 &
      echo $! > "$STATE_DIR/moto.pid"
    fi
    export AWS_ENDPOINT_URL="http://127.0.0.1:$(state moto.port)"
    for _ in $(seq 100); do curl -fs "$AWS_ENDPOINT_URL/moto-api/" > /dev/null 2>&1 && break; sleep 0.1; done
    say "moto server $AWS_ENDPOINT_URL (pid $(state moto.pid))"
  fi
  export MLOPS_STORE="${MLOPS_STORE:-s3://mlops-ci-local/store}"
  export BASELINE_URI="${BASELINE_URI:-s3://mlops-ci-local/perf/$(model_name)/production/report.json}"
  python3 "$HERE/baseline.py" bucket "$MLOPS_STORE"
}

local_down() {
  local repo
  repo="$(cd "$HERE/../.." && pwd)"
  [[ -x "$repo/.venv/bin/mlops" ]] && export PATH="$repo/.venv/bin:$PATH"
  mlops local down || true
  if [[ -f "$STATE_DIR/moto.pid" ]]; then
    kill "$(state moto.pid)" 2>/dev/null || true
    rm -f "$STATE_DIR/moto.pid" "$STATE_DIR/moto.port"
  fi
}

case "${1:-}" in
  validate | upload | register | deploy | perftest | promote | rollback) "step_$1" ;;
  release) release ;;
  local) local_setup; release ;;
  local-down) local_down ;;
  *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
