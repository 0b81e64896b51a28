#!/usr/bin/env bash
# Builds build/crosslink_<version>_<arch>.deb from the compiled tree (run `make build` first, or
# `make deb`, which does). The package holds dist/ (without the benchmarks and the test bed; with
# dist/crosslink-agent.cjs, the agent commands bundled into one file, which the wrapper runs for
# `crosslink agent …`), production node_modules installed from the lock file (the controller and
# the other commands load them; the agent bundle carries its own), the `crosslink` wrapper, the systemd units,
# the example configs (conffiles) and the docs. The only network it uses is the npm registry
# (`npm ci`, usually served from npm's cache).
#
# Environment:
#   CROSSLINK_DEB_OUT       output directory (default: build)
#   CROSSLINK_DEB_COMPRESS  dpkg-deb compressor: xz (default, smallest), gzip (fastest), zstd, none
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$(pwd)
start=$(date +%s)

out=${CROSSLINK_DEB_OUT:-build}
compress=${CROSSLINK_DEB_COMPRESS:-xz}
version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
pkg=crosslink
deb="$out/${pkg}_${version}_${arch}.deb"

for f in dist/cli/main.js dist/crosslink-agent.cjs deploy/systemd/crosslink-agent.service deploy/config/agent.yaml; do
  [ -e "$f" ] || { echo "build-deb: $f is missing (run make build)" >&2; exit 1; }
done
# The agent bundle is made from the compiled tree; compiled again without it (tsc alone), it is stale.
if [ -n "$(find dist -name '*.js' -newer dist/crosslink-agent.cjs -print -quit)" ]; then
  echo "build-deb: dist/crosslink-agent.cjs is older than the compiled tree (run make build)" >&2
  exit 1
fi

