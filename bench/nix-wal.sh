#!/usr/bin/env bash
# Nix's write-ahead log (db.sqlite-wal) under a running peerix, and what it costs Nix: a chroot
# store gets BATCHES×100 paths (one `nix-store --add` per 100) while peerix (root) reads it,
# then 50 single adds are timed with peerix as root, as `nobody` started with that WAL left
# over (the NixOS module's unprivileged daemon after a restart), and with no peerix.
# Run as root after `npm run build`: `bash bench/nix-wal.sh [BATCHES]` (default 80).
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=$PWD/dist/cli.js
BATCHES=${1:-80}
T=$(mktemp -d /tmp/peerix-wal-XXXXXX)
chmod 755 "$T"
trap 'pkill -f "listen 127.0.0.1:14191" || true; rm -rf "$T"' EXIT
mkdir -p "$T/conf" "$T/files" "$T/state-root" "$T/state-nobody"
chown nobody "$T/state-nobody"
printf 'sandbox = false\nbuild-users-group =\nexperimental-features = nix-command\nsubstituters =\n' > "$T/conf/nix.conf"
export NIX_CONF_DIR=$T/conf XDG_CACHE_HOME=$T/xdg NIX_REMOTE=
S=$T/store
DB=$S/nix/var/nix/db
nix-store --store "$S" --init
daemon_flags=(daemon --store-root "$S" --listen 127.0.0.1:14191 --p2p-listen /ip4/127.0.0.1/tcp/14192 --no-mdns)
k=0
adds () {
  local t0 i
  t0=$(date +%s%N)
  for i in $(seq 50); do k=$((k+1)); echo "single $k" > "$T/files/s$k"; nix-store --store "$S" --add "$T/files/s$k" >/dev/null; done
  echo "$(( ($(date +%s%N) - t0) / 50000000 )).$(( ($(date +%s%N) - t0) / 500000 % 100 )) ms per add"
}
wal () { stat -c %s "$DB/db.sqlite-wal" 2>/dev/null || echo 0; }
stop_daemon () { pkill -f 'listen 127.0.0.1:14191' || true; sleep 1; }

node "$CLI" "${daemon_flags[@]}" --state-dir "$T/state-root" > "$T/root.log" 2>&1 &
sleep 3
for b in $(seq "$BATCHES"); do
  files=()
  for i in $(seq 100); do k=$((k+1)); echo "batch $k" > "$T/files/b$k"; files+=("$T/files/b$k"); done
  nix-store --store "$S" --add "${files[@]}" >/dev/null
done
echo "after $((BATCHES * 100)) paths added with peerix (root) running: db.sqlite-wal $(wal) bytes"
echo "50 adds, peerix as root: $(adds)"
stop_daemon
echo "peerix stopped: db.sqlite-wal $(wal) bytes"
setpriv --reuid=nobody --regid=nogroup --clear-groups node "$CLI" "${daemon_flags[@]}" --state-dir "$T/state-nobody" > "$T/nobody.log" 2>&1 &
sleep 4
echo "50 adds, peerix as nobody, started with that WAL: $(adds)"
echo "50 more: $(adds)"
stop_daemon
echo "50 adds, no peerix: $(adds); db.sqlite-wal $(wal) bytes after"
