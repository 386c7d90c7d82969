#!/usr/bin/env bash
# The main job end to end on the embedded local default (no cloud account): install, build the two
# example models (a classifier and a streaming text generator), validate, upload and register
# them, deploy them on the embedded Triton server, route tenants, invoke both (the generator token
# by token), cut a tenant-visible alias over to a new version with no failed request, profile,
# show status, undeploy and stop the server. Also scaffolds a model and renders a package for
# Triton and SageMaker.
#
# It runs in a new folder under $TMPDIR (default /tmp) and keeps it: the .mlops/ workspace
# (registry, store, the local Triton's log), the model copies and the perftest report, whose HTML
# page is printed at the end with the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
python examples/build.py
examples="$PWD/examples"
demo=$(mktemp -d -t mlops-demo.XXXXXX)
cd "$demo"
finish() {
  local code=$?
  set +x
  mlops local down > /dev/null 2>&1 || true
  echo
  echo "demo workspace (kept): $demo"
  if [[ -f "$demo/perf/report.html" ]]; then
    echo "perftest HTML report: $demo/perf/report.html"
  fi
  return "$code"
}
trap finish EXIT

set -x
mlops --version
cp -r "$examples/iris-classifier" "$examples/tiny-lm" .
mlops validate iris-classifier
mlops validate tiny-lm
uri=$(mlops upload iris-classifier --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["uri"])')
mlops package show "$uri"
mlops register "$uri" --alias production
mlops register tiny-lm --alias production
mlops deploy iris-classifier --dry-run
mlops deploy iris-classifier            # starts the local Triton, loads v1, waits until READY
mlops deploy iris-classifier            # identical: nothing to do
mlops deploy tiny-lm
mlops route set acme iris-classifier @production
mlops invoke iris-classifier --tenant acme --input '{"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.6, 2.4]]}'
mlops invoke tiny-lm --tenant acme --stream --input '{"prompt": "the model", "max_tokens": 12}'
mlops invoke tiny-lm --tenant acme --stream --protocol grpc --input '{"prompt": "each tenant", "max_tokens": 8}'
# a new version: loaded beside v1, @production switched once it is READY, v1 drained and unloaded
echo "# v2" >> iris-classifier/model.py
mlops register iris-classifier
mlops deploy iris-classifier@2
mlops route resolve acme iris-classifier
mlops profile iris-classifier@2 --requests 20
# load test the deployed version; exit 3 if the SLA is missed
mlops perftest iris-classifier --concurrency 1,4 --duration 3s --sla "p99<250ms,error_rate<0.1%" --report perf
mlops perftest tiny-lm --stream --requests 20 --template '{"prompt": "the model {{i}}", "max_tokens": 6}'
ls perf
mlops status
mlops undeploy tiny-lm
mlops status
mlops init scaffolded --template triton-python
mlops package render "$uri" --format triton --out repository --device cpu
mlops package render "$uri" --format sagemaker --out iris.tar.gz
mlops local down