mkdir -p "$out"
stage=$(mktemp -d "$out/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage" # it becomes the target's /; mktemp made it 0700
lib="$stage/usr/lib/$pkg"
install -d "$lib" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/$pkg" \
  "$stage/usr/share/doc/$pkg/examples" "$stage/DEBIAN"

# --- the program: compiled JavaScript and the package manifest (lib/version.ts reads it).
cp -a dist "$lib/dist"
rm -rf "$lib/dist/bench" "$lib/dist/test" "$lib/dist/.built"
# Tests and test support (README "Development": *.fixture.ts, *.contract.ts, fake-*.ts); the build
# leaves most out, but the benchmarks pull some fixtures in.
find "$lib/dist" -regextype posix-extended -regex '.*(\.test|\.fixture|\.contract|/fake-[^/]*)\.(js|js\.map|d\.ts)' -delete
# What we left out must not be needed by what we ship.
left_out="from '((\.\./)+(bench|test)/|[^']*(\.fixture|\.contract|/fake-[^/']*)\.js')"
if grep -rlE "$left_out" "$lib/dist" --include='*.js' >/dev/null; then
  echo "build-deb: shipped code imports from bench/, test/ or test support:" >&2
  grep -rlE "$left_out" "$lib/dist" --include='*.js' >&2
  exit 1
fi
cp package.json package-lock.json "$lib/"

# --- production dependencies exactly as locked. Install scripts are skipped: the only production
# dependency with one is better-sqlite3 (native), and its addon is taken from the tree's
# node_modules, which setup.sh built for this very node; it is then loaded to prove the ABI matches.
# If it does not load, it is compiled here from source (about a minute).
(cd "$lib" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node
if [ -d "$lib/node_modules/better-sqlite3" ]; then
  if [ -f "$addon" ]; then
    install -D -m 0644 "$addon" "$lib/$addon"
  fi
  if ! (cd "$lib" && node -e 'new (require("better-sqlite3"))(":memory:").prepare("select 1").get()') 2>/dev/null; then
    echo "build-deb: compiling better-sqlite3 for node $(node --version)"
    (cd "$lib" && npm rebuild better-sqlite3 --loglevel=error)
    (cd "$lib" && node -e 'new (require("better-sqlite3"))(":memory:").prepare("select 1").get()')
  fi
  # Only the addon is needed at run time, not the object files, the static library or the
  # SQLite sources it was built from.
  find "$lib/node_modules/better-sqlite3/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
  find "$lib/node_modules/better-sqlite3/build/Release" -mindepth 1 ! -name better_sqlite3.node -exec rm -rf {} +
  rm -rf "$lib/node_modules/better-sqlite3/deps" "$lib/node_modules/better-sqlite3/src"
fi
rm -f "$lib/node_modules/.package-lock.json"

# --- /usr/bin/crosslink: a wrapper rather than a symlink, so the program runs with the packaged
# dependency's /usr/bin/node and not whatever `node` comes first on PATH (the shebang's choice).
# `crosslink agent …` (the crosslink-agent unit's ExecStart included) runs the agent bundle: the
# same commands, help and exit codes, in less memory; everything else runs the full CLI.
cat > "$stage/usr/bin/$pkg" <<'EOF'
#!/bin/sh
# Installed by the crosslink package. Agent commands run the one-file agent bundle (less memory
# for the long-running agent); /usr/share/doc/crosslink/deploying-an-agent.md.
if [ "${1-}" = agent ]; then
  exec /usr/bin/node /usr/lib/crosslink/dist/crosslink-agent.cjs "$@"
fi
exec /usr/bin/node /usr/lib/crosslink/dist/cli/main.js "$@"
EOF
chmod 0755 "$stage/usr/bin/$pkg"

# --- crosslink(1), built from the commands' own help, and the bash completion.
install -d "$stage/usr/share/man/man1" "$stage/usr/share/bash-completion/completions"
node dist/cli/man-page.js dist/cli/main.js | gzip -9n > "$stage/usr/share/man/man1/$pkg.1.gz"
node dist/cli/main.js completion > "$stage/usr/share/bash-completion/completions/$pkg"
chmod 0644 "$stage/usr/share/man/man1/$pkg.1.gz" "$stage/usr/share/bash-completion/completions/$pkg"

# --- systemd units, example configs (conffiles), docs and example policies.
install -m 0644 deploy/systemd/*.service deploy/systemd/*.timer "$stage/lib/systemd/system/"
install -m 0644 deploy/config/agent.yaml deploy/config/controller.yaml deploy/config/check.env "$stage/etc/$pkg/"
install -m 0644 README.md "$stage/usr/share/doc/$pkg/"
if compgen -G 'docs/*.md' >/dev/null; then install -m 0644 docs/*.md "$stage/usr/share/doc/$pkg/"; fi
if compgen -G 'examples/*' >/dev/null; then cp -r examples/. "$stage/usr/share/doc/$pkg/examples/"; fi
cat > "$stage/usr/share/doc/$pkg/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: crosslink
Comment: /usr/lib/crosslink/node_modules holds third-party npm packages, each with its own
 licence file in its directory.

Files: *
Copyright: Crosslink contributors
License: $(node -p 'require("./package.json").license')
EOF
find "$stage/usr/share/doc/$pkg" -type d -exec chmod 0755 {} + ; find "$stage/usr/share/doc/$pkg" -type f -exec chmod 0644 {} +

# --- control data.
installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<EOF
Package: $pkg
Version: $version
Architecture: $arch
Maintainer: Crosslink maintainers <crosslink@localhost>
Installed-Size: $installed_kb
Depends: nodejs (>= 20), wireguard-tools, nftables, conntrack, tcpdump, iproute2, fping, iputils-ping, iputils-arping, procps, passwd, libjemalloc2
Recommends: wireguard-go
Section: net
Priority: optional
Description: links selected subnets of two networks through a WireGuard overlay
 Crosslink links selected subnets of the NHS N3/HSCN network and a council's PSN
 through an encrypted WireGuard overlay between edge boxes, under one reviewed,
 audited, allow-only policy. This package holds the agent (run on each edge
 box), the controller and the crosslink command. No service is enabled or
 started on installation: edit /etc/crosslink/agent.yaml or controller.yaml,
 then "systemctl enable --now crosslink-agent" (or crosslink-controller).
EOF
printf '/etc/%s/%s\n' "$pkg" agent.yaml "$pkg" controller.yaml "$pkg" check.env > "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "deploy/debian/$s" "$stage/DEBIAN/$s"; done

# Reproducible-ish: same mtimes for everything from the same commit.
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
find "$stage" -exec touch -h -d "@$epoch" {} +

dpkg-deb --root-owner-group -Z"$compress" --build "$stage" "$deb" >/dev/null
echo "build-deb: $deb ($(du -h "$deb" | cut -f1), installed ${installed_kb} KiB) in $(( $(date +%s) - start )) s"
