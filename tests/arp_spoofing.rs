//! A container may only speak for itself on the bridge. With CAP_NET_RAW,
//! which containers have (docker's default set), a container can forge
//! frames: a gratuitous ARP or an ARP reply claiming a neighbour's address
//! moves the host's neighbour entry for it, and a frame sent from the
//! neighbour's MAC moves the bridge's forwarding entry; either way the
//! neighbour's traffic goes to the forger. The bridge table drops both
//! (nft/supervisor.nft); each attack is shown succeeding with the rule
//! deleted.

mod common;

use common::HostNs;
use common::container::{Container, SV0, answers, ask, host, inside};
use common::forge::{delete_guard_rule, python, script};

/// Sends forged frames from eth0 for SECONDS, then prints "sent".
/// `arp CLAIM`: a gratuitous ARP request and an ARP reply to the gateway,
/// both saying CLAIM is at our own MAC. `mac CLAIM`: frames whose Ethernet
/// source is CLAIM's MAC (02:42 + its address).
const FORGE: &str = r#"
import socket, struct, sys, time
mode, claim, gateway, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
own = s.getsockname()[4]
ip, gw = socket.inet_aton(claim), socket.inet_aton(gateway)
claimed_mac, gw_mac, bcast = b"\x02\x42" + ip, b"\x02\x42" + gw, b"\xff" * 6
def arp(dst, op, sha, sip, tha, tip):
    return dst + sha + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + sip + tha + tip
if mode == "arp":
    frames = [arp(bcast, 1, own, ip, b"\x00" * 6, ip), arp(gw_mac, 2, own, ip, gw_mac, gw)]
else:
    frames = [bcast + claimed_mac + b"\x88\xb5" + b"forged" * 8]
end = time.time() + seconds
while time.time() < end:
    for frame in frames:
        s.send(frame)
    time.sleep(0.05)
print("sent", flush=True)
"#;

/// Runs the forger as a container of its own at `.ip`, as root with the
/// default capabilities, and waits until it has sent for `seconds`. It
/// stays until stopped: the bridge forgets what it learned on a port when
/// the port goes.
fn forge(ns: &HostNs, ip: u8, mode: &str, claim: &str, seconds: f32) -> Container {
    let script = format!(
        "{} {} {mode} {claim} {} {seconds}",
        python(),
        script("forge_frames.py", FORGE).display(),
        SV0.gateway()
    );
    let mut forger = Container::on(ns, &SV0, &["--ip", &SV0.ip(ip)], &script);
    assert_eq!(forger.line(), "sent");
    forger
}

/// The host's neighbour entry for `ip` on the bridge.
fn host_neighbour(ns: &HostNs, ip: &str) -> String {
    ns.ok(&format!("ip neigh show {ip} dev {}", SV0.bridge))
}

