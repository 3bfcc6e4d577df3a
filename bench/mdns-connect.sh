#!/usr/bin/env bash
# How long two daemons found by mDNS take to connect when they also have addresses the other
# cannot use. Two network namespaces A (10.78.0.1) and B (10.78.0.2) joined by a veth; the
# extra interfaces are made before that veth, so each daemon announces their addresses ahead
# of its LAN one, as a host whose LAN interface is younger than its bridges does. Prints the
# time from starting B's daemon to B logging "peer found", and which address each side logged.
#
#   bash bench/mdns-connect.sh [SCENARIO] [START] [RUNS]      (as root; `npm run build` first)
#
# SCENARIO:
#   base            nothing else
#   blackhole-a     A has one more network (192.168.99.1/24); B's packets to it are dropped
#   blackhole-both  the same on both hosts, each with a network of its own
#   blackhole2-both two such networks on each host
#   docker-both     172.17.0.1/16 on both hosts (a dial to it reaches the dialer itself)
#   after-both      as blackhole-both, the extra interfaces made after the LAN link
# START: together (both daemons at once, the default) or join (B once A is up)
# PEERIX_CHECKOUT: the checkout whose dist/cli.js runs (default: this one); CAP: seconds to wait (60)
set -u
SCEN=${1:-blackhole2-both}; START=${2:-together}; RUNS=${3:-1}
CO=${PEERIX_CHECKOUT:-$(cd "$(dirname "$0")/.." && pwd)}
CAP=${CAP:-60}
[ -f "$CO/dist/cli.js" ] || { echo "$CO/dist/cli.js is missing: npm run build" >&2; exit 2; }

ID=pxmc$$
A=${ID}a; B=${ID}b
W=$(mktemp -d)
PIDS=()
teardown () {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  PIDS=()
  for n in $A $B; do
    for p in $(ip netns pids $n 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del $n 2>/dev/null
  done
}
trap 'teardown; rm -rf "$W"' EXIT

# An interface that is up (a veth pair inside the namespace, so it has a carrier), with an address.
extra () { # ns name cidr
  ip -n $1 link add $2 type veth peer name ${2}p
  ip -n $1 link set $2 up; ip -n $1 link set ${2}p up
  ip -n $1 addr add $3 dev $2
}
# Packets from ns to the prefix leave by the LAN link and are dropped on the way out: a connect hangs.
blackhole () { # ns prefix dev
  ip -n $1 route add $2 dev $3
  ip netns exec $1 nft list table inet bh >/dev/null 2>&1 || {
    ip netns exec $1 nft add table inet bh
    ip netns exec $1 nft add chain inet bh out '{ type filter hook output priority 0; }'
  }
  ip netns exec $1 nft add rule inet bh out ip daddr $2 drop
}
lan () {
  ip link add vA netns $A type veth peer name vB netns $B
  ip -n $A addr add 10.78.0.1/24 dev vA; ip -n $B addr add 10.78.0.2/24 dev vB
  ip -n $A link set vA up; ip -n $B link set vB up
  ip -n $A route add 224.0.0.0/4 dev vA; ip -n $B route add 224.0.0.0/4 dev vB   # mDNS
}
setup () {
  ip netns add $A; ip netns add $B
  for n in $A $B; do ip -n $n link set lo up; done
  case $SCEN in
    base) lan ;;
    blackhole-a) extra $A bg0 192.168.99.1/24; lan; blackhole $B 192.168.99.0/24 vB ;;
    blackhole-both) extra $A bg0 192.168.99.1/24; extra $B bg0 192.168.98.1/24; lan
      blackhole $B 192.168.99.0/24 vB; blackhole $A 192.168.98.0/24 vA ;;
    blackhole2-both) extra $A bg0 192.168.99.1/24; extra $A bg1 10.99.0.1/24
      extra $B bg0 192.168.98.1/24; extra $B bg1 10.98.0.1/24; lan
      blackhole $B 192.168.99.0/24 vB; blackhole $B 10.99.0.0/24 vB
      blackhole $A 192.168.98.0/24 vA; blackhole $A 10.98.0.0/24 vA ;;
    docker-both) extra $A dk0 172.17.0.1/16; extra $B dk0 172.17.0.1/16; lan ;;
    after-both) lan; extra $A bg0 192.168.99.1/24; extra $B bg0 192.168.98.1/24
      blackhole $B 192.168.99.0/24 vB; blackhole $A 192.168.98.0/24 vA ;;
    *) echo "unknown scenario $SCEN" >&2; exit 2 ;;
  esac
}
now () { date +%s%N; }
start () { # ns h run
  mkdir -p $W/state$2$3
  nix-store --store $W/store$2$3 --init
  ip netns exec $1 node --max-semi-space-size=1 "$CO/dist/cli.js" daemon --store-root $W/store$2$3 \
    --state-dir $W/state$2$3 --log-level debug >$W/log$2$3 2>&1 &
  PIDS+=($!)
}
wait_line () { # file regex seconds
  local end=$(( $(date +%s) + $3 ))
  until grep -qE "$2" $1 2>/dev/null; do
    [ "$(date +%s)" -ge $end ] && return 1
    sleep 0.05
  done
}
found () { grep -m1 'peer found' $1 | sed -E 's/.* at (\/ip4\/[^/]+\/tcp\/[0-9]+).*/\1/'; }

for run in $(seq 1 "$RUNS"); do
  setup
  T0=$(now)
  start $A a $run
  if [ "$START" = join ]; then wait_line $W/loga$run 'substituter on' 30; sleep 1; T0=$(now); fi
  start $B b $run
  if wait_line $W/logb$run 'peer found' $CAP; then
    echo "$SCEN $START run $run: connected $(( ($(now) - T0) / 1000000 )) ms after B started (B at $(found $W/logb$run), A at $(found $W/loga$run))"
  else
    echo "$SCEN $START run $run: not connected within $CAP s ($(grep -c 'could not dial' $W/logb$run) failed dials on B)"
  fi
  teardown
done
