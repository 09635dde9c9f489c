#!/usr/bin/env bash
# Builds the cohort-cleanup policy (JavaScript) into ../dist/cohort-cleanup.wasm.
#
# The tooling is pinned exactly in package.json and package-lock.json:
# componentize-js and jco, plus preview2-shim, which componentize-js 0.23.0
# imports at run time without declaring it as a dependency.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if [ ! -d node_modules ]; then
    # npm >= 11.16 rejects its own lockfile when an optional, platform-only
    # package of a dependency (rolldown's darwin binding, say) cannot be
    # fetched from the registry in use (npm/cli#9846), which happens behind
    # mirrors. `npm install` then installs the same locked versions (the
    # lockfile's integrity hashes still apply) without rewriting any file.
    if ! npm ci --no-audit --no-fund; then
        echo "npm ci refused the lockfile; installing the locked versions with npm install" >&2
        npm install --no-save --no-audit --no-fund
    fi
fi

node build.mjs
