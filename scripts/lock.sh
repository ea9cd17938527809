#!/usr/bin/env bash
# Resolve requirements/lock.txt, the exact versions (with hashes) that scripts/setup.sh
# installs: every extra of pyproject.toml plus the dev tools, for CPython 3.11 on
# x86_64 Linux (glibc >= 2.36, as Debian 12), with the CPU build of torch.
#
#   bash scripts/lock.sh            # add what pyproject.toml gained, keep every other pin
#   bash scripts/lock.sh --upgrade  # re-resolve everything to the newest releases
#
# `make upgrade-deps` runs the second form, reinstalls from the new lock and runs the
# suite: moving to new releases is a deliberate, tested step, never an accident of the
# day a machine was set up.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SEMCACHE_VENV:-.venv}
UV=${UV:-$VENV/bin/uv}
if [ ! -x "$UV" ]; then UV=$(command -v uv || true); fi
if [ -z "$UV" ]; then
  echo "[lock] uv not found: run 'make setup' first (the dev extra installs it)" >&2
  exit 2
fi
# PyTorch's CPU wheels are not on PyPI: they come from a local folder of wheels (this
# project's machines have /opt/wheels) or from PyTorch's own CPU wheel index, which
# SEMCACHE_TORCH_INDEX may name.
args=()
if [ -d "${SEMCACHE_WHEELS:-/opt/wheels}" ]; then args+=(--find-links "${SEMCACHE_WHEELS:-/opt/wheels}"); fi
if [ -n "${SEMCACHE_TORCH_INDEX:-}" ]; then args+=(--extra-index-url "$SEMCACHE_TORCH_INDEX" --index-strategy unsafe-best-match); fi
"$UV" pip compile pyproject.toml --extra all --extra dev \
  --constraint requirements/torch-cpu.txt --override requirements/overrides.txt \
  --python-version 3.11 --python-platform x86_64-manylinux_2_36 \
  --generate-hashes --no-emit-find-links --no-emit-index-url \
  --custom-compile-command "bash scripts/lock.sh" \
  "${args[@]}" "$@" -o requirements/lock.txt
echo "[lock] wrote requirements/lock.txt ($(grep -c '^[a-z0-9]' requirements/lock.txt) packages)"
