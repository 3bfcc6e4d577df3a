#!/usr/bin/env bash
# The one test command (README): installs what the tests need, builds, runs every test.
# On a fresh Debian 12 machine with Node >= 20.19, as root, it needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nix-store >/dev/null 2>&1 || need_apt+=(nix-bin)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)   # the fault tests firewall a lab host
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)   # the hardening test builds a seccomp loader
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)   # syscall groups for that filter
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "peerix tests need: ${need_apt[*]} (Debian: sudo apt-get install -y ${need_apt[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Install exactly the locked dependencies when they are missing or older than the lock file.
# A node_modules that is a link belongs to another checkout (a git worktree sharing it): npm ci
# would empty that checkout's node_modules through the link, so it is left alone.
if [ -L node_modules ]; then
  if [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "node_modules links to $(readlink -f node_modules), older than package-lock.json: not reinstalled here (run npm ci in the checkout it belongs to if the lock changed)" >&2
  fi
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

npx tsc -p tsconfig.json
npx tsc -p test/tsconfig.json
# Every test, or only the files given as arguments.
if [ $# -eq 0 ]; then set -- "test/**/*.test.ts"; fi
npx mocha "$@"
