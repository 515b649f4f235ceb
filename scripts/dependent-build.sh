#!/usr/bin/env bash
# Builds a throw-away crate that depends on xtcp (path dependency) the way a new user's crate
# would: from a temporary directory outside the workspace, with a clean environment (env -i,
# PATH and HOME only: no CLANG, no RUSTFLAGS, no cargo config of ours), and the README's engine
# example as its main.rs. Build only: the example needs root and a veth to run.
#
#   scripts/dependent-build.sh
#
# Target directory: the workspace's own target/ (CARGO_TARGET_DIR), so dependencies already
# compiled for the workspace are reused; set XTCP_DEPENDENT_FRESH=1 to build everything in the
# temporary directory instead (a few minutes on 2 cores). The workspace's Cargo.lock is copied
# in, so the dependent crate resolves the same versions without asking the registry.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/xtcp-dependent.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
app=$tmp/app
mkdir -p "$app/src"

cat >"$app/Cargo.toml" <<TOML
[package]
name = "xtcp-dependent-check"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
xtcp = { path = "$root/stack" }

# Not part of any workspace above the temporary directory.
[workspace]
TOML

# The README's engine example: the first rust code block that starts the engine. It is written
# doctest-style (statements with `?`), so it becomes the body of a fallible main.
example=$(awk '
  /^```rust/ { inblock = 1; buf = ""; next }
  /^```/ && inblock { inblock = 0; if (buf ~ /Engine::start/) { printf "%s", buf; exit } next }
  inblock { buf = buf $0 "\n" }
' "$root/README.md")
if [ -z "$example" ]; then
  echo "dependent-build: no rust block with Engine::start in README.md" >&2
  exit 1
fi
{
  echo "#![allow(unused_variables)]"
  echo "fn main() -> Result<(), Box<dyn std::error::Error>> {"
  echo "$example"
  echo "Ok(())"
  echo "}"
} >"$app/src/main.rs"
cp "$root/Cargo.lock" "$app/Cargo.lock"

target=$root/target
[ "${XTCP_DEPENDENT_FRESH:-0}" = 1 ] && target=$tmp/target
cd "$app"
if env -i PATH="$PATH" HOME="$HOME" CARGO_TARGET_DIR="$target" cargo build --release --quiet; then
  echo "dependent-build: a crate outside the workspace builds xtcp and the README example (clean env, target $target)"
else
  echo "dependent-build: FAILED to build a crate depending on xtcp (see above)" >&2
  exit 1
fi
