#!/usr/bin/env bash
# Install what the tests need (scripts/bootstrap.sh), then run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
