#!/usr/bin/env bash
# Makes target/webhooks-venv with the pinned verifier of receiver.py (when
# missing or different) and prints its python.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/webhooks-venv"
mkdir -p "$root/target"
exec 9>"$root/target/webhooks-venv.lock"
flock 9
pinned="$(sed -n 's/^standardwebhooks==//p' "$here/requirements.txt")"
have="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("standardwebhooks"))' 2>/dev/null || true)"
if [ "$have" != "$pinned" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
fi
echo "$venv/bin/python"
