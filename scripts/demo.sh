#!/usr/bin/env bash
# `make demo` / `make demo-down`: the Leeds example in network namespaces on this machine
# (test/demo/leeds-demo.ts). Needs root; `make demo` runs setup and build first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "make demo: run as root (network namespaces need it), e.g. sudo make demo" >&2
  exit 1
fi
case "${1:-up}" in
  up)   exec node --import ./bench/register.js test/demo/leeds-demo.ts up ;;
  down) exec node --import ./bench/register.js test/demo/leeds-demo.ts down ;;
  *)    echo "usage: scripts/demo.sh [up|down]" >&2; exit 2 ;;
esac
