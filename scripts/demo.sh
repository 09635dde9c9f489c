#!/usr/bin/env bash
# The one-command demo, from a fresh clone: builds the seed policies if
# needed, creates examples/demo/demo.db (SQLite) with five demo tenants, one
# per seed policy (t1 support-only, t2 two-stage-erase, t3 transfer-and-scrub,
# t4 cohort-cleanup, t5 deactivate-first) and generated data, creates an API
# key per tenant, a support key and an operator key, prints them with example requests, and
# serves the API on 127.0.0.1:8080 (LETHE_LISTEN overrides) until Ctrl-C.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if ! { [ -f policies/dist/support-only.wasm ] && [ -f policies/dist/two-stage-erase.wasm ] \
    && [ -f policies/dist/transfer-and-scrub.wasm ] && [ -f policies/dist/cohort-cleanup.wasm ] \
    && [ -f policies/dist/deactivate-first.wasm ]; }; then
    rustup target add wasm32-wasip2 >/dev/null
    bash policies/build.sh
fi
cargo build --release -q -p lethe
lethe=./target/release/lethe
config=examples/demo/lethe.toml
listen="${LETHE_LISTEN:-127.0.0.1:8080}"
export LETHE_LISTEN="$listen"

# A fresh database every run, so the walkthrough in README.md starts from
# the same users.
rm -f examples/demo/demo.db examples/demo/demo.db-shm examples/demo/demo.db-wal
$lethe seed --database sqlite:examples/demo/demo.db --tenants 5 --users 40 --items 6 >/dev/null

secret() { python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'; }
keys=examples/demo/keys.env
: > "$keys"
for t in t1 t2 t3 t4 t5; do
    echo "export KEY_${t^^}=$($lethe keys create --config "$config" --tenant "$t" --label demo 2>/dev/null | secret)" >> "$keys"
done
echo "export KEY_SUPPORT=$($lethe keys create --config "$config" --support --label demo 2>/dev/null | secret)" >> "$keys"
echo "export KEY_OPERATOR=$($lethe keys create --config "$config" --operator --label demo 2>/dev/null | secret)" >> "$keys"
echo "export LETHE=http://$listen" >> "$keys"

cat <<MSG

Demo database: examples/demo/demo.db (5 tenants x 40 users; see examples/demo/README.md).
API keys (printed once; only their sha256 is stored), also in $keys:

$(sed 's/^export /  /' "$keys")

The console: http://$listen/console (sign in with a key above; a tenant key
acts as one of its users, e.g. t1-u1; a support key signs with your name).

In another shell:

  source $keys
  # t5 (deactivate-first): deleting an active user is refused
  curl -s -H "Authorization: Bearer \$KEY_T5" -H 'content-type: application/json' \\
       -d '{"action":"delete","actor_id":"t5-u1"}' \$LETHE/v1/tenants/t5/users/t5-u5/actions
  # t1 (support-only): a delete is escalated to support
  curl -s -H "Authorization: Bearer \$KEY_T1" -H 'content-type: application/json' \\
       -d '{"action":"delete","actor_id":"t1-u1"}' \$LETHE/v1/tenants/t1/users/t1-u5/actions
  # support's queue
  curl -s -H "Authorization: Bearer \$KEY_SUPPORT" "\$LETHE/v1/escalations?status=pending"
  # users, one of them in detail, the OpenAPI document
  curl -s -H "Authorization: Bearer \$KEY_T2" "\$LETHE/v1/tenants/t2/users?state=deactivated&limit=5"
  curl -s -H "Authorization: Bearer \$KEY_T2" \$LETHE/v1/tenants/t2/users/t2-u5
  curl -s \$LETHE/openapi.json
  # operators: the tenants' policy versions (imported from lethe.toml at start)
  LETHE_KEY=\$KEY_OPERATOR $lethe policy versions --tenant t5

README.md ("Walkthrough") goes through every seed article this way.
Serving on http://$listen (Ctrl-C stops).

MSG
exec $lethe serve --config "$config"
