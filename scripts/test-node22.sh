#!/usr/bin/env bash
# The tests again on Node 22 (scripts/node22.sh), the Node the flake and the NixOS module run
# peerix on where this machine's own may be 20. The working tree is copied to a temp dir and
# installed there with Node 22 (better-sqlite3 is compiled for its ABI), so this checkout's
# node_modules stay as they are.
# Usage: bash scripts/test-node22.sh [test files …]
set -euo pipefail
cd "$(dirname "$0")/.."

node22=$(bash scripts/node22.sh)
tree=$(mktemp -d /tmp/peerix-node22.XXXXXX)
trap 'rm -rf "$tree"' EXIT
chmod 755 "$tree"   # the hardened-daemon test runs the daemon from it as an unprivileged user
# The files of this checkout as they are now (committed or not), without what git ignores.
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
  | tar --null -T - -cf - | tar -xf - -C "$tree"

export PATH="$node22/bin:$PATH"
export npm_config_nodedir="$node22"
echo "test-node22: $(node --version) in $tree"
cd "$tree"
bash scripts/test.sh "$@"
