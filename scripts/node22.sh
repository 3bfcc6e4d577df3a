#!/usr/bin/env bash
# Fetches Node 22 (what the flake and the NixOS module run peerix on) from the npm registry,
# whose node-linux-<arch> package holds the official binary and its headers, and prints its
# directory: `$(bash scripts/node22.sh)/bin/node`. Kept in /var/cache/peerix-tests, not under
# /tmp or /root, which the hardened-daemon test hides from the daemon it runs.
set -euo pipefail

NODE_VERSION=22.23.3
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "node22: no Node package for $(uname -m)" >&2; exit 1 ;;
esac

dir="/var/cache/peerix-tests/node-linux-$arch-$NODE_VERSION"
if [ ! -x "$dir/bin/node" ]; then
  fetch=$(mktemp -d)
  (cd "$fetch" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir"
  mv "$fetch/package" "$dir"
  rm -rf "$fetch"
fi
echo "$dir"
