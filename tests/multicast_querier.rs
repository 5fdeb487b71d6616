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
//! succeeding with the rule deleted. A container's IGMP membership reports
//! pass, so a querier on the host learns its groups.

mod common;

use std::time::Duration;

use common::container::{Container, SV0, answers, ask, inside, refused};
use common::{HostNs, forge};

/// Sends COUNT messages of a multicast querier or router from eth0, 100 ms
/// apart, then prints "sent", each as a querier or router sends it (hop
/// limit / TTL 1, router alert): `mld`, an MLDv2 general query from our
/// link-local address to ff02::1; `igmp`, an IGMPv3 general query from
/// OWN_IP to 224.0.0.1 (maximum response 100 ms both); `mrd`, a multicast
/// router advertisement (RFC 4286) to ff02::6a, `mrd4` its IGMP form (type
/// 0x30) to 224.0.0.106; `pim`, a PIMv2 hello to 224.0.0.13.
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
def with_csum(message, pseudo=b""):
    return message[:2] + struct.pack("!H", csum(pseudo + message)) + message[4:]
def icmpv6(dst_mac, dst, message):
    src = b"\xfe\x80" + b"\0" * 6 + bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    dst = socket.inet_pton(socket.AF_INET6, dst)
    message = with_csum(message, src + dst + struct.pack("!I3xB", len(message), 58))
    hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0])
    ip6 = struct.pack("!IHBB", 6 << 28, len(hbh) + len(message), 0, 1) + src + dst
    return dst_mac + mac + b"\x86\xdd" + ip6 + hbh + message
def ipv4(dst_mac, dst, protocol, options, message):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45 + len(options) // 4, 0xC0,
                     20 + len(options) + len(message), 0, 0, 1, protocol, 0,
                     socket.inet_aton(own_ip), socket.inet_aton(dst)) + options
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + mac + b"\x08\x00" + ip + with_csum(message)
if family == "mld":
    frame = icmpv6(b"\x33\x33\x00\x00\x00\x01", "ff02::1",
                   struct.pack("!BBHHH16sBBH", 130, 0, 0, 100, 0, b"\0" * 16, 2, 125, 0))
elif family == "mrd":
    frame = icmpv6(b"\x33\x33\x00\x00\x00\x6a", "ff02::6a",
                   struct.pack("!BBHHH", 151, 20, 0, 125, 2))
elif family == "mrd4":
    frame = ipv4(b"\x01\x00\x5e\x00\x00\x6a", "224.0.0.106", 2, b"\x94\x04\x00\x00",
                 struct.pack("!BBHHH", 0x30, 20, 0, 125, 2))
elif family == "pim":
    frame = ipv4(b"\x01\x00\x5e\x00\x00\x0d", "224.0.0.13", 103, b"",
                 struct.pack("!BBHHHH", 0x20, 0, 0, 1, 2, 105))
else:
    frame = ipv4(b"\x01\x00\x5e\x00\x00\x01", "224.0.0.1", 2, b"\x94\x04\x00\x00",
                 struct.pack("!BBH4sBBH", 0x11, 1, 0, b"\0" * 4, 2, 125, 0))
for _ in range(count):
    s.send(frame)
    time.sleep(0.1)
print("sent", flush=True)
"#;

const PREFIX6: &str = "fd53:7570:6572::";

/// A dual-stack container at `.ip` that sends `family` messages, as root
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

/// A container sending `family` messages leaves the bridge without a
/// multicast router port; with the `rule` containing `text` deleted, the
/// same messages make its port one.
fn makes_no_router_port(test: &str, family: &str, text: &str) {
    let Some(ns) = HostNs::new(test) else {
        return;
    };
    let attacker = querier(&ns, 4, family);
    assert_eq!(router_ports(&ns), "", "{family} reached the bridge");

    // Proof that the attack is real: without the rule the bridge takes the
    // container's port for a router port (and, for a query, the container
    // for a querier).
    forge::delete_guard_rule(&ns, text);
    let unguarded = querier(&ns, 5, family);
    assert_ne!(
        router_ports(&ns),
        "",
        "without the guard {family} makes a router port"
    );
    for c in [unguarded, attacker] {
        c.stop();
    }
}

#[test]
fn a_containers_igmp_query_makes_its_port_no_multicast_router_port() {
    makes_no_router_port("igmp_query_makes_no_router_port", "igmp", "igmp type");
}

#[test]
fn a_containers_pim_hello_makes_its_port_no_multicast_router_port() {
    makes_no_router_port("pim_hello_makes_no_router_port", "pim", "l4proto pim");
}

#[test]
fn a_containers_multicast_router_advertisement_makes_its_port_no_router_port() {
    makes_no_router_port("router_advertisement_makes_no_router_port", "mrd", "151");
}

#[test]
fn a_containers_igmp_multicast_router_advertisement_makes_its_port_no_router_port() {
    makes_no_router_port(
        "igmp_router_advertisement_makes_no_router_port",
        "mrd4",
        "igmp type",
    );
}

/// Joins the IPv4 group 239.1.2.3 on eth0 (the kernel sends its IGMP
/// membership reports at once, and answers queries while the socket is
/// open), prints "joined" and stays.
const JOIN: &str = r#"
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("239.1.2.3"), socket.inet_aton("0.0.0.0")))
print("joined", flush=True)
time.sleep(60)
"#;

/// A querier on the host (the bridge's own, `mcast_querier 1`) learns the
/// groups containers report: the guard drops queries, not reports.
#[test]
fn a_containers_igmp_membership_report_reaches_the_bridge() {
    let Some(ns) = HostNs::new("igmp_membership_report_reaches_the_bridge") else {
        return;
    };
    let first = peer(&ns);
    ns.ok(&format!(
        "ip link set {} type bridge mcast_querier 1",
        SV0.bridge
    ));
    let script = format!(
        "{} {}",
        forge::python(),
        forge::script("multicast_join.py", JOIN).display()
    );
    let mut member = Container::on(&ns, &SV0, &["--ip", &SV0.ip(4)], &script);
    assert_eq!(member.line(), "joined");
    common::eventually(
        "the bridge learns 239.1.2.3 from the container's report",
        Duration::from_secs(15),
        || {
            ns.ok(&format!("bridge mdb show dev {}", SV0.bridge))
                .contains("239.1.2.3")
                .then_some(())
        },
    );
    for c in [member, first] {
        c.stop();
    }
}
