#!/usr/bin/env bash
# Mutation testing of the decision code with cargo-mutants (see
# tests/mutants/README.md, and .cargo/mutants.toml for the shared settings).
#
#   scripts/mutants.sh run [FILE...]   one cargo-mutants run per file (all of
#                                      FILES below when none is named), each
#                                      with the tests that exercise that file
#   scripts/mutants.sh check           fails on a survivor that README.md
#                                      does not explain
#   scripts/mutants.sh table           the per-file results as README rows
#
# MUTANTS_ITERATE=1 re-tests only what the last run of a file did not catch
# (cargo-mutants --iterate), after tests were added. MUTANTS_ARGS adds
# cargo-mutants options to every run (say `--list`); MUTANTS_NICE sets the
# niceness (default 19).
#
# One run per file, so an interrupted run still leaves usable results:
# target/mutants/<file>/mutants.out (caught.txt, missed.txt, timeout.txt,
# unviable.txt, and a log per mutant). Builds go to target/mutants/build
# (CARGO_TARGET_DIR), kept between runs so only this crate is rebuilt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

README=tests/mutants/README.md
OUT=target/mutants

# Most security-critical first.
FILES=(
  src/proxy/gate.rs
  src/proxy/canon.rs
  src/proxy/routes.rs
  src/proxy/enforce/mod.rs
  src/proxy/enforce/body.rs
  src/proxy/enforce/email.rs
  src/identity/headers.rs
  src/session/codec.rs
  src/auth/policy.rs
  src/auth/saml/response.rs
  src/auth/oidc/verify.rs
  src/auth/oidc/claims.rs
  src/proxy/host.rs
  src/proxy/forward_auth/mod.rs
)

