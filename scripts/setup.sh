#!/usr/bin/env bash
# Set up everything semcache needs on a fresh Debian/Python 3.11 machine, idempotently:
# a virtualenv in .venv holding exactly the versions of requirements/lock.txt (every
# extra, the dev tools and the CPU build of torch, with hashes: what the suite last
# passed with), the package itself (editable), the ONNX export of the default embedding
# model, and the test servers' binaries. Re-running it is cheap: uv's cache, a stamp of
# the inputs and the services' install folder are reused. `make upgrade-deps` moves the
# lock to newer releases (scripts/lock.sh --upgrade) and runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${SEMCACHE_VENV:-.venv}
LOCK=requirements/lock.txt
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.semcache-setup"
want=$(cat pyproject.toml "$LOCK" scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing the $(grep -c '^[a-z0-9]' "$LOCK") pinned packages of $LOCK"
  # uv installs the lock (pip takes minutes for the same set); its own version is the
  # lock's too
  "$PY" -m pip install -q "$(grep -m1 -o '^uv==[^ ]*' "$LOCK")"
  # PyTorch's CPU wheel is not on PyPI: this project's machines keep it in /opt/wheels
  # (SEMCACHE_WHEELS); elsewhere name PyTorch's CPU wheel index in SEMCACHE_TORCH_INDEX
  src=()
  if [ -d "${SEMCACHE_WHEELS:-/opt/wheels}" ]; then src+=(--find-links "${SEMCACHE_WHEELS:-/opt/wheels}"); fi
  if [ -n "${SEMCACHE_TORCH_INDEX:-}" ]; then src+=(--extra-index-url "$SEMCACHE_TORCH_INDEX" --index-strategy unsafe-best-match); fi
  "$VENV/bin/uv" pip sync -q --python "$PY" --require-hashes "${src[@]}" "$LOCK"
  "$VENV/bin/uv" pip install -q --python "$PY" --no-deps -e .
  echo "$want" > "$stamp"
else
  echo "[setup] Python packages up to date with $LOCK"
fi

# all-MiniLM-L6-v2 exported to ONNX once (cached under ~/.cache/semcache, idempotent),
# so the first semantic lookup does not pay for the export
"$PY" -m semcache.embedders.onnx export >/dev/null

if [ "${SEMCACHE_SKIP_SERVICES:-0}" != "1" ]; then
  bash scripts/services.sh install          # Redis Stack, Redis Cluster, S3, GCS, Azurite
  sh scripts/install_chromium.sh            # headless browser for the dashboard test
fi
echo "[setup] done: $VENV"
