//! A conntrack entry outlives its container (UDP for minutes, TCP for
//! days), and the container's address goes to another container after it.
//! Whatever such an entry still carries must never reach the address's
//! next holder: the generation rules of nft/supervisor.nft (chain
//! `generation`) drop it, with no conntrack walk at the container's end.
//! Each attack is also shown succeeding with the dropping rule deleted.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::container::Container;
use common::{HostNs, Outside};

const IP: &str = "172.16.0.2";

/// What differs between the families in the UDP scenarios.
struct Family {
    /// `run` options beside `--ip IP`.
    options: &'static [&'static str],
    /// The supervisor table of the family.
    table: &'static str,
    /// The conntrack family (`conntrack -f`).
    conntrack: &'static str,
    /// The python socket family and its any-address.
    socket: &'static str,
    any: &'static str,
    /// /proc/net's file of the family's UDP sockets.
    proc_udp: &'static str,
    /// The container's address, the host's on the outside link, the peer's.
    container: &'static str,
    host: &'static str,
    peer: &'static str,
}

const V4: Family = Family {
    options: &[],
    table: "ip",
    conntrack: "ipv4",
    socket: "AF_INET",
    any: "",
    proc_udp: "udp",
    container: IP,
    host: "192.0.2.1",
    peer: "192.0.2.2",
};

/// `run --ipv6`: the container's IPv6 address derived from `IP` in the
/// default subnet6.
const V6: Family = Family {
    options: &["--ipv6"],
    table: "ip6",
    conntrack: "ipv6",
    socket: "AF_INET6",
    any: "::",
    proc_udp: "udp6",
    container: "fd53:7570:6572::2",
    host: "2001:db8::1",
    peer: "2001:db8::2",
};

impl Family {
    /// `run` options for `IP`.
    fn run_options(&self) -> Vec<&'static str> {
        let mut options = vec!["--ip", IP];
        options.extend(self.options);
        options
    }

    /// The outside machine, with this family's address.
    fn outside(&self, ns: &HostNs) -> Outside {
        match self.table {
            "ip" => ns.outside(),
            _ => ns.outside6(),
        }
    }

    /// A container command, in python: a UDP socket on port 4000 that
    /// runs `then` (`s` is the socket).
    fn on_port_4000(&self, then: &str) -> String {
        format!(
            "python3 -c \"import socket\n\
             s = socket.socket(socket.{}, socket.SOCK_DGRAM); s.bind(('{}', 4000)); s.settimeout(20)\n\
             {then}\"",
            self.socket, self.any
        )
    }

    /// A UDP exchange from port 4000 with the outside peer on port 5000,
    /// masqueraded to the host's port 4000; prints the peer's answer.
    fn exchange(&self) -> String {
        self.on_port_4000(&format!(
            "s.sendto(b'out', ('{}', 5000))\nprint(s.recv(100).decode(), flush=True)",
            self.peer
        ))
    }

    /// The host's conntrack entries of UDP flows from the container.
    fn flows_out(&self, ns: &HostNs) -> String {
        ns.ok(&format!(
            "conntrack -L -f {} -p udp 2>/dev/null | grep -F 'src={} ' || true",
            self.conntrack, self.container
        ))
    }
}

/// Deletes the rule of `table`'s chain `generation` that drops what
/// reaches a container on another generation's connection: the protection
/// switched off.
fn without_generations(ns: &HostNs, table: &str) {
    let chain = ns.ok(&format!("nft -a list chain {table} supervisor generation"));
    let handle = chain
        .lines()
        .find(|l| l.contains("!= @live") && l.contains("drop"))
        .and_then(|l| l.rsplit_once("# handle "))
        .map(|(_, h)| h.trim().to_string())
        .unwrap_or_else(|| panic!("no dropping rule: {chain}"));
    ns.ok(&format!(
        "nft delete rule {table} supervisor generation handle {handle}"
    ));
}

