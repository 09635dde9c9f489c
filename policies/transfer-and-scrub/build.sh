#!/usr/bin/env bash
# Builds the transfer-and-scrub policy (Python) into ../dist/transfer-and-scrub.wasm.
#
# componentize-py generates the `wit_world` bindings from ../../wit while it
# componentizes, so no generated code is committed. The tool is pinned in
# requirements.txt and installed with pip when the one found differs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

pinned="$(sed -n 's/^componentize-py==//p' requirements.txt)"

# Runs componentize-py through its Python entry point, so a pip install that
# put the console script outside PATH (e.g. --user) still works.
componentize_py() {
    python3 -c 'import sys, componentize_py; sys.argv[0] = "componentize-py"; componentize_py.script()' "$@"
}

if [ "$(componentize_py --version 2>/dev/null || true)" != "componentize-py $pinned" ]; then
    echo "installing componentize-py $pinned" >&2
    python3 -m pip install --quiet --disable-pip-version-check -r requirements.txt
fi

# --stub-wasi replaces every WASI import with a trapping stub inside the
# component, so it imports nothing but lethe:policy/host: a policy gets no
# ambient capability, and the host need not link WASI for it. The price,
# a PRNG seed fixed at build time, suits a policy, whose decisions must be a
# pure function of the request anyway. The cases exercise every path, so a
# path that reached a stub would show up there as a trap.
mkdir -p ../dist
componentize_py -d ../../wit -w deletion-policy componentize --stub-wasi app -o ../dist/transfer-and-scrub.wasm
