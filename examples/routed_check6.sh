#!/bin/bash
# IPv6 in routed mode, no IPv6 address on the host ends: the container's
# gateway fe80::1 is a permanent neighbour entry inside (never solicited).
# docs/routed-probe.md. In netns-sandbox only. Variants: VARIANT=neigh with
# NUD=permanent (the host's entry for the container PERMANENT: works) or
# NUD=stale (fails after WAIT=40 s idle); VARIANT=lladdr (fe80::1 on each
# host end). Without VARIANT the host has no entry: ND cannot resolve it.
set -u
sysctl -qw net.ipv6.conf.all.forwarding=1
ip link add gw0 type bridge; ip link set gw0 up
ip -6 addr add fd00:88::1/128 dev gw0 nodad
ip -6 route add blackhole fd00:88::/64
for n in 2 3; do
  ip netns add c$n; ip -n c$n link set lo up
  ip link add vc$n address ee:ee:ee:ee:ee:ee group 88 type veth peer name eth0 netns c$n
  ip link set vc$n addrgenmode none
  ip link set vc$n up
  ip -6 route add fd00:88::$n/128 dev vc$n
  ip netns exec c$n sysctl -qw net.ipv6.conf.eth0.accept_dad=0
  ip -n c$n link set eth0 up
  ip -n c$n -6 addr add fd00:88::$n/128 dev eth0 nodad
  ip -n c$n -6 neigh replace fe80::1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent
  ip -n c$n -6 route add default via fe80::1 dev eth0
  if [ "${VARIANT:-}" = neigh ]; then
    mac=$(ip -n c$n -br link show eth0 | awk '{print $3}')
    ip -6 neigh replace fd00:88::$n lladdr $mac dev vc$n nud ${NUD:-stale}
  fi
  if [ "${VARIANT:-}" = lladdr ]; then ip -6 addr add fe80::1/64 dev vc$n nodad; fi
done
# IPv6 has no rp_filter: the same check by nft's fib expression.
nft -f - <<'NFT'
table ip6 guard {
	chain prerouting {
		type filter hook prerouting priority 0; policy accept;
		iifgroup 88 ip6 saddr fe80::/10 counter
		iifgroup 88 fib saddr . iif oif missing counter drop
	}
}
NFT
sleep 1
echo "host end addresses: $(ip -6 addr show dev vc2 | grep inet6 || echo none)"
ip netns exec c3 busybox ping -6 -c1 -W2 fd00:88::2 >/dev/null && echo "PASS: c3 -> c2 over IPv6" || echo "FAIL: c3 -> c2 over IPv6"
busybox ping -6 -c1 -W2 fd00:88::2 >/dev/null && echo "PASS: host -> c2 over IPv6" || echo "FAIL: host -> c2 over IPv6"
ip netns exec c2 busybox ping -6 -c1 -W2 fd00:88::1 >/dev/null && echo "PASS: c2 -> gateway address fd00:88::1" || echo "FAIL: c2 -> fd00:88::1"
echo "host's entry for c2: $(ip -6 neigh show fd00:88::2)"
echo "host IPv6 routes per host end: $(ip -6 route show table all dev vc2 | tr '\n' ';')"
if [ -n "${WAIT:-}" ]; then
  sleep $WAIT
  echo "after ${WAIT}s idle: host's entry for c2: $(ip -6 neigh show fd00:88::2)"
  busybox ping -6 -c1 -W2 fd00:88::2 >/dev/null && echo "PASS: host -> c2 over IPv6 after idle" || echo "FAIL: host -> c2 after idle"
  echo "host's entry for c2: $(ip -6 neigh show fd00:88::2)"
fi
# c3 sends as c2 (its address added for a moment), to the host's fd00:88::1.
ip -n c3 -6 addr add fd00:88::2/128 dev eth0 nodad
ip netns exec c3 busybox ping -6 -c2 -W1 -I fd00:88::2 fd00:88::1 >/dev/null 2>&1 && echo "FAIL: spoofed IPv6 source answered" || echo "PASS: spoofed IPv6 source (c2's, from c3) not answered"
ip -n c3 -6 addr del fd00:88::2/128 dev eth0
echo "link-local sourced, then fib rpf drops: $(nft list chain ip6 guard prerouting | grep -o 'packets [0-9]*' | tr '\n' ' ')"
