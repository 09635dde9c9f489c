#!/usr/bin/env bash
# The SCIM 2.0 conformance run: scim2-cli's `test` (scim2-tester, pinned in
# requirements.txt) against a real `lethe serve` over a freshly seeded
# database, as an identity provider of tenant t5 (deactivate-first) with a
# token an operator created. Passes only when every check is SUCCESS.
#
#   bash tests/scim/run.sh [path/to/lethe] [sqlite|postgres]
#
# PostgreSQL: a database of its own on 127.0.0.1:5432, dropped afterwards.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
lethe="${1:-$root/target/debug/lethe}"
backend="${2:-sqlite}"
venv="$root/target/scim-venv"

# One install at a time when both backends run at once.
mkdir -p "$root/target"
(
    flock 9
    if ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx 'scim2-cli==0.6.0'; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    fi
) 9>"$root/target/scim-venv.lock"

work="$(mktemp -d)"
server=""
pgdb=""
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill "$server" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server" 2>/dev/null || true
    fi
    if [ -n "$pgdb" ]; then
        psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $pgdb" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

case "$backend" in
    sqlite) url="sqlite:$work/lethe.db" ;;
    postgres)
        pgdb="lethe_scim_$$_$RANDOM"
        psql -h 127.0.0.1 -U postgres -q -c "CREATE DATABASE $pgdb" >/dev/null
        url="postgres://postgres@127.0.0.1:5432/$pgdb"
        ;;
    *) echo "backend: sqlite or postgres" >&2; exit 2 ;;
esac

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cp "$root/examples/demo/datamap.toml" "$work/datamap.toml"
{
    echo "database_url = \"$url\""
    echo 'datamap = "datamap.toml"'
    echo "listen = \"127.0.0.1:$port\""
    echo "[[tenant]]"
    echo 'id = "t5"'
    echo "policy = \"$root/policies/dist/deactivate-first.wasm\""
} > "$work/lethe.toml"

"$lethe" seed --database "$url" --tenants 5 --users 40 --items 6 >/dev/null
operator_key="$("$lethe" keys create --config "$work/lethe.toml" --operator --label scim-conformance 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"

"$lethe" serve --config "$work/lethe.toml" > "$work/serve.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
ready=""
for _ in $(seq 1 900); do
    if curl -fs "$base/readyz" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
done
if [ -z "$ready" ]; then
    echo "lethe serve did not become ready; its log:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi

token="$(curl -fsS -X POST "$base/v1/admin/tenants/t5/scim/tokens" \
    -H "Authorization: Bearer $operator_key" -H 'Content-Type: application/json' \
    -d '{"label": "scim2-tester"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

# The token goes in the environment, not on the command line.
set +e
SCIM_CLI_HEADERS="Authorization: Bearer $token" "$venv/bin/scim2" --url "$base/scim/v2/t5" test > "$work/result.txt" 2>&1
rc=$?
set -e
cat "$work/result.txt"
checks="$(grep -cE '^(SUCCESS|ERROR|SKIPPED|CRITICAL|DEVIATION|COMPLIANT|ACCEPTABLE) ' "$work/result.txt" || true)"
passed="$(grep -cE '^SUCCESS ' "$work/result.txt" || true)"
echo "SCIM conformance ($backend): $passed of $checks checks passed, exit $rc"
if [ "$rc" -ne 0 ] || [ "$checks" -eq 0 ] || [ "$passed" -ne "$checks" ]; then
    echo "lethe serve's log:" >&2
    tail -50 "$work/serve.log" >&2
    exit 1
fi
