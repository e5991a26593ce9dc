#!/usr/bin/env bash
# Prepares a fresh Debian machine for fedgate: the Debian packages the tests start (redis-server,
# docker-compose for validating docker-compose.yml, prometheus for promtool and a Prometheus that
# evaluates the alert rules, zsh for running the zsh completion script, iproute2 and nftables for
# the network-namespace lab of partition drills, curl for the README walkthrough), then the pinned npm packages and a build.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
# `ip netns` and veth pairs build the lab; nft drops a partitioned cluster's packets inside its namespace.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
# The README walkthrough waits for readiness and calls the sample service with curl.
command -v curl >/dev/null 2>&1 || missing+=(curl)
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
