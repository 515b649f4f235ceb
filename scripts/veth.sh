#!/usr/bin/env bash
# Two network namespaces joined by a veth pair, for the AF_XDP and kernel-interop tests.
#
#   scripts/veth.sh up   [--queues N] [--name PREFIX] [--ipv6]
#   scripts/veth.sh down [--name PREFIX]
#
# PREFIX (default "xt") names everything: namespaces PREFIX-a and PREFIX-b, interface PREFIX-a
# in namespace PREFIX-a and PREFIX-b in PREFIX-b. The default prefix uses 10.77.0.0/24 (.1 on
# the a side, .2 on the b side); any other prefix gets 10.77.X.0/24 with X = cksum(PREFIX) % 200
# + 1, so parallel test runs with different prefixes do not share a subnet. MAC addresses are
# fixed too (02:78:74:X:00:01 / :02), so tests can build frames without asking the kernel.
#
# IPv6 is disabled on both ends unless --ipv6 is given. With --ipv6 the ends also get
# fd00:77:X::1/64 and fd00:77:X::2/64 (X the same number as above, in hex: the default prefix
# gets fd00:77::1 and fd00:77::2), added with `nodad` (usable at once, no DAD probes) and with
# router solicitations and RA processing off, so the only IPv6 frames on the pair besides the
# test's own are Neighbor Discovery and MLD reports.
#
# Output: human-readable lines on stderr; on stdout exactly one machine-readable line
#   XT_NS_A=.. XT_IF_A=.. XT_IP_A=.. XT_MAC_A=.. XT_NS_B=.. XT_IF_B=.. XT_IP_B=.. XT_MAC_B=..
#   XT_PREFIX_LEN=24 XT_QUEUES=N
# and with --ipv6 also XT_IP6_A=.. XT_IP6_B=.. XT_PREFIX6_LEN=64,
# so that `eval "$(scripts/veth.sh up --name foo)"` works.
#
# Safety: the script only ever deletes what it made. The veth carries the alias
# "xtcp-veth.sh" and each namespace it creates is recorded under /run/xtcp-veth/. `down`
# deletes the veth only if it carries the alias, and a namespace only if it recorded
# creating it and nothing but `lo` is left in it. `up` refuses to adopt a same-named interface
# that lacks the alias. Both commands are idempotent.
set -euo pipefail

ALIAS="xtcp-veth.sh"
STATE_DIR=/run/xtcp-veth

usage() {
  echo "usage: $0 up|down [--queues N] [--name PREFIX] [--ipv6]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
CMD=$1
shift
PREFIX=xt
QUEUES=1
IPV6=0
while [ $# -gt 0 ]; do
  case "$1" in
  --queues)
    [ $# -ge 2 ] || usage
    QUEUES=$2
    shift 2
    ;;
  --name)
    [ $# -ge 2 ] || usage
    PREFIX=$2
    shift 2
    ;;
  --ipv6)
    IPV6=1
    shift
    ;;
  *) usage ;;
  esac
done

# Interface names are limited to 15 bytes (IFNAMSIZ - 1); "-a" takes two.
if ! [[ "$PREFIX" =~ ^[A-Za-z0-9_]{1,13}$ ]]; then
  echo "veth.sh: --name must be 1-13 characters of [A-Za-z0-9_], got '$PREFIX'" >&2
  exit 2
fi
if ! [[ "$QUEUES" =~ ^[0-9]+$ ]] || [ "$QUEUES" -lt 1 ] || [ "$QUEUES" -gt 64 ]; then
  echo "veth.sh: --queues must be 1..64, got '$QUEUES'" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "veth.sh: must run as root (network namespaces)" >&2
  exit 1
fi

NS_A="$PREFIX-a"
NS_B="$PREFIX-b"
IF_A="$PREFIX-a"
IF_B="$PREFIX-b"
if [ "$PREFIX" = xt ]; then
  OCTET=0
else
  OCTET=$(($(printf '%s' "$PREFIX" | cksum | cut -d' ' -f1) % 200 + 1))
fi
IP_A="10.77.$OCTET.1"
IP_B="10.77.$OCTET.2"
IP6_A=$(printf 'fd00:77:%x::1' "$OCTET")
IP6_B=$(printf 'fd00:77:%x::2' "$OCTET")
if [ "$OCTET" = 0 ]; then
  IP6_A=fd00:77::1
  IP6_B=fd00:77::2
fi
MAC_A=$(printf '02:78:74:%02x:00:01' "$OCTET")
MAC_B=$(printf '02:78:74:%02x:00:02' "$OCTET")

ns_exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }

# Prints the alias of interface $2 in namespace $1 ("" if it has none); fails if absent.
if_alias() {
  ip -n "$1" -d link show dev "$2" >/dev/null 2>&1 || return 1
  ip -n "$1" -d link show dev "$2" | sed -n 's/^ *alias //p'
}

# Interfaces in namespace $1 other than lo.
other_ifs() { ip -n "$1" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -vx lo || true; }

ensure_ns() {
  local ns=$1
  if ! ns_exists "$ns"; then
    ip netns add "$ns"
    mkdir -p "$STATE_DIR"
    touch "$STATE_DIR/$ns"
    ip -n "$ns" link set lo up
  fi
}

