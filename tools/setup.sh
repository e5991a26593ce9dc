#!/usr/bin/env bash
# Prepares a fresh Debian machine for fedgate: the Debian packages the tests start (redis-server,
# docker-compose for validating docker-compose.yml, prometheus for promtool and a Prometheus that
# evaluates the alert rules), then the pinned npm packages and a build.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}"; then
    $sudo apt-get update -qq
    $sudo apt-get install -y --no-install-recommends "${missing[@]}"
  fi
  # Debian's prometheus package enables prometheus.service, which listens on :9090 on every
  # interface. The tests need only the binaries (they start their own Prometheus on a free loopback
  # port), so a service this script brought in is stopped and disabled where systemd runs.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now prometheus.service || true
  fi
fi

# The system redis-server may be started by the package; fedgate's tests start their own on free
# ports and never touch 6379, so it is left alone.
npm ci --no-audit --no-fund
npm run build
