#!/usr/bin/env bash
# Runs the project's pinned uv (scripts/uv-requirements.txt, with hashes), installing it into .tools/uv first
# when it is missing or the pin changed. Arguments go to uv: scripts/uv.sh sync --locked --extra dev
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python=${PYTHON:-python3}
pin="$root/scripts/uv-requirements.txt"
tools="$root/.tools/uv"
if [ ! -x "$tools/bin/uv" ] || ! cmp -s "$pin" "$tools/.pin"; then
  rm -rf "$tools"
  "$python" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps --only-binary :all: --require-hashes \
    --target "$tools" -r "$pin"
  cp "$pin" "$tools/.pin"
fi
exec "$tools/bin/uv" "$@"
