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
  # The web view from this host: the controller lives in its namespace. One forwarder inside it
  # (unix socket -> the controller's address), one here (127.0.0.1:PORT -> that socket); TLS passes
  # through untouched. Both stop with Ctrl-C.
  web)
    env=/tmp/crosslink-testbed-xldemo/env port="${2:-8443}"
    [ -f "$env" ] || { echo "demo web: no running demo ($env missing); run make demo first" >&2; exit 1; }
    # shellcheck disable=SC1090
    source "$env"
    hostport=${CROSSLINK_CONTROLLER#https://}
    sock=$(mktemp -u /tmp/crosslink-demo-web.XXXXXX.sock)
    pipe='const net = require("net"); const [from, to] = process.argv.slice(1);
      const target = to.includes(":") ? { host: to.split(":")[0], port: Number(to.split(":")[1]) } : { path: to };
      const server = net.createServer((c) => { const u = net.connect(target); c.pipe(u).pipe(c);
        const end = () => { c.destroy(); u.destroy(); }; for (const s of [c, u]) { s.on("error", end); s.on("close", end); } });
      if (/^[0-9]+$/.test(from)) server.listen(Number(from), "127.0.0.1"); else server.listen(from);'
    ip netns exec xldemo-controller node -e "$pipe" "$sock" "$hostport" & inner=$!
    trap 'kill "$inner" 2>/dev/null; rm -f "$sock"' EXIT
    for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
    echo "web view: https://127.0.0.1:$port/ui/  (Ctrl-C stops the forwarders; the demo keeps running)"
    echo "  sign in with CROSSLINK_TOKEN from $env; the browser warns: the certificate is"
    echo "  the demo controller's own CA (sha256 $CROSSLINK_CA_FINGERPRINT)"
    node -e "$pipe" "$port" "$sock" ;;
  *)    echo "usage: scripts/demo.sh [up|down|web [PORT]]" >&2; exit 2 ;;
esac
