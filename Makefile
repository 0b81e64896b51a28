# Crosslink. `make demo` and `make test` are the two commands in the README; both set up what they need.
SHELL := /bin/bash
NODE  := node

.PHONY: setup build test lint typecheck unit demo demo-down demo-web check-policy proto clean bench

setup:
	@bash scripts/setup.sh

# dist/: the compiled tree (dist/cli/main.js, every command) and dist/crosslink-agent.cjs, the agent
# commands (cli/agent-main.ts) bundled into one CommonJS file with their npm dependencies. The
# package's /usr/bin/crosslink runs the bundle for `crosslink agent …`, so the long-running agent
# loads one file instead of ~100 ES modules: less memory, faster start (docs/performance.md, "Agent").
# It is made from the compiled JavaScript (esbuild follows tsc's source maps to the .ts files).
# CommonJS has no import.meta.url: each module that reads it (lib/version.ts, yargs) gets the
# bundle's own URL, so lib/version.ts finds package.json one directory up, as from dist/lib/. The
# banner's 'use strict' comes first: ES modules are strict, and after the banner esbuild's own
# directive would be a plain statement. --inject: the bundled code's global `Headers` is
# lib/light-headers.ts, not undici's, whose first use loads node's fetch (~4 MB of the agent's RSS).
AGENT_BUNDLE := dist/crosslink-agent.cjs
AGENT_BUNDLE_FLAGS := --bundle --platform=node --format=cjs --target=node20 --sourcemap --log-level=warning \
	--inject:dist/lib/light-headers.js \
	--define:import.meta.url=__crosslink_bundle_url \
	"--banner:js='use strict'; const __crosslink_bundle_url = require('node:url').pathToFileURL(__filename).href;"

# dist/ui/: the web view (controller/ui/web, Preact) as one minified ES module and its stylesheet, served by
# the controller at /ui/assets/. Everything is in the package: the page loads nothing from elsewhere.
UI_BUNDLE_FLAGS := --bundle --format=esm --minify --sourcemap --target=chrome100,firefox100,safari15 \
	--jsx=automatic --jsx-import-source=preact --log-level=warning

dist/.built: $(shell find lib proto controller agent cli bench test/testbed -name '*.ts' -o -name '*.tsx' -o -name '*.css' 2>/dev/null) tsconfig.json tsconfig.build.json package-lock.json
	@npx tsc -p tsconfig.build.json
	@chmod +x dist/cli/main.js
	@# The web view first: the agent bundle must be the newest file of dist (build-deb.sh checks).
	@node_modules/.bin/esbuild controller/ui/web/main.tsx $(UI_BUNDLE_FLAGS) --outfile=dist/ui/app.js
	@cp controller/ui/web/app.css dist/ui/app.css
	@node_modules/.bin/esbuild dist/cli/agent-main.js $(AGENT_BUNDLE_FLAGS) --outfile=$(AGENT_BUNDLE)
	@touch $@

build: setup dist/.built

lint: setup
	@npx eslint .
	@npx prettier --check --log-level warn .

typecheck: setup
	@npx tsc -p tsconfig.json --noEmit
	@npx tsc -p controller/ui/web/tsconfig.json

# Every test: lint, type check, then all tap suites (unit, integration in namespaces, end to end).
# Three runs: everything else two files at a time; then the end-to-end fleets (test/e2e, and the web
# view's browser test on the demo's network) one at a time, because each runs seven agents and times
# real traffic and failover, and two of them side by side on 2 cores starved each other's liveness
# echo (a relayed flow was judged down for 30 s in a CI run); then the Debian package test
# (debootstrap root, systemd-nspawn boot), which loads both cores.
E2E_TESTS := test/e2e/*.test.ts test/ui/web.test.ts
test: setup lint typecheck build
	@rc=0; npx tap --exclude=test/deploy/deb.test.ts --exclude='test/e2e/**' --exclude=test/ui/web.test.ts $(TAP_ARGS) || rc=$$?; \
	  npx tap --jobs=1 $(E2E_TESTS) || rc=$$?; \
	  npx tap test/deploy/deb.test.ts || rc=$$?; exit $$rc

demo: build
	@bash scripts/demo.sh

demo-down:
	@bash scripts/demo.sh down

# The running demo's web view on https://127.0.0.1:8443/ui/ of this host (PORT=… to change).
demo-web:
	@bash scripts/demo.sh web $(PORT)

proto: setup
	@npx buf generate

clean:
	rm -rf dist .tap

# Debian package build/crosslink_<version>_<arch>.deb (scripts/build-deb.sh; docs/deploying-an-agent.md).
.PHONY: deb
deb: build
	@bash scripts/build-deb.sh