/// Waits until `IP` is no one's: its lease file is gone.
fn address_given_back(ns: &HostNs) {
    common::eventually("the address given back", Duration::from_secs(10), || {
        (!common::leases(ns).lines().any(|l| l.trim() == IP)).then_some(())
    });
}

/// Waits until something in `c` has a socket on `port` in /proc/net's
/// `file` (`udp`, `udp6`, or `tcp` for a listener).
fn listening(c: &Container, file: &str, port: u16) {
    let wanted = format!(":{port:04X} ");
    common::eventually("the container listening", Duration::from_secs(10), || {
        let sockets = c.sh(&format!("cat /proc/net/{file}"));
        String::from_utf8_lossy(&sockets.stdout)
            .lines()
            .any(|l| l.contains(&wanted) && (file != "tcp" || l.contains(" 0A ")))
            .then_some(())
    });
}

/// How the first holder of `IP` ends.
#[derive(Clone, Copy, PartialEq)]
enum End {
    /// Its command exits; its supervisor tears down.
    Exits,
    /// Its supervisor is killed (SIGKILL), its container with it: the
    /// address, its elements and its record stay until the next `--ip IP`
    /// takes the address back from the dead supervisor.
    Crashes,
}

/// The outside peer of `Family::exchange`: answers one datagram on port
/// 5000.
fn peer(family: &Family, outside: &Outside) -> Child {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.{}, socket.SOCK_DGRAM); s.bind(('{}', 5000))\n\
         print('ready', flush=True)\n\
         _, sender = s.recvfrom(100); s.sendto(b'answer', sender)\n",
        family.socket, family.any
    );
    let mut child = outside
        .command(common::forge::python())
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the outside peer");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("the peer's first line");
    assert_eq!(line.trim(), "ready");
    child
}

/// c1 at `IP` has an exchange with the outside peer (its conntrack entry
/// established) and ends as `end` says.
fn exchange_and_end(ns: &HostNs, family: &Family, outside: &Outside, end: End) {
    let mut peer = peer(family, outside);
    let options = family.run_options();
    match end {
        End::Exits => {
            let mut args = options.clone();
            let exchange = family.exchange();
            args.extend(["--", "sh", "-c", &exchange]);
            let out = ns.run(&args);
            assert!(out.status.success(), "{}", common::stderr(&out));
            assert_eq!(common::stdout(&out).trim(), "answer");
            address_given_back(ns);
        }
        End::Crashes => {
            let mut c1 = Container::start(ns, &options, &family.exchange());
            assert_eq!(c1.line(), "answer");
            c1.supervisor.kill().expect("SIGKILL c1's supervisor");
            c1.supervisor.wait().expect("reap c1's supervisor");
        }
    }
    peer.wait().expect("the peer's end");
    let flows = family.flows_out(ns);
    assert!(
        !flows.is_empty() && !flows.contains("UNREPLIED"),
        "c1's flow out, established: {flows:?}"
    );
}

/// c1 has an exchange with an outside peer (see `exchange_and_end`) and
/// ends; c2 gets its address and waits on port 4000; the peer sends again
/// to where c1's flow was masqueraded, then the host sends to c2 directly.
/// The first datagram c2 gets.
fn peer_sends_again_after(ns: &HostNs, family: &Family, end: End, protected: bool) -> String {
    let outside = family.outside(ns);
    exchange_and_end(ns, family, &outside, end);
    next_holder_gets(ns, family, &outside, family.host, protected)
}

