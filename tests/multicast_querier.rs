//! A container is no multicast querier or router. The bridge snoops
//! multicast (the kernel's default) and has no querier of its own
//! (`mcast_querier 0`), so it floods multicast to every port. One general
//! query from a container (root, default capabilities: CAP_NET_RAW) makes
//! it believe a querier is present: from then on it sends a group only to
//! the ports it saw a report for that group from, and to the querier's
//! port, now a multicast router port. A container whose reports were lost
//! (they meet its guard before its elements are in, tests/first_packets.rs)
//! then no longer receives the neighbour solicitations for its address,
//! and nobody reaches it over IPv6 until the next query. The bridge table
//! drops queries from containers (nft/supervisor.nft); each attack is shown
//! succeeding with the rule deleted.

mod common;

use std::time::Duration;

use common::container::{Container, SV0, answers, ask, inside, refused};
use common::{HostNs, forge};

/// Sends COUNT general queries from eth0, 100 ms apart, then prints
/// "sent". `mld`: an MLDv2 query from our link-local address to ff02::1;
/// `igmp`: an IGMPv3 query from OWN_IP to 224.0.0.1. Both as a querier
/// sends them (hop limit / TTL 1, router alert), maximum response 100 ms.
const QUERY: &str = r#"
import socket, struct, sys, time
family, own_ip, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = s.getsockname()[4]
def csum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
if family == "mld":
    src = b"\xfe\x80" + b"\0" * 6 + bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    dst = socket.inet_pton(socket.AF_INET6, "ff02::1")
    query = struct.pack("!BBHHH16sBBH", 130, 0, 0, 100, 0, b"\0" * 16, 2, 125, 0)
    pseudo = src + dst + struct.pack("!I3xB", len(query), 58)
    query = query[:2] + struct.pack("!H", csum(pseudo + query)) + query[4:]
    hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0])
    ip6 = struct.pack("!IHBB", 6 << 28, len(hbh) + len(query), 0, 1) + src + dst
    frame = b"\x33\x33\x00\x00\x00\x01" + mac + b"\x86\xdd" + ip6 + hbh + query
else:
    query = struct.pack("!BBH4sBBH", 0x11, 1, 0, b"\0" * 4, 2, 125, 0)
    query = query[:2] + struct.pack("!H", csum(query)) + query[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x46, 0xC0, 24 + len(query), 0, 0, 1, 2, 0,
                     socket.inet_aton(own_ip), socket.inet_aton("224.0.0.1")) + b"\x94\x04\x00\x00"
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    frame = b"\x01\x00\x5e\x00\x00\x01" + mac + b"\x08\x00" + ip + query
for _ in range(count):
    s.send(frame)
    time.sleep(0.1)
print("sent", flush=True)
"#;

const PREFIX6: &str = "fd53:7570:6572::";

/// A dual-stack container at `.ip` that sends `family` queries, as root
/// with the default capabilities; it stays until stopped (the bridge
/// forgets a router port when the port goes).
fn querier(ns: &HostNs, ip: u8, family: &str) -> Container {
    let script = format!(
        "{} {} {family} {} 3",
        forge::python(),
        forge::script("multicast_query.py", QUERY).display(),
        SV0.ip(ip)
    );
    let mut querier = Container::on(ns, &SV0, &["--ipv6", "--ip", &SV0.ip(ip)], &script);
    assert_eq!(querier.line(), "sent");
    querier
}

/// A dual-stack container at `.ip` answering `from-NAME` on TCP port 8000
/// (both families), whose supervisor stops once it is plumbed, before its guard
/// elements are in, for longer than the kernel sends its first reports
/// (three MLDv2 reports over about 1.2 s, all dropped by the guard):
/// the bridge never learns its groups.
fn unreported(ns: &HostNs, name: &str, ip: u8) -> Container {
    let mut run = ns.supervisor();
    run.args(["run", "--bridge", SV0.bridge, "--subnet", SV0.subnet])
        .args(["--ipv6", "--ip", &SV0.ip(ip), "--", "sh", "-c"])
        .arg(format!(
            "while :; do echo from-{name} | nc -6 -n -l -p 8000 -N >/dev/null 2>&1; done & \
             while :; do echo from-{name} | nc -4 -n -l -p 8000 -N >/dev/null 2>&1; done & \
             echo ready; read _ || true"
        ));
    let (mut supervisor, pid) = common::spawn_stopped_at(run, "linked");
    std::thread::sleep(Duration::from_millis(1500));
    common::resume_to_ready(&mut supervisor);
    let (_tx, lines) = std::sync::mpsc::channel();
    Container {
        supervisor,
        lines,
        pid,
    }
}

/// The bridge's multicast router ports, as `bridge -d mdb show` lists them.
fn router_ports(ns: &HostNs) -> String {
    let mdb = ns.ok(&format!("bridge -d mdb show dev {}", SV0.bridge));
    mdb.lines()
        .filter(|l| l.contains("router ports"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn peer(ns: &HostNs) -> Container {
    Container::on(ns, &SV0, &["--ipv6", "--ip", &SV0.ip(3)], "true")
}

#[test]
fn a_containers_mld_query_does_not_cut_off_a_container_the_bridge_saw_no_report_from() {
    let Some(ns) = HostNs::new("a_containers_mld_query_does_not_cut_off") else {
        return;
    };
    let peer = peer(&ns);
    let attacker = querier(&ns, 4, "mld");
    assert_eq!(router_ports(&ns), "", "the query reached the bridge");
    let victim = unreported(&ns, "victim", 2);
    let victim6 = format!("{PREFIX6}2");
    answers("peer -> victim over IPv6", "from-victim", || {
        ask(inside(&peer), &victim6, 8000)
    });

    // Proof that the attack is real: without the rule the querier's port
    // becomes a router port, and a container the bridge holds no report
    // of misses the solicitations for its address.
    forge::delete_guard_rule(&ns, "mld-listener-query");
    let unguarded = querier(&ns, 5, "mld");
    assert_ne!(router_ports(&ns), "", "without the guard a querier is seen");
    let cut_off = unreported(&ns, "cut-off", 6);
    refused("peer -> a container with no report, over IPv6", || {
        ask(inside(&peer), &format!("{PREFIX6}6"), 8000)
    });
    // IPv4 is no multicast: the same container answers there.
    answers("peer -> that container over IPv4", "from-cut-off", || {
        ask(inside(&peer), &SV0.ip(6), 8000)
    });
    for c in [cut_off, unguarded, victim, attacker, peer] {
        c.stop();
    }
}

#[test]
fn a_containers_igmp_query_makes_its_port_no_multicast_router_port() {
    let Some(ns) = HostNs::new("a_containers_igmp_query_makes_its_port_no_router") else {
        return;
    };
    let attacker = querier(&ns, 4, "igmp");
    assert_eq!(router_ports(&ns), "", "the query reached the bridge");

    // Proof that the attack is real: without the rule the bridge takes the
    // container for an IPv4 querier and its port for a router port.
    forge::delete_guard_rule(&ns, "meta l4proto { igmp, pim }");
    let unguarded = querier(&ns, 5, "igmp");
    assert_ne!(router_ports(&ns), "", "without the guard a querier is seen");
    for c in [unguarded, attacker] {
        c.stop();
    }
}
