# Developer entry points. `make test` and `make demo` (the two commands in the
# README) set up a fresh Debian machine themselves via scripts/install-deps.sh,
# which does nothing when everything is already installed.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-builtin-rules

# rustup installs cargo into ~/.cargo/bin, which fresh non-login shells (CI,
# sudo) may not have on PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO ?= cargo

.PHONY: deps build demo test bench mutants fmt clippy clean scim2-tester

deps:
	bash scripts/install-deps.sh

build: deps
	$(CARGO) build --locked

# The demo needs no config file; it listens on http://127.0.0.1:8080.
demo: deps
	$(CARGO) run --locked -- demo

# playwright-core for tests/it/login/browser.rs, exactly as locked. Re-run only when
# the lockfile changes (npm ci rewrites node_modules/.package-lock.json), so
# a second `make test` needs no network. Silent unless it fails (its summary
# goes to stdout, errors to stderr). No install scripts: the browser is
# Debian's chromium, never a download.
BROWSER_MODULES := tests/browser/node_modules/.package-lock.json
$(BROWSER_MODULES): tests/browser/package.json tests/browser/package-lock.json | deps
	npm ci --prefix tests/browser --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null

# scim2-tester (PyPI) for tests/it/scim/tester.rs, exactly the pinned
# versions, in a venv of its own. Re-run only when the requirements change.
SCIM_TESTER := tests/scim2-tester/.venv/.installed
$(SCIM_TESTER): tests/scim2-tester/requirements.txt | deps
	rm -rf tests/scim2-tester/.venv
	python3 -m venv tests/scim2-tester/.venv
	tests/scim2-tester/.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/scim2-tester/requirements.txt
	touch $@

scim2-tester: $(SCIM_TESTER)

# pysaml2 (the third-party IdP of tests/it/saml/interop.rs), pinned, in its own
# virtualenv; rebuilt only when the requirements change. Quiet unless it fails.
PYSAML2_VENV := tests/pysaml2/.venv/.installed
$(PYSAML2_VENV): tests/pysaml2/requirements.txt | deps
	rm -rf tests/pysaml2/.venv
	python3 -m venv tests/pysaml2/.venv
	tests/pysaml2/.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/pysaml2/requirements.txt
	touch $@

# kubernetes-validate (tests/it/deploy/kubernetes.rs validates
# examples/kubernetes/ with it), pinned, in its own virtualenv; rebuilt only
# when the requirements change. The schemas ship inside the package, so only
# this install needs the network, never the test.
KUBE_VALIDATE := tests/kubernetes/.venv/.installed
$(KUBE_VALIDATE): tests/kubernetes/requirements.txt | deps
	rm -rf tests/kubernetes/.venv
	python3 -m venv tests/kubernetes/.venv
	tests/kubernetes/.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/kubernetes/requirements.txt
	touch $@

# panva's oidc-provider for tests/it/oidc/interop.rs, exactly as locked
# (pure JavaScript; no install scripts).
OIDC_OP_MODULES := tests/oidc-provider/node_modules/.package-lock.json
$(OIDC_OP_MODULES): tests/oidc-provider/package.json tests/oidc-provider/package-lock.json | deps
	npm ci --prefix tests/oidc-provider --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null

# Kept plain on purpose: every line of test output is cargo's own.
test: deps $(BROWSER_MODULES) $(OIDC_OP_MODULES) $(SCIM_TESTER) $(PYSAML2_VENV) $(KUBE_VALIDATE)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) test --locked --workspace

# Micro-benchmark of the auth gate, then the end-to-end comparison with nginx
# (benches/load.sh exits non-zero when Portcullis is too far behind).
bench:
	bash scripts/install-deps.sh --bench
	$(CARGO) bench --locked --bench hot_path
	$(CARGO) bench --locked --bench saml_acs
	$(CARGO) bench --locked --bench scim
	$(CARGO) bench --locked --bench webhooks
	bash benches/load.sh

# Mutation testing of the decision code (tests/mutants/README.md): too slow
# for CI. `make mutants FILES="src/proxy/gate.rs"` runs only those files.
# cargo-mutants is pinned; it is built from crates.io when missing or another
# version.
MUTANTS_VERSION := 27.1.0
FILES ?=
mutants: deps
	@cargo-mutants mutants --version 2>/dev/null | grep -qx 'cargo-mutants $(MUTANTS_VERSION)' \
	  || $(CARGO) install --locked cargo-mutants@$(MUTANTS_VERSION)
	bash scripts/mutants.sh run $(FILES)
	bash scripts/mutants.sh table
	bash scripts/mutants.sh check

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --locked --all-targets -- -D warnings

clean:
	$(CARGO) clean
