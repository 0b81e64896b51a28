#!/usr/bin/env bash
# Installs everything Crosslink needs on Debian 12 (run as root): Debian packages that are missing,
# then the npm dependencies exactly as locked. Safe to run again; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium (Debian's own) is the web view's test browser, driven by playwright-core, which never
# downloads a browser of its own; fonts-dejavu-core gives its screenshots legible text, since
# --no-install-recommends leaves chromium's recommended fonts out.
need_pkgs=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in ${CROSSLINK_DEB_PACKAGES:-wireguard-tools wireguard-go nftables iproute2 iputils-ping iputils-arping fping libjemalloc2 iperf3 tcpdump conntrack netcat-openbsd postgresql procps debootstrap dpkg-repack systemd-container prometheus nebula pmacct rsyslog rsyslog-gnutls chromium fonts-dejavu-core}; do
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
  # pmacct (nfacctd) and rsyslog are only the flow-export tests' receivers, which run their own
  # instances on loopback ports. Their packages enable services (rsyslog under systemd; nfacctd,
  # pmacctd, sfacctd and uacctd through SysV links). Disable them, and stop them under a running
  # systemd; `systemctl disable` works without one, so a container's next boot starts none either.
  acct_units=()
  if [[ " ${need_pkgs[*]} " == *" pmacct "* ]]; then acct_units+=(nfacctd pmacctd sfacctd uacctd); fi
  if [[ " ${need_pkgs[*]} " == *" rsyslog "* ]]; then acct_units+=(rsyslog); fi
  if ((${#acct_units[@]})) && command -v systemctl >/dev/null; then
    if [ -d /run/systemd/system ]; then systemctl stop "${acct_units[@]}" >/dev/null 2>&1 || true; fi
    systemctl disable "${acct_units[@]}" >/dev/null 2>&1 || true
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