/// The bridge port the bridge forwards `mac` to.
fn fdb_port(ns: &HostNs, mac: &str) -> String {
    let fdb = ns.ok(&format!("bridge fdb show br {}", SV0.bridge));
    fdb.lines()
        .find(|l| l.starts_with(mac) && !l.contains("permanent"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("no entry for {mac}: {fdb}"))
        .to_string()
}

const VICTIM_MAC: &str = "02:42:ac:10:00:02";

/// The victim at .2, once the host has talked to it (so the host has a
/// neighbour entry for it and the bridge a forwarding entry).
fn victim(ns: &HostNs) -> Container {
    let victim = Container::web(ns, &SV0, "victim", &SV0.ip(2), &[]);
    host_reaches_the_victim(ns);
    victim
}

fn host_reaches_the_victim(ns: &HostNs) {
    answers("host -> victim", "from-victim", || {
        ask(host(ns), &SV0.ip(2), 8000)
    });
}

#[test]
fn a_forged_arp_claiming_another_containers_address_does_not_move_the_hosts_neighbour_entry() {
    let Some(ns) = HostNs::new("a_forged_arp_claiming_another_containers_address") else {
        return;
    };
    let victim = victim(&ns);
    assert!(host_neighbour(&ns, &SV0.ip(2)).contains(VICTIM_MAC));

    // Longer than the neighbour table's locktime (1 s), after which even a
    // plain reply may override the entry.
    let forger = forge(&ns, 3, "arp", &SV0.ip(2), 2.0);
    let entry = host_neighbour(&ns, &SV0.ip(2));
    assert!(entry.contains(VICTIM_MAC), "the entry moved: {entry}");
    host_reaches_the_victim(&ns);

    // Proof that the attack is real: without the ARP rule it succeeds.
    delete_guard_rule(&ns, "arp saddr ip");
    let unguarded = forge(&ns, 4, "arp", &SV0.ip(2), 2.0);
    let entry = host_neighbour(&ns, &SV0.ip(2));
    assert!(
        entry.contains("02:42:ac:10:00:04"),
        "without the guard the forger should hold the entry: {entry}"
    );
    for c in [unguarded, forger, victim] {
        c.stop();
    }
}

#[test]
fn a_frame_from_another_containers_mac_does_not_move_the_bridges_forwarding_entry() {
    let Some(ns) = HostNs::new("a_frame_from_another_containers_mac") else {
        return;
    };
    let victim = victim(&ns);
    let port = fdb_port(&ns, VICTIM_MAC);

    let forger = forge(&ns, 3, "mac", &SV0.ip(2), 1.0);
    assert_eq!(fdb_port(&ns, VICTIM_MAC), port, "the entry moved");
    host_reaches_the_victim(&ns);

    // Proof that the attack is real: without the MAC rule it succeeds.
    delete_guard_rule(&ns, "ether saddr != @mac_guard");
    let unguarded = forge(&ns, 4, "mac", &SV0.ip(2), 1.0);
    assert_ne!(
        fdb_port(&ns, VICTIM_MAC),
        port,
        "without the guard the forger's port should hold the victim's MAC"
    );
    for c in [unguarded, forger, victim] {
        c.stop();
    }
}

#[test]
fn ordinary_arp_resolves_between_containers_and_with_the_gateway() {
    let Some(ns) = HostNs::new("ordinary_arp_resolves_between_containers_and_the_gateway") else {
        return;
    };
    let a = Container::web(&ns, &SV0, "a", &SV0.ip(2), &[]);
    let b = Container::web(&ns, &SV0, "b", &SV0.ip(3), &[]);
    ns.ok(&format!("ip neigh flush dev {}", SV0.bridge));
    for c in [&a, &b] {
        let flushed = c.sh("ip neigh flush dev eth0");
        assert!(flushed.status.success());
    }
    answers("a -> b", "from-b", || ask(inside(&a), &SV0.ip(3), 8000));
    answers("b -> a", "from-a", || ask(inside(&b), &SV0.ip(2), 8000));
    answers("host -> a", "from-a", || ask(host(&ns), &SV0.ip(2), 8000));
    // The gateway answers ARP: a connection to a closed port there is
    // refused (a reset), not left unanswered.
    let to_gateway = a.sh(&format!(
        "nc -n -z -w2 {} 9 ; ip neigh show dev eth0",
        SV0.gateway()
    ));
    let neighbours = common::stdout(&to_gateway);
    for (ip, mac) in [
        (SV0.ip(3), "02:42:ac:10:00:03"),
        (SV0.gateway(), "02:42:ac:10:00:01"),
    ] {
        assert!(
            neighbours.contains(&format!("{ip} lladdr {mac}")),
            "{ip}: {neighbours}"
        );
    }
    assert!(host_neighbour(&ns, &SV0.ip(2)).contains(VICTIM_MAC));
    b.stop();
    a.stop();
}

#[test]
fn a_container_that_takes_anothers_mac_and_address_takes_out_only_its_own_neighbour_entry_at_its_end()
 {
    let Some(ns) = HostNs::new("a_container_that_takes_anothers_mac_and_address") else {
        return;
    };
    let victim = victim(&ns);
    let before = host_neighbour(&ns, &SV0.ip(2));
    assert!(before.contains(VICTIM_MAC), "{before}");
    // As one with CAP_NET_ADMIN could: the victim's MAC and address on its
    // own eth0. Its teardown takes out entries by its lease's address and
    // the MAC derived from it, never by what its eth0 says.
    let taker = Container::web(&ns, &SV0, "taker", &SV0.ip(3), &[]);
    let out = taker.sh(&format!(
        "ip link set eth0 down && ip link set eth0 address {VICTIM_MAC} && \
         ip addr add {}/24 dev eth0 && ip link set eth0 up",
        SV0.ip(2)
    ));
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(host_neighbour(&ns, &SV0.ip(3)).contains("02:42:ac:10:00:03"));
    taker.stop();
    assert_eq!(
        host_neighbour(&ns, &SV0.ip(2)),
        before,
        "the victim's entry"
    );
    assert!(
        !host_neighbour(&ns, &SV0.ip(3)).contains("02:42:ac:10:00:03"),
        "its own entry stayed"
    );
    host_reaches_the_victim(&ns);
    victim.stop();
}