configure_end() {
  local ns=$1 ifname=$2 ip=$3 ip6=$4
  ip -n "$ns" link set dev "$ifname" alias "$ALIAS"
  if [ "$IPV6" = 1 ]; then
    # No router solicitations, no RA processing, no DAD: the address is usable at once and
    # the pair carries no IPv6 frames beyond ND and MLD.
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifname.disable_ipv6=0" \
      "net.ipv6.conf.$ifname.accept_ra=0" "net.ipv6.conf.$ifname.router_solicitations=0" \
      "net.ipv6.conf.$ifname.dad_transmits=0"
    ip -n "$ns" addr replace "$ip6/64" dev "$ifname" nodad
  else
    # IPv6 off: router solicitations and DAD probes would otherwise land in the AF_XDP socket
    # under test as unexpected frames.
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifname.disable_ipv6=1"
  fi
  ip -n "$ns" addr replace "$ip/24" dev "$ifname"
  # Offloads off on both ends. With TX checksum offload the kernel hands a veth peer frames
  # whose TCP/UDP checksum is only partial (CHECKSUM_PARTIAL), and an AF_XDP socket sees them
  # as corrupt. TSO/GSO would make the kernel emit super-frames larger than the MTU, which do
  # not fit a UMEM frame and are dropped in SKB mode; GRO would merge frames we send into
  # super-frames before the kernel's TCP sees them, hiding per-segment behaviour from tests.
  ip netns exec "$ns" ethtool -K "$ifname" tx off tso off gso off gro off >/dev/null 2>&1 ||
    ip netns exec "$ns" ethtool -K "$ifname" tx off >/dev/null
  ip -n "$ns" link set dev "$ifname" up
}

print_env() {
  local v6=""
  echo "veth.sh: $NS_A/$IF_A $IP_A/24 ($MAC_A) <-> $NS_B/$IF_B $IP_B/24 ($MAC_B), $QUEUES queue(s)" >&2
  if [ "$IPV6" = 1 ]; then
    echo "veth.sh: IPv6 $IP6_A/64 <-> $IP6_B/64" >&2
    v6=" XT_IP6_A=$IP6_A XT_IP6_B=$IP6_B XT_PREFIX6_LEN=64"
  fi
  echo "XT_NS_A=$NS_A XT_IF_A=$IF_A XT_IP_A=$IP_A XT_MAC_A=$MAC_A XT_NS_B=$NS_B XT_IF_B=$IF_B XT_IP_B=$IP_B XT_MAC_B=$MAC_B XT_PREFIX_LEN=24 XT_QUEUES=$QUEUES$v6"
}

cmd_up() {
  local ns ifname
  for pair in "$NS_A:$IF_A" "$NS_B:$IF_B"; do
    ns=${pair%%:*}
    ifname=${pair#*:}
    ns_exists "$ns" || continue
    if alias=$(if_alias "$ns" "$ifname"); then
      if [ "$alias" != "$ALIAS" ]; then
        echo "veth.sh: $ifname in $ns exists and was not made by this script; not touching it" >&2
        exit 1
      fi
    fi
  done
  for ns in "$NS_A" "$NS_B"; do
    ensure_ns "$ns"
  done
  if if_alias "$NS_A" "$IF_A" >/dev/null && if_alias "$NS_B" "$IF_B" >/dev/null; then
    local have
    have=$(ip -n "$NS_A" -d link show dev "$IF_A" | sed -n 's/.*numrxqueues \([0-9]*\).*/\1/p')
    if [ -n "$have" ] && [ "$have" != "$QUEUES" ]; then
      echo "veth.sh: $IF_A exists with $have queue(s), asked for $QUEUES; run 'down' first" >&2
      exit 1
    fi
  else
    # Half a pair (the other end's namespace was deleted) cannot be repaired: start over.
    if if_alias "$NS_A" "$IF_A" >/dev/null; then ip -n "$NS_A" link del "$IF_A"; fi
    if if_alias "$NS_B" "$IF_B" >/dev/null; then ip -n "$NS_B" link del "$IF_B"; fi
    ip link add "$IF_A" netns "$NS_A" address "$MAC_A" \
      numtxqueues "$QUEUES" numrxqueues "$QUEUES" type veth \
      peer name "$IF_B" netns "$NS_B" address "$MAC_B" \
      numtxqueues "$QUEUES" numrxqueues "$QUEUES"
  fi
  configure_end "$NS_A" "$IF_A" "$IP_A" "$IP6_A"
  configure_end "$NS_B" "$IF_B" "$IP_B" "$IP6_B"
  print_env
}

cmd_down() {
  local ns ifname
  for pair in "$NS_A:$IF_A" "$NS_B:$IF_B"; do
    ns=${pair%%:*}
    ifname=${pair#*:}
    ns_exists "$ns" || continue
    if alias=$(if_alias "$ns" "$ifname"); then
      if [ "$alias" = "$ALIAS" ]; then
        # Deleting one end of a veth deletes its peer too.
        ip -n "$ns" link del "$ifname" 2>/dev/null || true
      else
        echo "veth.sh: leaving $ifname in $ns alone (not made by this script)" >&2
      fi
    fi
  done
  for ns in "$NS_A" "$NS_B"; do
    if ns_exists "$ns"; then
      if [ ! -e "$STATE_DIR/$ns" ]; then
        echo "veth.sh: leaving namespace $ns alone (not made by this script)" >&2
        continue
      fi
      local rest
      rest=$(other_ifs "$ns")
      if [ -n "$rest" ]; then
        echo "veth.sh: leaving namespace $ns alone: it still holds $(echo "$rest" | tr '\n' ' ')" >&2
        continue
      fi
      ip netns del "$ns"
    fi
    rm -f "$STATE_DIR/$ns"
  done
  echo "veth.sh: $NS_A and $NS_B down" >&2
}

case "$CMD" in
up) cmd_up ;;
down) cmd_down ;;
*) usage ;;
esac
