#!/bin/sh
# Creates an empty stand-in for every target Cargo.toml declares ([lib],
# [[bin]], [[bench]], [[test]], [[example]], at `path` or cargo's default
# place for the name), so the Dockerfile's dependency layer can build from
# the manifest alone. Derived from the manifest rather than listed by hand:
# a target added later cannot make cargo refuse the manifest ("can't find
# bench"). POSIX sh and awk, because RUN uses the image's /bin/sh (dash) and
# mawk. Run from the directory holding Cargo.toml.
set -eu

awk '
function value(line) {
  sub(/^[^=]*=[ \t]*["\047]/, "", line)
  sub(/["\047].*$/, "", line)
  return line
}
function flush() {
  if (kind == "") return
  if (path == "") {
    if (kind == "lib") path = "src/lib.rs"
    else if (kind == "bin") path = "src/bin/" name ".rs"
    else if (kind == "bench") path = "benches/" name ".rs"
    else if (kind == "test") path = "tests/" name ".rs"
    else path = "examples/" name ".rs"
  }
  print kind, path
  kind = ""
}
/^[ \t]*\[/ { flush(); name = ""; path = "" }
/^[ \t]*\[lib\][ \t]*(#.*)?$/ { kind = "lib"; next }
/^[ \t]*\[\[(bin|bench|test|example)\]\][ \t]*(#.*)?$/ {
  kind = $0
  gsub(/[^a-z]/, "", kind)
  next
}
kind != "" && /^[ \t]*name[ \t]*=/ { name = value($0) }
kind != "" && /^[ \t]*path[ \t]*=/ { path = value($0) }
END { flush() }
' Cargo.toml | while read -r kind path; do
  mkdir -p "$(dirname "$path")"
  if [ "$kind" = lib ]; then
    : >"$path"
  else
    echo 'fn main() {}' >"$path"
  fi
done
