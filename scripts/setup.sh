#!/usr/bin/env bash
# Installs everything Crosslink needs on Debian 12 (run as root): Debian packages that are missing,
# then the npm dependencies exactly as locked. Safe to run again; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in ${CROSSLINK_DEB_PACKAGES:-wireguard-tools wireguard-go nftables iproute2 iputils-ping iputils-arping fping iperf3 tcpdump conntrack netcat-openbsd postgresql procps debootstrap dpkg-repack systemd-container prometheus nebula}; do
  have "$p" || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to install: ${need_pkgs[*]}" >&2; exit 1; fi
  echo "setup: installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  # PostgreSQL and Prometheus come as services that start at boot; Crosslink uses neither (the tests
  # run their own PostgreSQL, scripts/postgres-test.sh, and only promtool of Prometheus). Stop and
  # disable the ones this run installed; one that was there before is left as it was.
  if [ -d /run/systemd/system ]; then
    for svc in postgresql prometheus; do
      if [[ " ${need_pkgs[*]} " == *" $svc "* ]]; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    done
  fi
fi

if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "setup: Node.js >= 20.19 is required (found: $(node --version 2>/dev/null || echo none))" >&2; exit 1
fi

stamp=node_modules/.crosslink-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: npm ci"
  npm ci --no-fund --no-audit --loglevel=error
  cp package-lock.json "$stamp"
fi
