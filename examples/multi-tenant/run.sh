#!/usr/bin/env bash
# Many tenants, one stable model name: COUNT per-tenant versions of `tenant-head` (heads over one
# shared feature extractor) on a dynamic fleet server (the local Triton, with room for a few
# loaded at once), a route per tenant and a canary, served through the router, then a perftest
# whose tenants follow a Zipf law.
#
#   bash run.sh [COUNT]        # default 1000 (about a second per version to deploy); runs in
#                              # this folder's .mlops/ workspace unless MLOPS_WORKSPACE is set
# Environment: REQUESTS (perftest requests per step, default 2000), KEEP=1 leaves the servers up.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
[[ -x "$REPO/.venv/bin/mlops" ]] && export PATH="$REPO/.venv/bin:$PATH"
COUNT="${1:-1000}"
REQUESTS="${REQUESTS:-2000}"
WORK="${WORK:-$HERE/work}"
mkdir -p "$WORK"
cd "$WORK"
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

python3 "$HERE/build.py" --count "$COUNT" --out "$WORK/build"

# The fleet: the local Triton as one dynamic server with room for 8 tenants' heads (32 MB each)
# loaded at once; the router loads the others on their first request, evicting idle ones.
triton_was_up=0
mlops local status > /dev/null 2>&1 && triton_was_up=1
mlops local up > /dev/null
status=$(mlops local status --json)
url=$(echo "$status" | field url)
repository=$(echo "$status" | field model_repository)
cat > fleet.yaml <<YAML
name: tenants
repository: $repository
servers:
  - {name: local, url: "$url", memory_mb: 256, dynamic: true}
YAML

# A version per tenant, each deployed (loaded once to prove its warmup answers, then unloaded)
# and routed to its tenant. The store keeps the shared extractor once.
while read -r tenant; do
  version=$(mlops register "build/$tenant" --tag "tenant=$tenant" --json | field version)
  mlops deploy "tenant-head@$version" --target triton --fleet fleet.yaml --no-switch --quiet
  mlops route set "$tenant" tenant-head "$version" --quiet
done < build/tenants.txt
mlops alias set tenant-head production 1 --quiet   # for tenants with no route of their own

# A canary: t0001 keeps its own head for 90% of requests; 10% go to the newest version.
mlops route set t0001 tenant-head 1 --canary "$COUNT:10"
mlops route resolve t0001 tenant-head --request-key order-17

# The router, on a free port, believing the tenant header (behind a gateway that authenticates).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mlops router serve --port "$port" --trust-tenant-header > router.log 2>&1 &
router=$!
cleanup() {
  kill "$router" 2>/dev/null || true
  if [[ "${KEEP:-0}" != 1 && $triton_was_up -eq 0 ]]; then mlops local down > /dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 300); do curl -fs "http://127.0.0.1:$port/health/ready" > /dev/null && break; sleep 0.1; done

body='{"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 16], "data": [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}]}'
# One request as t0001 (the router loads its version on this first request).
curl -fs "http://127.0.0.1:$port/v2/models/tenant-head/infer" -H "X-Tenant-Id: t0001" \
  -H "X-Request-Key: order-17" -d "$body"
echo
echo "$body" > payload.jsonl

# Traffic over every tenant, Zipf(1.1): a few hot tenants stay loaded, the long tail loads cold.
mlops perftest "router://127.0.0.1:$port" -m tenant-head --tenants @build/tenants.txt \
  --tenant-distribution zipf:1.1 --payload @payload.jsonl --concurrency 4 --requests "$REQUESTS" --warmup 0s \
  --max-error-rate 0% --report perf
echo "report: $WORK/perf/report.html"
