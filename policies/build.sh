#!/usr/bin/env bash
# Builds every policy component and leaves it at policies/dist/<name>.wasm.
#
# Rust policies (and the hostile corpus under hostile/) are members of the
# workspace in this directory and build with cargo for wasm32-wasip2. Every
# other policy directory carries its own build.sh (Python via componentize-py,
# JavaScript via componentize-js), which writes into dist/ itself.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
mkdir -p dist

rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2

cargo build --release --target wasm32-wasip2 --quiet
for wasm in target/wasm32-wasip2/release/*.wasm; do
    name="$(basename "$wasm" .wasm)"
    cp "$wasm" "dist/${name//_/-}.wasm"
done

for script in */build.sh; do
    echo "building $(dirname "$script")" >&2
    bash "$script"
done

ls -1 dist >&2
