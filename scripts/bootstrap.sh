#!/usr/bin/env bash
# Set up everything mlops and its tests need on a fresh machine, idempotently:
# a Java runtime (for multi-model-server), chromium (for the HTML report test) and .venv with
# mlops and all its extras.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: mlops needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2
  exit 1
fi

if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing a Java runtime for multi-model-server" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null
  else
    echo "warning: no java on PATH; multi-model-server tests will fail (install a Java 11+ runtime)" >&2
  fi
fi

# Headless Chromium: the perftest HTML report test opens the report in it.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the HTML report test" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "warning: no chromium on PATH; the perftest HTML report test will fail in CI" >&2
  fi
fi

stamp=".venv/.mlops-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[triton,mme,dev]"
  rm -f .venv/.mlops-installed-*
  touch "$stamp"
fi
