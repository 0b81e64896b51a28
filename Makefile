# Crosslink. `make demo` and `make test` are the two commands in the README; both set up what they need.
SHELL := /bin/bash
NODE  := node

.PHONY: setup build test lint typecheck unit demo demo-down check-policy proto clean bench

setup:
	@bash scripts/setup.sh

dist/.built: $(shell find lib proto controller agent cli bench test/testbed -name '*.ts' 2>/dev/null) tsconfig.json tsconfig.build.json package-lock.json
	@npx tsc -p tsconfig.build.json
	@chmod +x dist/cli/main.js
	@touch $@

build: setup dist/.built

lint: setup
	@npx eslint .

typecheck: setup
	@npx tsc -p tsconfig.json --noEmit

# Every test: lint, type check, then all tap suites (unit, integration in namespaces, end to end).
# The Debian package test (debootstrap root, systemd-nspawn boot) runs on its own afterwards: it
# loads both cores, and the namespace end-to-end tests time real traffic.
test: setup lint typecheck build
	@rc=0; npx tap --exclude=test/deploy/deb.test.ts $(TAP_ARGS) || rc=$$?; \
	  npx tap test/deploy/deb.test.ts || rc=$$?; exit $$rc

demo: build
	@bash scripts/demo.sh

demo-down:
	@bash scripts/demo.sh down

proto: setup
	@npx buf generate

clean:
	rm -rf dist .tap

# Debian package build/crosslink_<version>_<arch>.deb (scripts/build-deb.sh; docs/deploying-an-agent.md).
.PHONY: deb
deb: build
	@bash scripts/build-deb.sh
