#!/usr/bin/env bash
# A sagemaker-mms model on a SageMaker multi-model endpoint played by mme-local: build.py trains
# the model folder, mlops registers it, deploys it with endpoint.yaml (the version's model.tar.gz
# goes to the endpoint's S3 prefix; mme-local fetches it on the first call and loads it into a
# real multi-model-server with the SageMaker inference toolkit), invokes it through mlops and
# through boto3's sagemaker-runtime client unchanged, shows status, undeploys and stops.
#
#   bash run.sh      # runs in this folder's work/ (WORK=...), its .mlops/ workspace unless
#                    # MLOPS_WORKSPACE is set; KEEP=1 leaves the servers up
# S3: the one AWS_ENDPOINT_URL names, else a moto server this script starts on a free port and
# stops at the end (the `mme` and `dev` extras: multi-model-server needs a Java runtime).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
[[ -x "$REPO/.venv/bin/mlops" ]] && export PATH="$REPO/.venv/bin:$PATH"
WORK="${WORK:-$HERE/work}"
mkdir -p "$WORK"
cd "$WORK"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

moto=""
mme_was_up=0
cleanup() {
  if [[ "${KEEP:-0}" != 1 ]]; then
    [[ $mme_was_up -eq 0 ]] && { mlops local down --mme > /dev/null 2>&1 || true; }
    if [[ -n "$moto" ]]; then kill "$moto" 2> /dev/null || true; wait "$moto" 2> /dev/null || true; fi
  fi
}
trap cleanup EXIT

python3 "$HERE/build.py" --out "$WORK/iris-mms"

if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
  command -v moto_server > /dev/null || { echo "run.sh: set AWS_ENDPOINT_URL, or install moto[server] (the dev extra)" >&2; exit 1; }
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  port=$(free_port)
  moto_server -H 127.0.0.1 -p "$port" > moto.log 2>&1 &
  moto=$!
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -fs "$AWS_ENDPOINT_URL/moto-api/" > /dev/null 2>&1 && break; sleep 0.1; done
  echo "moto server $AWS_ENDPOINT_URL (pid $moto)"
fi
python3 - <<'PY'   # the bucket endpoint.yaml's s3_prefix names
import boto3
s3 = boto3.client("s3")
if "mlops-examples" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
    s3.create_bucket(Bucket="mlops-examples")
PY

mlops local status --mme > /dev/null 2>&1 && mme_was_up=1
set -x
mlops local up --mme            # reads S3 where AWS_ENDPOINT_URL points now
mlops validate iris-mms
mlops register iris-mms --alias production
mlops deploy iris-mms --target mme-local --endpoint "$HERE/endpoint.yaml" --dry-run
mlops deploy iris-mms --target mme-local --endpoint "$HERE/endpoint.yaml"
mlops invoke iris-mms --input '{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.6, 2.4]]}'
# An application's own boto3 code, unchanged but for the runtime endpoint it is pointed at.
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=$(mlops local status --mme --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])') \
  python3 - <<'PY'
import json

import boto3

runtime = boto3.client("sagemaker-runtime")
response = runtime.invoke_endpoint(
    EndpointName="iris-mme",
    TargetModel="iris-mms-v1.tar.gz",
    ContentType="application/json",
    Body=json.dumps({"inputs": [[5.9, 2.8, 4.3, 1.3]]}),
)
print("boto3:", json.loads(response["Body"].read()))
PY
mlops status
mlops local status --mme
mlops undeploy iris-mms --target mme-local --endpoint "$HERE/endpoint.yaml"
set +x