# What `cargo test --lib` runs for a file's mutants (.cargo/mutants.toml adds
# `--lib`): the file's own unit tests and the unit tests of the code built on
# it. `-C --test -C it` would add the integration binary for a file whose
# behaviour is only tested there; none needs it today.
tests_for() {
  case "$1" in
    src/proxy/gate.rs) echo "-- proxy::gate:: proxy::routes::" ;;
    src/proxy/canon.rs) echo "-- proxy::canon:: proxy::routes:: proxy::enforce::" ;;
    src/proxy/routes.rs) echo "-- proxy::routes:: proxy::gate::" ;;
    src/proxy/enforce/*) echo "-- proxy::enforce::" ;;
    src/identity/headers.rs) echo "-- identity::headers::" ;;
    src/session/codec.rs) echo "-- session::codec::" ;;
    src/auth/policy.rs) echo "-- auth::policy::" ;;
    src/auth/saml/response.rs) echo "-- auth::saml::response::" ;;
    src/auth/oidc/*) echo "-- auth::oidc::" ;;
    src/proxy/host.rs) echo "-- proxy::host::" ;;
    src/proxy/forward_auth/*) echo "-- proxy::forward_auth::" ;;
    *) echo "no test filter for $1" >&2; return 1 ;;
  esac
}

slug() { echo "${1//\//_}"; }

# The survivor of a line in missed.txt, without its line and column (they
# move with every edit): `src/a.rs: replace f -> bool with true`.
strip_position() { sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /'; }

run() {
  local files=("$@")
  [ ${#files[@]} -gt 0 ] || files=("${FILES[@]}")
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/$OUT/build}"
  export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
  # No debug info for this crate (dependencies have none already): a
  # mutant's rebuild and link take a good part less.
  export CARGO_PROFILE_TEST_DEBUG="${CARGO_PROFILE_TEST_DEBUG:-0}"
  # Property tests run for every mutant: fewer cases than in `make test`
  # (the route readers' 2 x 3000 took half of a mutant's time).
  export PROPTEST_CASES="${PROPTEST_CASES:-300}"
  local f args
  for f in "${files[@]}"; do
    [ -f "$f" ] || { echo "no such file: $f" >&2; return 2; }
    read -r -a args <<<"$(tests_for "$f")"
    echo "== $f (cargo test --lib ${args[*]})"
    local dir="$OUT/$(slug "$f")"
    mkdir -p "$dir"
    # The shared settings with this one file as the scope (`--file` would add
    # to the configured globs, and `--re` does not filter every kind of
    # mutant in this version).
    { sed '/^examine_globs/,/^]/d' .cargo/mutants.toml; echo "examine_globs = [\"$f\"]"; } >"$dir/mutants.toml"
    # Exit codes: 2 = survivors, 3 = timeouts; `check` judges those. 1 and 4
    # (usage, baseline failure) stop the run.
    local rc=0
    local iterate=()
    [ -z "${MUTANTS_ITERATE:-}" ] || iterate=(--iterate)
    local commit
    commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo +changes)"
    nice -n "${MUTANTS_NICE:-19}" cargo mutants --jobs 1 --config "$dir/mutants.toml" \
      --output "$dir" "${iterate[@]}" ${MUTANTS_ARGS:-} -- "${args[@]}" || rc=$?
    case $rc in
      0 | 2 | 3) ;;
      *) echo "cargo-mutants failed on $f (exit $rc)" >&2; return $rc ;;
    esac
    [ -n "${MUTANTS_ITERATE:-}" ] || rm -f "$dir/outcomes.tsv"
    record "$dir"
    echo "$commit" >"$dir/commit"
    table_row "$f"
  done
}

# $dir/outcomes.tsv: the latest outcome of every mutant of the file, so a
# run with MUTANTS_ITERATE=1 (which re-tests only the survivors) adds to the
# full run before it instead of replacing it.
record() {
  local dir=$1 o new
  new="$(mktemp)"
  for o in caught missed timeout unviable; do
    [ ! -f "$dir/mutants.out/$o.txt" ] || sed "s/^/$o\t/" "$dir/mutants.out/$o.txt"
  done >"$new"
  if [ -f "$dir/outcomes.tsv" ]; then
    awk -F'\t' 'NR == FNR { seen[$2] = 1; print; next } !($2 in seen)' "$new" "$dir/outcomes.tsv" >"$new.all"
  else
    cp "$new" "$new.all"
  fi
  sort -t$'\t' -k2 "$new.all" >"$dir/outcomes.tsv"
  rm -f "$new" "$new.all"
}

outcomes() { awk -F'\t' -v o="$2" '$1 == o { print $2 }' "$1/outcomes.tsv"; }

table_row() {
  local dir="$OUT/$(slug "$1")"
  [ -f "$dir/outcomes.tsv" ] || [ ! -d "$dir/mutants.out" ] || record "$dir"
  if [ ! -f "$dir/outcomes.tsv" ]; then
    printf '| `%s` | not run | | | | | |\n' "$1"
    return
  fi
  local n o row=()
  for o in caught missed timeout unviable; do
    n="$(outcomes "$dir" "$o" | wc -l | tr -d ' ')"
    row+=("$n")
  done
  printf '| `%s` | %s | %s | %s | %s | %s | %s |\n' "$1" "$(cat "$dir/commit" 2>/dev/null || echo '?')" \
    "$((row[0] + row[1] + row[2] + row[3]))" "${row[@]}"
}

table() {
  echo "| file | commit | mutants | caught | missed | timeout | unviable |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  local f
  for f in "${FILES[@]}"; do table_row "$f"; done
}

check() {
  local f d line unexplained=0 missing=0
  for f in "${FILES[@]}"; do
    d="$OUT/$(slug "$f")"
    [ -f "$d/outcomes.tsv" ] || [ ! -d "$d/mutants.out" ] || record "$d"
    if [ ! -f "$d/outcomes.tsv" ]; then
      echo "not run: $f"
      missing=$((missing + 1))
      continue
    fi
    while IFS= read -r line; do
      if ! grep -qF -- "$line" "$README"; then
        echo "unexplained survivor: $line"
        unexplained=$((unexplained + 1))
      fi
    done < <(outcomes "$d" missed | strip_position)
  done
  echo "$unexplained unexplained survivor(s), $missing file(s) not run"
  [ "$unexplained" -eq 0 ]
}

cmd="${1:-run}"
shift || true
case "$cmd" in
  run) run "$@" ;;
  check) check ;;
  table) table ;;
  *) echo "usage: $0 run [FILE...] | check | table" >&2; exit 2 ;;
esac
