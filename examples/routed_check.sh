#!/bin/bash
# docs/routed-probe.md, step 2: does routed mode forward what it must?
# Run inside netns-sandbox only.
set -u
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; }
sysctl -qw net.ipv4.ip_forward=1
# The gateway on a portless device (no dummy driver here: a bridge with no port).
ip link add gw0 address 02:42:0a:58:00:01 type bridge
ip link set gw0 up
ip addr add 10.88.0.1/32 dev gw0
ip route add blackhole 10.88.0.0/16
for n in 2 3; do
  ip netns add c$n
  ip -n c$n link set lo up
  ip link add vc$n address ee:ee:ee:ee:ee:ee group 88 numtxqueues 1 numrxqueues 1 type veth peer name eth0 netns c$n
  sysctl -qw net.ipv4.conf.vc$n.rp_filter=1
  ip link set vc$n up
  ip route add 10.88.1.$n/32 dev vc$n scope link
  ip -n c$n link set eth0 up
  ip -n c$n addr add 10.88.1.$n/32 dev eth0
  ip -n c$n route add default via 10.88.0.1 dev eth0 onlink
done
# An outside machine on the host's "public" side.
ip netns add out
ip link add vout type veth peer name eth0 netns out
ip addr add 192.0.2.1/24 dev vout; ip link set vout up
ip -n out link set lo up; ip -n out link set eth0 up
ip -n out addr add 192.0.2.2/24 dev eth0
ip -n out route add default via 192.0.2.1
nft -f - <<'NFT'
table ip probe {
	map tcp_ports {
		type inet_service : ipv4_addr . inet_service
		elements = { 8080 : 10.88.1.2 . 8000 }
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local dnat ip to tcp dport map @tcp_ports
	}
	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local dnat ip to tcp dport map @tcp_ports
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.88.0.0/16 oifgroup != 88 masquerade
		oifgroup 88 ct status dnat ip saddr 10.88.0.0/16 masquerade
	}
}
NFT
SERVER='import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(("0.0.0.0",int(sys.argv[1]))); s.listen(8)
while True:
    c,a=s.accept(); c.sendall(a[0].encode()); c.close()'
CLIENT='import socket,sys
s=socket.socket(); s.settimeout(2)
if len(sys.argv)>3: s.bind((sys.argv[3],0))
try:
    s.connect((sys.argv[1],int(sys.argv[2]))); print(s.recv(100).decode())
except Exception as e: print("no answer:", e)'
ip netns exec c2 python3 -c "$SERVER" 8000 & S1=$!
python3 -c "$SERVER" 9000 & S2=$!
sleep 0.5
expect() { # what, got, wanted
  if [ "$2" = "$3" ]; then ok "$1: saw $2"; else bad "$1: saw '$2', wanted '$3'"; fi; }