/// c2 gets `IP` and waits on port 4000; the peer on `outside` sends again
/// from its port 5000 to `peer_sends_to`, then the host sends to c2
/// directly. The first datagram c2 gets.
fn next_holder_gets(
    ns: &HostNs,
    family: &Family,
    outside: &Outside,
    peer_sends_to: &str,
    protected: bool,
) -> String {
    let c2 = Container::start(
        ns,
        &family.run_options(),
        &family.on_port_4000("print(s.recv(100).decode().strip(), flush=True)"),
    );
    listening(&c2, family.proc_udp, 4000);
    if !protected {
        without_generations(ns, family.table);
    }
    for _ in 0..3 {
        outside.ok(&format!(
            "echo secret-for-c1 | nc -u -w 1 -p 5000 {peer_sends_to} 4000 || true"
        ));
    }
    ns.ok(&format!(
        "echo from-the-host | nc -u -w 1 {} 4000 || true",
        family.container
    ));
    c2.lines
        .recv_timeout(Duration::from_secs(10))
        .expect("c2 getting a datagram")
}

#[test]
fn a_peer_sending_again_on_a_containers_flow_out_never_reaches_the_next_holder_of_its_address() {
    let Some(ns) = HostNs::new(
        "a_peer_sending_again_on_a_containers_flow_out_never_reaches_the_next_holder_of_its_address",
    ) else {
        return;
    };
    let got = peer_sends_again_after(&ns, &V4, End::Exits, true);
    assert!(!got.contains("secret-for-c1"), "c2 got c1's peer: {got}");
    assert_eq!(got, "from-the-host");
}

#[test]
fn without_the_generation_rule_a_peer_sending_again_reaches_the_next_holder() {
    let Some(ns) =
        HostNs::new("without_the_generation_rule_a_peer_sending_again_reaches_the_next_holder")
    else {
        return;
    };
    let got = peer_sends_again_after(&ns, &V4, End::Exits, false);
    assert_eq!(
        got, "secret-for-c1",
        "the attack should succeed unprotected"
    );
}

#[test]
fn a_peer_sending_again_over_ipv6_never_reaches_the_next_holder_of_the_address() {
    let Some(ns) =
        HostNs::new("a_peer_sending_again_over_ipv6_never_reaches_the_next_holder_of_the_address")
    else {
        return;
    };
    let got = peer_sends_again_after(&ns, &V6, End::Exits, true);
    assert!(!got.contains("secret-for-c1"), "c2 got c1's peer: {got}");
    assert_eq!(got, "from-the-host");
}

#[test]
fn without_the_generation_rule_a_peer_sending_again_over_ipv6_reaches_the_next_holder() {
    let Some(ns) = HostNs::new(
        "without_the_generation_rule_a_peer_sending_again_over_ipv6_reaches_the_next_holder",
    ) else {
        return;
    };
    let got = peer_sends_again_after(&ns, &V6, End::Exits, false);
    assert_eq!(
        got, "secret-for-c1",
        "the attack should succeed unprotected"
    );
}

#[test]
fn a_crashed_supervisors_flow_out_never_reaches_the_container_that_takes_its_address_back() {
    let Some(ns) = HostNs::new(
        "a_crashed_supervisors_flow_out_never_reaches_the_container_that_takes_its_address_back",
    ) else {
        return;
    };
    let got = peer_sends_again_after(&ns, &V4, End::Crashes, true);
    assert!(!got.contains("secret-for-c1"), "c2 got c1's peer: {got}");
    assert_eq!(got, "from-the-host");
}

#[test]
fn the_next_holder_sending_again_on_its_predecessors_flow_gets_its_replies() {
    let Some(ns) =
        HostNs::new("the_next_holder_sending_again_on_its_predecessors_flow_gets_its_replies")
    else {
        return;
    };
    let outside = ns.outside();
    exchange_and_end(&ns, &V4, &outside, End::Exits);
    // c2 sends on the very flow c1 left (same ports, same peer): the old
    // entry, established and still c1's generation, takes it.
    let c2 = Container::start(
        &ns,
        &V4.run_options(),
        &V4.on_port_4000(
            "s.sendto(b'from-c2', ('192.0.2.2', 5000))\n\
             print(s.recv(100).decode().strip(), flush=True)",
        ),
    );
    listening(&c2, "udp", 4000);
    let flows = V4.flows_out(&ns);
    assert_eq!(flows.lines().count(), 1, "one entry, c1's, reused: {flows}");
    outside.ok("echo reply-for-c2 | nc -u -w 1 -p 5000 192.0.2.1 4000 || true");
    let got = c2
        .lines
        .recv_timeout(Duration::from_secs(10))
        .expect("c2 getting the peer's reply");
    assert_eq!(got, "reply-for-c2");
}

