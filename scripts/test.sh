#!/usr/bin/env bash
# Everything CI checks, from a fresh clone: installs the wasm target and the
# pinned Python/JavaScript policy toolchains, builds every policy component,
# then the Rust test suites (each seed policy's cases through `lethe policy
# test`, the hostile corpus, SQLite and PostgreSQL), the API contract suite
# (Schemathesis, pinned, in target/schemathesis-venv), the SCIM conformance
# run (scim2-cli, pinned, in target/scim-venv), the console's browser tests
# (Debian's chromium, installed here, driven by playwright-core), formatting
# and lints.
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

# The console's browser tests drive Debian's chromium (playwright-core
# cannot download a browser here).
step "chromium (Debian)"
if [ ! -x /usr/bin/chromium ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
fi
/usr/bin/chromium --version

step "wasm32-wasip2 target"
rustup target add wasm32-wasip2

step "policy components (policies/build.sh)"
bash policies/build.sh

# tests/webhooks.rs verifies every delivery with an independent
# implementation: the standardwebhooks PyPI package, pinned.
step "webhook verifier (tests/webhooks/venv.sh)"
bash tests/webhooks/venv.sh

step "build lethe"
cargo build --locked -p lethe

# tests/seed_policies.rs runs every seed policy's cases through
# `lethe policy test`; host/tests/hostile.rs drives the hostile corpus.
step "cargo test"
cargo test --locked --workspace -- --test-threads=2

# Schemathesis against a seeded `lethe serve`: every check, stateful on,
# 0 findings (tests/schemathesis/run.sh).
step "API contract (Schemathesis)"
bash tests/schemathesis/run.sh target/debug/lethe

# scim2-cli's conformance run (scim2-tester, pinned, in target/scim-venv)
# against a seeded `lethe serve`, on both backends: every check SUCCESS.
step "SCIM conformance (scim2-cli), SQLite"
bash tests/scim/run.sh target/debug/lethe sqlite
step "SCIM conformance (scim2-cli), PostgreSQL"
bash tests/scim/run.sh target/debug/lethe postgres

# The console in a real browser (tests/console/run.sh): playwright-core,
# pinned in tests/console/package-lock.json, driving /usr/bin/chromium.
step "console in chromium (playwright-core)"
bash tests/console/run.sh target/debug/lethe

step "fmt and clippy"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
(cd policies && cargo fmt --all -- --check)

step "all green"