expect "container to container (c3 -> c2:8000, source seen by c2)" "$(ip netns exec c3 python3 -c "$CLIENT" 10.88.1.2 8000)" 10.88.1.3
expect "host to container (host -> c2:8000)" "$(python3 -c "$CLIENT" 10.88.1.2 8000)" 10.88.0.1
expect "DNAT from outside (out -> 192.0.2.1:8080 -> c2:8000)" "$(ip netns exec out python3 -c "$CLIENT" 192.0.2.1 8080)" 192.0.2.2
expect "container to another's published port via the host (c3 -> 192.0.2.1:8080)" "$(ip netns exec c3 python3 -c "$CLIENT" 192.0.2.1 8080)" 10.88.0.1
expect "hairpin (c2 -> 192.0.2.1:8080 -> itself)" "$(ip netns exec c2 python3 -c "$CLIENT" 192.0.2.1 8080)" 10.88.0.1
expect "container to the host (c3 -> 10.88.0.1:9000)" "$(ip netns exec c3 python3 -c "$CLIENT" 10.88.0.1 9000)" 10.88.1.3
expect "container out (c3 -> out's 192.0.2.2? via masquerade: host's 192.0.2.1 seen)" "$(ip netns exec out python3 -c "$SERVER" 7000 & P=$!; sleep 0.3; ip netns exec c3 python3 -c "$CLIENT" 192.0.2.2 7000; kill $P)" 192.0.2.1
echo "gateway entry learned by ARP in c3: $(ip -n c3 neigh show 10.88.0.1)"
# Spoofing: c3 sends as c2 (10.88.1.2) and as an address nobody has.
ip -n c3 addr add 10.88.1.2/32 dev eth0 2>/dev/null; ip -n c3 addr add 10.99.0.5/32 dev eth0
before=$(nstat -az TcpExtIPReversePathFilter | awk '/IPReverse/{print $2}')
expect "spoofed source c2's address from c3 (to host:9000) dropped" "$(ip netns exec c3 python3 -c "$CLIENT" 10.88.0.1 9000 10.88.1.2 | cut -c1-9)" "no answer"
ip -n c3 addr del 10.88.1.2/32 dev eth0
expect "spoofed source 10.99.0.5 from c3 (to c2:8000) dropped" "$(ip netns exec c3 python3 -c "$CLIENT" 10.88.1.2 8000 10.99.0.5 | cut -c1-9)" "no answer"
after=$(nstat -az TcpExtIPReversePathFilter | awk '/IPReverse/{print $2}')
echo "IPReversePathFilter drops: $before -> $after"
sysctl -qw net.ipv4.conf.vc3.rp_filter=0
nft add table ip count; nft add chain ip count fw '{ type filter hook forward priority 0; }'; nft add rule ip count fw ip saddr 10.99.0.5 counter
ip netns exec c3 python3 -c "$CLIENT" 10.88.1.2 8000 10.99.0.5 >/dev/null
echo "control, rp_filter 0: forwarded from 10.99.0.5: $(nft list chain ip count fw | grep -o 'packets [0-9]*')"
sysctl -qw net.ipv4.conf.vc3.rp_filter=1
nft flush chain ip count fw; nft add rule ip count fw ip saddr 10.99.0.5 counter
ip netns exec c3 python3 -c "$CLIENT" 10.88.1.2 8000 10.99.0.5 >/dev/null
echo "rp_filter 1: forwarded from 10.99.0.5: $(nft list chain ip count fw | grep -o 'packets [0-9]*')"

# Forged ARP: c3 claims c2's address; the host's entry for it is per interface.
ip -n c3 addr add 10.88.1.2/32 dev eth0
ip netns exec c3 busybox arping -U -c 2 -I eth0 -s 10.88.1.2 10.88.1.2 >/dev/null 2>&1
ip netns exec c3 busybox arping -A -c 2 -I eth0 -s 10.88.1.2 10.88.1.2 >/dev/null 2>&1
ip -n c3 addr del 10.88.1.2/32 dev eth0
echo "host's entries for 10.88.1.2 after c3's forged ARP: $(ip neigh show 10.88.1.2 | tr '\n' ';')"
expect "after the forged ARP, host -> c2:8000 still reaches c2" "$(python3 -c "$CLIENT" 10.88.1.2 8000)" 10.88.0.1
# Hairpin without its masquerade: the reply-less martian in c2.
nft flush chain ip probe postrouting
nft add rule ip probe postrouting ip saddr 10.88.0.0/16 oifgroup != 88 masquerade
ip netns exec c2 python3 -c "$SERVER" 8001 & S3=$!
expect "hairpin without the masquerade fails (c2 -> 192.0.2.1:8080)" "$(ip netns exec c2 python3 -c "$CLIENT" 192.0.2.1 8080 | cut -c1-9)" "no answer"
echo "c2's martian sources: $(ip netns exec c2 nstat -az IpExtInNoRoutes IpInAddrErrors 2>/dev/null | tail -n +2 | tr -s ' ' | tr '\n' ';')"
kill $S3
kill $S1 $S2
