#!/usr/bin/env bash
# The tests again on Node 22, the Node the flake and the NixOS module run peerix on (the
# machine's own Node may be 20). Node 22 comes from the npm registry (the node-linux-<arch>
# package holds the official binary and its headers), so nothing but the registry is needed.
# The working tree is copied to a temp dir and installed there with Node 22 (better-sqlite3 is
# compiled for its ABI), so this checkout's node_modules stay as they are.
# Usage: bash scripts/test-node22.sh [test files …]
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION=22.23.3
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "test-node22: no Node package for $(uname -m)" >&2; exit 1 ;;
esac

# Not under /tmp or /root: the hardened-daemon test hides both from the daemon it runs.
cache="/var/cache/peerix-tests/node-linux-$arch-$NODE_VERSION"
if [ ! -x "$cache/bin/node" ]; then
  fetch=$(mktemp -d)
  (cd "$fetch" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$(dirname "$cache")"
  rm -rf "$cache"
  mv "$fetch/package" "$cache"
  rm -rf "$fetch"
fi

tree=$(mktemp -d /tmp/peerix-node22.XXXXXX)
trap 'rm -rf "$tree"' EXIT
chmod 755 "$tree"   # the hardened-daemon test runs the daemon from it as an unprivileged user
# The files of this checkout as they are now (committed or not), without what git ignores.
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' \
  | tar --null -T - -cf - | tar -xf - -C "$tree"

export PATH="$cache/bin:$PATH"
export npm_config_nodedir="$cache"
echo "test-node22: $(node --version) in $tree"
cd "$tree"
bash scripts/test.sh "$@"
