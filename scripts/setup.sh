#!/usr/bin/env bash
# Set up everything semcache needs on a fresh Debian/Python 3.11 machine, idempotently:
# a virtualenv in .venv, the CPU build of torch (pinned: an unpinned torch pulls
# gigabytes of CUDA), the package with every extra, the ONNX export of the default
# embedding model, and the test servers' binaries. Re-running it is cheap: pip's cache,
# a stamp of the inputs and the services' install folder are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${SEMCACHE_VENV:-.venv}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.semcache-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing Python packages (torch CPU build first)"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q "torch==2.13.0"
  "$PY" -m pip install -q -e ".[all,dev]"
  echo "$want" > "$stamp"
else
  echo "[setup] Python packages up to date"
fi

# all-MiniLM-L6-v2 exported to ONNX once (cached under ~/.cache/semcache, idempotent),
# so the first semantic lookup does not pay for the export
"$PY" -m semcache.embedders.onnx export >/dev/null

if [ "${SEMCACHE_SKIP_SERVICES:-0}" != "1" ]; then
  bash scripts/services.sh install          # Redis Stack, Redis Cluster, S3, GCS, Azurite
  sh scripts/install_chromium.sh            # headless browser for the dashboard test
fi
echo "[setup] done: $VENV"
