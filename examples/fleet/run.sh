#!/usr/bin/env bash
# A fleet of two Triton servers on this machine: servers.py starts two real tritonservers that
# share one model repository, fleet.yaml names them, and mlops deploys to the fleet (--target
# triton), adds a second replica of the classifier with `mlops placement apply`, invokes both
# models (the generator streamed over gRPC), shows status per server, undeploys, and stops the
# servers by their pids.
#
#   bash run.sh      # runs in this folder's work/ (WORK=...), its .mlops/ workspace unless
#                    # MLOPS_WORKSPACE is set; KEEP=1 leaves the servers up (stop them with
#                    # `python3 servers.py down --root work/servers a b`)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
[[ -x "$REPO/.venv/bin/mlops" ]] && export PATH="$REPO/.venv/bin:$PATH"
WORK="${WORK:-$HERE/work}"
mkdir -p "$WORK"
cd "$WORK"

python3 "$REPO/examples/build.py"   # the classifier's and the generator's weights

stop() {
  if [[ "${KEEP:-0}" != 1 ]]; then python3 "$HERE/servers.py" down --root servers a b; fi
}
trap stop EXIT
python3 "$HERE/servers.py" up --root servers --repository repository a b > servers.txt
cat servers.txt
fleet_entry() {  # NAME PID HTTP_URL GRPC_URL -> one server of fleet.yaml (memory for 3 models each)
  echo "  - {name: $1, url: \"$3\", grpc_url: \"$4\", memory_mb: 200}"
}
{
  echo "name: pair"
  echo "repository: repository      # relative to this file: the folder both servers load from"
  echo "servers:"
  while read -r line; do fleet_entry $line; done < servers.txt
} > fleet.yaml
cat fleet.yaml

set -x
mlops register "$REPO/examples/iris-classifier" --alias production
mlops register "$REPO/examples/tiny-lm" --alias production
mlops deploy iris-classifier --target triton --fleet fleet.yaml --dry-run
mlops deploy iris-classifier --target triton --fleet fleet.yaml     # first fit: server a
mlops deploy tiny-lm --target triton --fleet fleet.yaml
# Two replicas of the classifier, on different servers: the new one is loaded before anything moves.
mlops placement plan --fleet fleet.yaml --all-deployed --replicas iris-classifier=2
mlops placement apply --fleet fleet.yaml --all-deployed --replicas iris-classifier=2
mlops invoke iris-classifier --input '{"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.6, 2.4]]}'
mlops invoke tiny-lm --stream --protocol grpc --input '{"prompt": "the fleet", "max_tokens": 8}'
mlops status --fleet fleet.yaml
mlops undeploy tiny-lm --target triton --fleet fleet.yaml
mlops undeploy iris-classifier --target triton --fleet fleet.yaml
mlops status --fleet fleet.yaml
set +x
