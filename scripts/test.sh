#!/usr/bin/env bash
# Everything CI checks, from a fresh clone: installs the wasm target and the
# pinned Python/JavaScript policy toolchains, builds every policy component,
# runs each seed policy's cases through `lethe policy test`, then the Rust
# test suites (SQLite and PostgreSQL), formatting and lints.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*" >&2; }

step "PostgreSQL"
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432

step "wasm32-wasip2 target"
rustup target add wasm32-wasip2

step "policy components (policies/build.sh)"
bash policies/build.sh

step "build lethe"
cargo build --locked -p lethe

step "seed policies: lethe policy test"
# A fresh cache per run proves compilation works; later runs in the same
# job reuse it.
export LETHE_CACHE_DIR="${LETHE_CACHE_DIR:-$root/target/lethe-cache}"
for cases in policies/*/cases.toml; do
    name="$(basename "$(dirname "$cases")")"
    ./target/debug/lethe policy test "policies/dist/$name.wasm" "$cases"
done

step "cargo test"
cargo test --locked --workspace -- --test-threads=2

step "fmt and clippy"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
(cd policies && cargo fmt --all -- --check)

step "all green"