/// A client connected to c1's published port, kept open, until it sends on
/// it or resets it.
struct Client {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
}

impl Client {
    /// Connects to `address`, port 8080, with `python` (a python3 to run
    /// on the client's machine).
    fn connect(mut python: Command, address: &str) -> Client {
        let script = format!(
            "import socket, struct, sys\n\
             s = socket.create_connection(('{address}', 8080), timeout=5)\n\
             print('connected', flush=True)\n\
             if sys.stdin.readline().strip() == 'reset':\n\
             \x20   s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n\
             \x20   s.close()\n\
             \x20   print('reset', flush=True)\n\
             else:\n\
             \x20   s.sendall(b'secret-for-c1\\n')\n\
             \x20   print('sent', flush=True)\n\
             sys.stdin.readline()\n"
        );
        let mut child = python
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the outside client");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        lines.read_line(&mut line).expect("the client's first line");
        assert_eq!(line.trim(), "connected");
        Client { child, lines }
    }

    /// Sends on the connection, which still exists in conntrack, or
    /// resets it (SO_LINGER 0): one segment either way.
    fn send(&mut self, sends: Sends) {
        let (tell, done): (&[u8], &str) = match sends {
            Sends::Data => (b"\n", "sent"),
            Sends::Reset => (b"reset\n", "reset"),
        };
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(tell).expect("tell the client");
        stdin.flush().expect("tell the client");
        let mut line = String::new();
        self.lines
            .read_line(&mut line)
            .expect("the client's answer");
        assert_eq!(line.trim(), done);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the client sends on its connection once c1 has ended.
#[derive(Clone, Copy, PartialEq)]
enum Sends {
    Data,
    /// A reset: the generation chain lets a dead generation's resets pass
    /// in a connection's reply direction alone (see
    /// churn::a_stopping_containers_reset_reaches_its_client_in_another_container_after_its_generation_went),
    /// never a client's, which goes to the container's address.
    Reset,
}

/// Where the client of a published port is.
#[derive(Clone, Copy, PartialEq)]
enum ClientAt {
    /// On the outside machine, to the host's 192.0.2.1:8080.
    Outside,
    /// On the host itself, to 127.0.0.1:8080 (output, not forward).
    Host,
}

/// c1 publishes 8080 to its port 8000, where it accepts a connection from
/// a client, and ends; c2 gets its address and publishes nothing; the
/// client sends again on its connection (`sends`). The packets to port
/// 8000 that arrive in c2's namespace.
fn client_sends_again(ns: &HostNs, from: ClientAt, sends: Sends, protected: bool) -> u64 {
    let outside = ns.outside();
    let mut c1 = Container::start(
        ns,
        &["--ip", IP, "-p", "8080:8000"],
        "python3 -c \"import socket, time\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('', 8000)); s.listen()\n\
         c, _ = s.accept(); print('accepted', flush=True); time.sleep(60)\"",
    );
    listening(&c1, "tcp", 8000);
    let python = common::forge::python();
    let mut client = match from {
        ClientAt::Outside => Client::connect(outside.command(python), "192.0.2.1"),
        ClientAt::Host => Client::connect(ns.command(python), "127.0.0.1"),
    };
    assert_eq!(c1.line(), "accepted");
    c1.stop();
    address_given_back(ns);
    let c2 = Container::start(ns, &["--ip", IP], "sleep 60");
    let counted = c2.sh("nft add table ip count && \
         nft add chain ip count in '{ type filter hook prerouting priority -300; }' && \
         nft add rule ip count in tcp dport 8000 counter");
    assert!(counted.status.success(), "{}", common::stderr(&counted));
    if !protected {
        without_generations(ns, "ip");
    }
    client.send(sends);
    // The client's segment, and its retransmissions when nothing answers.
    std::thread::sleep(Duration::from_millis(1500));
    let chain = c2.sh("nft list chain ip count in");
    common::counted_packets(&String::from_utf8_lossy(&chain.stdout))
}

#[test]
fn an_outside_clients_connection_to_a_published_port_never_reaches_the_next_holder_of_the_address()
{
    let Some(ns) = HostNs::new(
        "an_outside_clients_connection_to_a_published_port_never_reaches_the_next_holder_of_the_address",
    ) else {
        return;
    };
    assert_eq!(
        client_sends_again(&ns, ClientAt::Outside, Sends::Data, true),
        0,
        "packets reached c2"
    );
}

#[test]
fn without_the_generation_rule_an_outside_clients_connection_reaches_the_next_holder() {
    let Some(ns) = HostNs::new(
        "without_the_generation_rule_an_outside_clients_connection_reaches_the_next_holder",
    ) else {
        return;
    };
    assert!(
        client_sends_again(&ns, ClientAt::Outside, Sends::Data, false) > 0,
        "the attack should succeed unprotected"
    );
}

#[test]
fn an_outside_clients_reset_of_its_connection_to_a_published_port_never_reaches_the_next_holder() {
    let Some(ns) = HostNs::new(
        "an_outside_clients_reset_of_its_connection_to_a_published_port_never_reaches_the_next_holder",
    ) else {
        return;
    };
    assert_eq!(
        client_sends_again(&ns, ClientAt::Outside, Sends::Reset, true),
        0,
        "the reset reached c2"
    );
}

#[test]
fn a_host_clients_connection_to_a_published_port_never_reaches_the_next_holder_of_the_address() {
    let Some(ns) = HostNs::new(
        "a_host_clients_connection_to_a_published_port_never_reaches_the_next_holder_of_the_address",
    ) else {
        return;
    };
    assert_eq!(
        client_sends_again(&ns, ClientAt::Host, Sends::Data, true),
        0,
        "packets reached c2"
    );
}

#[test]
fn without_the_generation_rule_a_host_clients_connection_reaches_the_next_holder() {
    let Some(ns) = HostNs::new(
        "without_the_generation_rule_a_host_clients_connection_reaches_the_next_holder",
    ) else {
        return;
    };
    assert!(
        client_sends_again(&ns, ClientAt::Host, Sends::Data, false) > 0,
        "the attack should succeed unprotected"
    );
}

/// The ct mark of the UDP connection from `from` to `to`, as the host's
/// conntrack shows it.
fn connection_mark(ns: &HostNs, from: &str, to: &str) -> u32 {
    let entry = ns.ok(&format!(
        "conntrack -L -f ipv4 -p udp --orig-src {from} --orig-dst {to} 2>/dev/null"
    ));
    entry
        .split_whitespace()
        .find_map(|w| w.strip_prefix("mark="))
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("one entry {from} -> {to} with a mark: {entry:?}"))
}

/// The generation of the container at `address`.
fn generation_of(ns: &HostNs, address: &str) -> u32 {
    let map = ns.ok("nft list map ip supervisor generations");
    let value = map
        .split([',', '{', '}'])
        .find_map(|element| {
            let (key, value) = element.split_once(':')?;
            // `ADDRESS comment "OWNER" : GENERATION`
            (key.split_whitespace().next() == Some(address)).then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no generation for {address}: {map}"));
    u32::from_str_radix(value.trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("a generation: {value:?}"))
}

/// With br_netfilter on, traffic between two containers of one network
/// passes the ip forward hook in both directions. Its connection keeps the
/// generation of the one that opened it: a mark that followed each
/// packet's sender would be rewritten (a conntrack write and an event) at
/// every packet.
#[test]
fn a_connection_between_two_containers_of_one_network_keeps_its_openers_mark() {
    let Some(ns) =
        HostNs::new("a_connection_between_two_containers_of_one_network_keeps_its_openers_mark")
    else {
        return;
    };
    const SERVER: &str = "172.16.0.3";
    let server = Container::start(
        &ns,
        &["--ip", SERVER],
        "python3 -c \"import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', 4000)); s.settimeout(30)\n\
         while True:\n    data, sender = s.recvfrom(100)\n    \
         data == b'ask' and s.sendto(b'answer', sender)\"",
    );
    listening(&server, "udp", 4000);
    ns.ok("echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables");
    let client = Container::start(&ns, &["--ip", IP], "sleep 60");
    // One socket's flow each time: the client's port 5000 to the server's
    // 4000.
    let send = |what: &str, answered: bool| {
        let wait = if answered {
            "print(s.recv(100).decode())"
        } else {
            ""
        };
        let out = client.sh(&format!(
            "python3 -c \"import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('', 5000))\n\
             s.sendto(b'{what}', ('{SERVER}', 4000))\n{wait}\""
        ));
        assert!(out.status.success(), "{}", common::stderr(&out));
    };
    let opener = generation_of(&ns, IP);
    assert_ne!(opener, generation_of(&ns, SERVER));
    send("tell", false);
    assert_eq!(
        connection_mark(&ns, IP, SERVER),
        opener,
        "after the opener's packet"
    );
    send("ask", true);
    assert_eq!(
        connection_mark(&ns, IP, SERVER),
        opener,
        "after the server's reply"
    );
    send("tell", false);
    assert_eq!(
        connection_mark(&ns, IP, SERVER),
        opener,
        "after the opener's next packet"
    );
}

/// A pod of another node (CNI's noMasqueradeCidrs: the outside's network
/// here) opens a UDP flow to c1 directly, which answers and ends; then as
/// `next_holder_gets`, the peer sending again on its flow.
fn routed_peer_sends_again(ns: &HostNs, protected: bool) -> String {
    let outside = ns.outside();
    let mut c1 = Container::start(
        ns,
        &V4.run_options(),
        &V4.on_port_4000(
            "_, sender = s.recvfrom(100); s.sendto(b'answer', sender)\n\
             print('answered', flush=True)",
        ),
    );
    listening(&c1, "udp", 4000);
    ns.ok(r#"nft add element ip supervisor no_masquerade { "sv0" . 192.0.2.0/24 }"#);
    let answer = outside.ok(&format!(
        "echo question | nc -u -w 1 -p 5000 {IP} 4000 || true"
    ));
    assert_eq!(answer.trim(), "answer");
    assert_eq!(c1.line(), "answered");
    c1.stop();
    address_given_back(ns);
    next_holder_gets(ns, &V4, &outside, IP, protected)
}

#[test]
fn a_routed_peers_flow_into_a_container_never_reaches_the_next_holder_of_its_address() {
    let Some(ns) = HostNs::new(
        "a_routed_peers_flow_into_a_container_never_reaches_the_next_holder_of_its_address",
    ) else {
        return;
    };
    let got = routed_peer_sends_again(&ns, true);
    assert!(!got.contains("secret-for-c1"), "c2 got c1's peer: {got}");
    assert_eq!(got, "from-the-host");
}

#[test]
fn without_the_generation_rule_a_routed_peers_flow_reaches_the_next_holder() {
    let Some(ns) =
        HostNs::new("without_the_generation_rule_a_routed_peers_flow_reaches_the_next_holder")
    else {
        return;
    };
    let got = routed_peer_sends_again(&ns, false);
    assert_eq!(
        got, "secret-for-c1",
        "the attack should succeed unprotected"
    );
}
