#!/usr/bin/env bash
# Installs what building and testing Portcullis needs on Debian 12, and nothing
# that is already there. Safe to run on every `make` (that is how `make test`
# and `make demo` work on a fresh machine): when all is present it prints nothing.
#
#   scripts/install-deps.sh           build + test dependencies
#   scripts/install-deps.sh --bench   also wrk and curl for benches/load.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."   # so rustup honours a toolchain file in the repo

bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    *) echo "usage: $0 [--bench]" >&2; exit 2 ;;
  esac
done

packages=(
  # Rust crates: cmake for libz-ng-sys (pingora), libclang-dev for bindgen over
  # the xmlsec headers (samael); the rest are the C libraries they link.
  build-essential pkg-config libssl-dev libxml2-dev libxmlsec1-dev libclang-dev cmake
  # Tests start throwaway clusters from /usr/lib/postgresql/*/bin.
  postgresql
  # The xmlsec1 CLI signs SAML fixtures in tests.
  xmlsec1
  # The openssl CLI makes throwaway CAs and certificates for the TLS tests.
  openssl
  # tests/it/login/browser.rs drives the login page in headless Chromium.
  chromium
  # tests/it/saml/interop.rs runs pysaml2's IdP from a virtualenv (Makefile).
  python3 python3-venv
  # tests/it/deploy/ runs examples/nginx and examples/caddy with the real
  # host proxies (nginx with auth_request; benches/load.sh uses it too).
  nginx caddy
)
# ...with playwright-core, which `make test` installs with npm. Node.js often
# comes from elsewhere (NodeSource, /usr/local), so ask the shell, not dpkg:
# Debian's npm would pull Debian's nodejs in beside a NodeSource one.
if ! command -v node >/dev/null 2>&1; then
  packages+=(nodejs npm)
elif ! command -v npm >/dev/null 2>&1; then
  packages+=(npm)
fi
# tests/it/scim/tester.rs runs scim2-tester (PyPI) from a venv that `make
# test` creates; like Node.js, Python may come from elsewhere, so ask it.
if ! command -v python3 >/dev/null 2>&1; then
  packages+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  packages+=(python3-venv)
fi
if ((bench)); then
  packages+=(wrk curl)
fi

say() { printf 'install-deps: %s\n' "$*"; }

# `dpkg -s` also succeeds for removed-but-not-purged packages, so check the
# status line. Captured into a variable rather than piped into `grep -q`: an
# early grep exit would SIGPIPE dpkg and, with pipefail, read as "missing".
installed() {
  local status
  status=$(dpkg -s "$1" 2>/dev/null) || return 1
  [[ $status == *$'\nStatus: install ok installed'* ]]
}

if ! command -v dpkg >/dev/null 2>&1; then
  say "not a Debian/Ubuntu system; install the equivalents of: ${packages[*]}" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
  if ((EUID == 0)); then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    say "missing packages and not root (no sudo). As root, run:" >&2
    echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  # apt's chatter goes to a log that is shown only when something fails.
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  if ! { "${sudo[@]}" apt-get update -q &&
         "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    say "apt-get failed (output above)" >&2
    exit 1
  fi
fi

# playwright-core (tests/browser/package.json) needs Node.js 20 or newer;
# Debian 12's own nodejs is 18.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
  say "Node.js 20 or newer is needed for the browser tests; found $(node --version 2>&1 || echo none)." >&2
  say "Install Node.js 20+ (e.g. from https://deb.nodesource.com) and run make test again." >&2
  exit 1
fi

# Rust toolchain: rustup puts cargo in ~/.cargo/bin, which non-login shells
# (CI, sudo) often lack on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install Rust with rustup (https://rustup.rs), toolchain 1.94 or newer" >&2
  exit 1
fi

# `make test` runs `cargo fmt --check` and `cargo clippy`; minimal rustup
# profiles ship without them.
for component in rustfmt clippy; do
  subcommand=${component/rustfmt/fmt}
  if ! cargo "$subcommand" --version >/dev/null 2>&1; then
    if ! command -v rustup >/dev/null 2>&1; then
      say "cargo $subcommand is missing and rustup is not available to add $component" >&2
      exit 1
    fi
    say "rustup component add $component"
    rustup component add "$component" >/dev/null
  fi
done
