#!/usr/bin/env bash
# The demo, from a fresh clone: builds the seed policies and lets each of them
# decide the example requests in examples/requests/, printing every decision.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

rustup target add wasm32-wasip2 >/dev/null
[ -f policies/dist/support-only.wasm ] && [ -f policies/dist/cohort-cleanup.wasm ] \
    && [ -f policies/dist/transfer-and-scrub.wasm ] || bash policies/build.sh
cargo build --release -q -p lethe
lethe=./target/release/lethe

for policy in support-only two-stage-erase transfer-and-scrub cohort-cleanup deactivate-first; do
    printf '\n### %s\n' "$policy"
    $lethe policy inspect "policies/dist/$policy.wasm" | sed -n '/"describe"/,/}/p' | grep -E '"(name|description)"'
    for req in examples/requests/*.json; do
        printf '\n%s → ' "$(basename "$req" .json)"
        $lethe policy run "policies/dist/$policy.wasm" --input "$req" \
            | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))'
    done
done
