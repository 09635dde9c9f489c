#!/usr/bin/env bash
# The console in a real browser: Debian's chromium (/usr/bin/chromium,
# installed by scripts/test.sh) driven by playwright-core (pinned in
# package-lock.json) against a real `lethe serve` over a freshly seeded
# SQLite database. Screenshots of each test's last page go to
# target/console-screenshots/.
#
#   bash tests/console/run.sh [path/to/lethe]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
lethe="${1:-$root/target/debug/lethe}"

if [ ! -x /usr/bin/chromium ]; then
    echo "tests/console: /usr/bin/chromium is missing (apt-get install chromium)" >&2
    exit 1
fi
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill "$server" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cp "$root/examples/demo/datamap.toml" "$work/datamap.toml"
{
    echo 'database_url = "sqlite:lethe.db"'
    echo 'datamap = "datamap.toml"'
    echo "listen = \"127.0.0.1:$port\""
    for pair in t1:support-only t2:two-stage-erase t4:cohort-cleanup t5:deactivate-first; do
        echo "[[tenant]]"
        echo "id = \"${pair%%:*}\""
        echo "policy = \"$root/policies/dist/${pair#*:}.wasm\""
    done
} > "$work/lethe.toml"

# 120 users a tenant: seed 003's mentees span two pages of the console.
"$lethe" seed --database "sqlite:$work/lethe.db" --tenants 5 --users 120 --items 6 >/dev/null
secret() { python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'; }
key() { "$lethe" keys create --config "$work/lethe.toml" "$@" --label console-tests 2>/dev/null | secret; }
LETHE_KEY_T1="$(key --tenant t1)"
LETHE_KEY_T2="$(key --tenant t2)"
LETHE_KEY_T4="$(key --tenant t4)"
LETHE_KEY_T5="$(key --tenant t5)"
LETHE_KEY_SUPPORT="$(key --support)"
LETHE_KEY_OPERATOR="$(key --operator)"
export LETHE_KEY_T1 LETHE_KEY_T2 LETHE_KEY_T4 LETHE_KEY_T5 LETHE_KEY_SUPPORT LETHE_KEY_OPERATOR
export LETHE_ROOT="$root"
# The tests count billing rows themselves (no API shows them).
export LETHE_DB="$work/lethe.db"

"$lethe" serve --config "$work/lethe.toml" > "$work/serve.log" 2>&1 &
server=$!
export LETHE_BASE="http://127.0.0.1:$port"
ready=""
for _ in $(seq 1 900); do
    if curl -fs "$LETHE_BASE/readyz" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
done
if [ -z "$ready" ]; then
    echo "lethe serve did not become ready; its log:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi

export LETHE_SHOTS="$root/target/console-screenshots"
mkdir -p "$LETHE_SHOTS"
set +e
(cd "$here" && timeout 600 node --test --test-concurrency=1 console.test.mjs)
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "lethe serve's log:" >&2
    tail -50 "$work/serve.log" >&2
fi
exit "$rc"
