//! The `[::1]` proxy against real sockets, each test in its own network
//! namespace (loopback only): TCP relayed with half-close, UDP clients kept
//! apart, everything closed on shutdown, a taken port named.

mod common;

use std::collections::HashSet;
use std::net::{Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::closed::{self, Table};
use common::loopback6::{
    Seen, TestCgroup, assert_direct, assert_relayed, client, client_bound_to_lo, seen, udp_sender,
};
use common::netns::{async_in_fresh_netns, fd_path, new_netns, sh_in, this_thread_netns};
use supervisor::error_chain::Chain;
use supervisor::proxy::{self, Forward, Limits, Proxies, Proxy, TcpRelay};
use supervisor::reserve::{Families, Reservations};
use supervisor::values::{HostIp, Loopback6Cgroup, PortMapping, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const LOCALHOST6: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// A TCP target that reads until the client's half-close, then sends back
/// everything it read and closes: it answers only if the half-close came
/// through.
async fn echo_after_eof() -> SocketAddr {
    let listener = TcpListener::bind((LOCALHOST6, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut all = Vec::new();
                stream.read_to_end(&mut all).await.unwrap();
                stream.write_all(&all).await.unwrap();
                stream.shutdown().await.unwrap();
            });
        }
    });
    addr
}

/// Proxies `[::1]:0` (a free port) to `target`.
async fn proxy_to(protocol: Protocol, target: SocketAddr, limits: Limits) -> Proxy {
    Proxy::start_with(Forward::loopback6(protocol, 0, target), limits)
        .await
        .unwrap()
}

/// Both ways of relaying TCP.
const RELAYS: [TcpRelay; 2] = [TcpRelay::Splice, TcpRelay::Copy];

fn relaying(how: TcpRelay) -> Limits {
    Limits {
        tcp_relay: how,
        ..Limits::default()
    }
}

#[test]
fn tcp_through_the_proxy_carries_8_mib_both_ways_and_passes_the_half_close_on() {
    async_in_fresh_netns(
        "tcp_through_the_proxy_carries_8_mib_both_ways_and_passes_the_half_close_on",
        || async {
            let target = echo_after_eof().await;
            for how in RELAYS {
                let proxy = proxy_to(Protocol::Tcp, target, relaying(how)).await;
                assert_eq!(proxy.local_addr().ip(), LOCALHOST6);
                let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
                let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
                let (mut read, mut write) = client.split();
                let sent = async {
                    write.write_all(&data).await.unwrap();
                    // shutdown(Write): the target sees EOF and only then answers.
                    write.shutdown().await.unwrap();
                };
                let mut back = Vec::new();
                let received = tokio::time::timeout(Duration::from_secs(20), async {
                    tokio::join!(sent, read.read_to_end(&mut back)).1
                })
                .await
                .unwrap_or_else(|_| panic!("{how:?}: no echo, so the half-close was lost"));
                received.unwrap();
                assert_eq!(back.len(), data.len(), "{how:?}");
                assert!(back == data, "{how:?}: the bytes come back unchanged");
                proxy.shutdown().await;
            }
        },
    );
}

/// The congestion control of each established TCP socket in the calling
/// thread's namespace that `filter` (an `ss` filter) selects.
fn congestion_controls(filter: &str) -> Vec<String> {
    let out = sh_in(
        &this_thread_netns(),
        &format!("ss -tinH state established '{filter}'"),
    );
    // Each socket: a line of addresses, then an indented line of details
    // opening with the algorithm's name.
    out.lines()
        .filter(|line| line.starts_with(char::is_whitespace))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn both_hops_of_a_relayed_tcp_connection_run_reno_whatever_the_hosts_default() {
    async_in_fresh_netns(
        "both_hops_of_a_relayed_tcp_connection_run_reno_whatever_the_hosts_default",
        || async {
            let default =
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap();
            let default = default.trim();
            if default == "reno" {
                eprintln!("the host's default is reno already: nothing to tell apart");
                return;
            }
            // Every round's target listener, kept open so that each round's
            // is on a port of its own: a connection of an earlier round, on
            // its way to closing (or still open, while a command forked
            // beside this test holds a copy of its socket until it execs),
            // never matches a later round's filter. The proxy's port is
            // fresh too: bind(2) picks port 0 among ports no socket is on.
            let mut targets = Vec::new();
            for how in RELAYS {
                // Both ways a proxy starts: binding, and from a reservation's socket.
                for from_reservation in [false, true] {
                    let target_listener = TcpListener::bind((LOCALHOST6, 0)).await.unwrap();
                    let target = target_listener.local_addr().unwrap();
                    let proxy = if from_reservation {
                        let reserved = std::net::TcpListener::bind((LOCALHOST6, 0)).unwrap();
                        Proxy::serve(
                            OwnedFd::from(reserved),
                            Protocol::Tcp,
                            target,
                            relaying(how),
                        )
                        .unwrap()
                    } else {
                        proxy_to(Protocol::Tcp, target, relaying(how)).await
                    };
                    let at = proxy.local_addr();
                    let _client = TcpStream::connect(at).await.unwrap();
                    let (_held, _) = target_listener.accept().await.unwrap();
                    // The proxy's side of the client's connection, and its
                    // own connection to the target.
                    let hops = format!("( sport = :{} or dport = :{} )", at.port(), target.port());
                    assert_eq!(
                        congestion_controls(&hops),
                        ["reno", "reno"],
                        "{how:?}, serving {at}"
                    );
                    // The client's own socket keeps the host's default.
                    assert_eq!(
                        congestion_controls(&format!("( dport = :{} )", at.port())),
                        [default],
                        "{how:?}, serving {at}"
                    );
                    proxy.shutdown().await;
                    targets.push(target_listener);
                }
            }
        },
    );
}

/// A UDP target answering each datagram with the datagram and the port it
/// came from, and reporting each source port it saw.
async fn udp_echo() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<u16>) {
    let socket = UdpSocket::bind((LOCALHOST6, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (seen, ports) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let (len, peer) = socket.recv_from(&mut buf).await.unwrap();
            let _ = seen.send(peer.port());
            let mut reply = buf[..len].to_vec();
            reply.extend_from_slice(format!(" via {}", peer.port()).as_bytes());
            socket.send_to(&reply, peer).await.unwrap();
        }
    });
    (addr, ports)
}

async fn ask(client: &UdpSocket, to: SocketAddr, what: &str) -> Option<String> {
    client.send_to(what.as_bytes(), to).await.unwrap();
    let mut buf = [0u8; 2048];
    let got = tokio::time::timeout(Duration::from_millis(500), client.recv_from(&mut buf)).await;
    got.ok().map(|r| {
        let (len, from) = r.unwrap();
        assert_eq!(from, to, "replies come from the proxy's port");
        String::from_utf8_lossy(&buf[..len]).into_owned()
    })
}

#[test]
fn udp_through_the_proxy_answers_each_client_from_its_own_flow() {
    async_in_fresh_netns(
        "udp_through_the_proxy_answers_each_client_from_its_own_flow",
        || async {
            let (target, mut ports) = udp_echo().await;
            let proxy = proxy_to(Protocol::Udp, target, Limits::default()).await;
            let to = proxy.local_addr();
            let a = UdpSocket::bind((LOCALHOST6, 0)).await.unwrap();
            let b = UdpSocket::bind((LOCALHOST6, 0)).await.unwrap();
            let a1 = ask(&a, to, "from a").await.unwrap();
            let b1 = ask(&b, to, "from b").await.unwrap();
            let a2 = ask(&a, to, "from a again").await.unwrap();
            assert!(a1.starts_with("from a via "), "{a1}");
            assert!(b1.starts_with("from b via "), "{b1}");
            // Each client keeps its flow (one source port at the target),
            // and the two flows differ.
            let port = |reply: &str| reply.rsplit(' ').next().unwrap().to_string();
            assert_eq!(port(&a1), port(&a2));
            assert_ne!(port(&a1), port(&b1));
            // Nothing crossed over: b's socket has nothing more to read.
            let mut buf = [0u8; 64];
            assert!(
                tokio::time::timeout(Duration::from_millis(200), b.recv_from(&mut buf))
                    .await
                    .is_err()
            );
            let mut seen = HashSet::new();
            while let Ok(p) = ports.try_recv() {
                seen.insert(p);
            }
            assert_eq!(seen.len(), 2, "{seen:?}");
            proxy.shutdown().await;
        },
    );
}

#[test]
fn an_idle_udp_flow_ends_and_a_client_past_the_limit_is_dropped() {
    async_in_fresh_netns(
        "an_idle_udp_flow_ends_and_a_client_past_the_limit_is_dropped",
        || async {
            let (target, _ports) = udp_echo().await;
            let limits = Limits {
                udp_idle: Duration::from_millis(300),
                udp_max_flows: 1,
                ..Limits::default()
            };
            let proxy = proxy_to(Protocol::Udp, target, limits).await;
            let to = proxy.local_addr();
            let a = UdpSocket::bind((LOCALHOST6, 0)).await.unwrap();
            let b = UdpSocket::bind((LOCALHOST6, 0)).await.unwrap();
            let first = ask(&a, to, "a").await.unwrap();
            assert_eq!(ask(&b, to, "b").await, None, "one flow at most");
            tokio::time::sleep(Duration::from_millis(500)).await;
            // a's flow went idle: b gets the place, a new flow.
            let b1 = ask(&b, to, "b").await.expect("the idle flow made room");
            let port = |reply: &str| reply.rsplit(' ').next().unwrap().to_string();
            assert_ne!(port(&first), port(&b1));
            proxy.shutdown().await;
        },
    );
}

/// A TCP target that reports each connection it accepts, reads it until
/// the client's half-close, then answers `served` and closes.
async fn counting_target() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind((LOCALHOST6, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = accepted.send(());
            tokio::spawn(async move {
                let mut all = Vec::new();
                let _ = stream.read_to_end(&mut all).await;
                let _ = stream.write_all(b"served").await;
            });
        }
    });
    (addr, seen)
}

/// What `at` answers a client that sends one byte and half-closes: "" when
/// it closes the connection unserved.
async fn answer(at: SocketAddr) -> String {
    let mut client = TcpStream::connect(at).await.unwrap();
    let _ = client.write_all(b"x").await;
    let _ = client.shutdown().await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "a client past the limit is closed, not left hanging"
    );
    String::from_utf8_lossy(&got).into_owned()
}

/// A local user flooding `[::1]:PORT` (bound to `::1` first, so the
/// connect hook leaves it to the relay) held a descriptor six each in the
/// supervisor for as long as the container kept its end: 200 clients held
/// a supervisor at its limit of 300, spinning on accept, every new UDP
/// flow refused. A client past the limit is closed at once, and the
/// clients within it are served.
#[test]
fn a_tcp_client_past_the_proxys_limit_is_closed_at_once_and_its_place_freed_by_one_ending() {
    async_in_fresh_netns(
        "a_tcp_client_past_the_proxys_limit_is_closed_at_once_and_its_place_freed_by_one_ending",
        || async {
            for how in RELAYS {
                let (target, mut accepted) = counting_target().await;
                let limits = Limits {
                    tcp_max_connections: 3,
                    ..relaying(how)
                };
                let proxy = proxy_to(Protocol::Tcp, target, limits).await;
                let at = proxy.local_addr();
                let mut held = Vec::new();
                for _ in 0..3 {
                    held.push(TcpStream::connect(at).await.unwrap());
                    accepted.recv().await.unwrap();
                }
                assert_eq!(
                    answer(at).await,
                    "",
                    "the fourth client is closed ({how:?})"
                );
                assert!(
                    accepted.try_recv().is_err(),
                    "the fourth client reached the target ({how:?})"
                );
                // One held client ends: its relay ends once the target has
                // closed its end too, and the place is free again.
                drop(held.remove(0));
                let mut served = false;
                for _ in 0..100 {
                    if answer(at).await == "served" {
                        served = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert!(served, "a client is served once a place is free ({how:?})");
                proxy.shutdown().await;
            }
        },
    );
}

#[test]
fn shutting_the_proxy_down_closes_its_listener_and_every_connection() {
    async_in_fresh_netns(
        "shutting_the_proxy_down_closes_its_listener_and_every_connection",
        || async {
            // A target that holds connections open and never answers.
            let held = TcpListener::bind((LOCALHOST6, 0)).await.unwrap();
            let target = held.local_addr().unwrap();
            let hold = tokio::spawn(async move {
                let mut open = Vec::new();
                loop {
                    let (stream, _) = held.accept().await.unwrap();
                    open.push(stream);
                }
            });
            for (how, stop_by_drop) in [
                (TcpRelay::Splice, false),
                (TcpRelay::Splice, true),
                (TcpRelay::Copy, false),
                (TcpRelay::Copy, true),
            ] {
                let proxy = proxy_to(Protocol::Tcp, target, relaying(how)).await;
                let at = proxy.local_addr();
                let mut client = TcpStream::connect(at).await.unwrap();
                client.write_all(b"ping").await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                if stop_by_drop {
                    drop(proxy);
                } else {
                    proxy.shutdown().await;
                }
                let mut buf = [0u8; 16];
                let read = tokio::time::timeout(Duration::from_secs(2), client.read(&mut buf))
                    .await
                    .expect("the connection is closed, not left hanging");
                assert!(
                    matches!(read, Ok(0) | Err(_)),
                    "closed ({how:?}, drop: {stop_by_drop}): {read:?}"
                );
                // Once the kernel has let the listener go: a command forked
                // beside this test may hold a copy until its exec is done
                // (see `common::closed`).
                closed::not_listening(Table::Tcp6, at.port());
                let again = TcpStream::connect(at).await;
                assert!(
                    again.is_err(),
                    "the listener is closed ({how:?}, drop: {stop_by_drop})"
                );
            }
            // UDP: the port is free again right after shutdown.
            let (udp_target, _) = udp_echo().await;
            let proxy = proxy_to(Protocol::Udp, udp_target, Limits::default()).await;
            let at = proxy.local_addr();
            let client = UdpSocket::bind((LOCALHOST6, 0)).await.unwrap();
            assert!(ask(&client, at, "x").await.is_some());
            proxy.shutdown().await;
            closed::unbound(Table::Udp6, [at.port()]);
            UdpSocket::bind(at)
                .await
                .expect("the UDP port is free again");
            hold.abort();
        },
    );
}

#[test]
fn a_port_in_use_is_an_error_naming_the_port_and_starts_nothing() {
    async_in_fresh_netns(
        "a_port_in_use_is_an_error_naming_the_port_and_starts_nothing",
        || async {
            let target = echo_after_eof().await;
            let taken = TcpListener::bind((LOCALHOST6, 0)).await.unwrap();
            let port = taken.local_addr().unwrap().port();
            let err = Proxy::start(Forward::loopback6(Protocol::Tcp, port, target))
                .await
                .unwrap_err();
            assert_eq!(
                Chain(&err).to_string(),
                format!(
                    "serving [::1]:{port}/tcp for the published port {port}: Address already in use (os error 98)"
                )
            );
            // Several at once: the one that cannot bind undoes the others.
            // Any port is free in the test's own namespace; not one a probe
            // socket had, which a command forked beside this test would
            // hold until it execs (see `common::closed`).
            let free = common::unique_port();
            let forwards = [
                Forward::loopback6(Protocol::Tcp, free, target),
                Forward::loopback6(Protocol::Tcp, port, target),
            ];
            let err = Proxies::start(&forwards).await.unwrap_err();
            assert!(err.to_string().contains(&format!("port {port}")), "{err}");
            closed::unbound(Table::Tcp6, [free]);
            TcpListener::bind((LOCALHOST6, free))
                .await
                .expect("the first proxy was shut down again");
        },
    );
}

const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfd53, 0x7570, 0x6572, 0, 0, 0, 0, 1);
const CONTAINER6: Ipv6Addr = Ipv6Addr::new(0xfd53, 0x7570, 0x6572, 0, 0, 0, 0, 2);
const OTHER_HOST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const CONTAINER_PORT: u16 = 8000;

/// A container as `run --ipv6` makes one, in the test's host namespace: a
/// bridge with the gateway, the container's eth0 with its address and a
/// default route in a namespace of its own (returned), and another address
/// of the host (documentation prefix) on a veth pair of its own.
fn container_behind_a_bridge() -> OwnedFd {
    let ctr = new_netns();
    sh_in(
        &this_thread_netns(),
        &format!(
            "ip link add svp0 type bridge && ip addr add {GATEWAY6}/64 dev svp0 nodad \
             && ip link set svp0 up \
             && ip link add svph type veth peer name eth0 && ip link set eth0 netns {ctr} \
             && ip link set svph master svp0 up \
             && ip link add svo0 type veth peer name svo1 \
             && ip addr add {OTHER_HOST6}/64 dev svo0 nodad \
             && ip link set svo0 up && ip link set svo1 up",
            ctr = fd_path(&ctr)
        ),
    );
    sh_in(
        &fd_path(&ctr),
        &format!(
            "ip link set lo up && ip link set eth0 up \
             && ip addr add {CONTAINER6}/64 dev eth0 nodad \
             && ip route add default via {GATEWAY6}"
        ),
    );
    ctr
}

/// The container's servers on port 8000, TCP and UDP: each answers with
/// the address its client came from.
fn servers_reporting_the_client(ctr: &OwnedFd) {
    let ctr = ctr.try_clone().unwrap();
    let (ready, is_ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(ctr, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let tcp = std::net::TcpListener::bind((Ipv6Addr::UNSPECIFIED, CONTAINER_PORT)).unwrap();
        let udp = std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, CONTAINER_PORT)).unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((_, peer)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(peer.ip().to_string().as_bytes(), peer);
            }
        });
        ready.send(()).unwrap();
        for stream in tcp.incoming() {
            let Ok(mut stream) = stream else { continue };
            let peer = stream.peer_addr().unwrap().ip().to_string();
            let _ = std::io::Write::write_all(&mut stream, peer.as_bytes());
        }
    });
    is_ready.recv().unwrap();
}

/// The host's nftables: every local address but `::1` DNATed to the
/// container on `tcp` and `udp`, as the firewall's ip6 table does.
fn dnat_every_address_but_loopback(tcp: u16, udp: u16) {
    let rule = |protocol, port| {
        format!(
            "ip6 daddr != ::1 fib daddr type local {protocol} dport {port} \
             dnat to [{CONTAINER6}]:{CONTAINER_PORT}"
        )
    };
    let rules = format!(
        "table ip6 svtest {{\n chain output {{\n type nat hook output priority -100\n {}\n {}\n }}\n}}",
        rule("tcp", tcp),
        rule("udp", udp)
    );
    sh_in(
        &this_thread_netns(),
        &format!("nft -f - <<'EOF'\n{rules}\nEOF"),
    );
}

/// What the container's TCP server saw as its client, through `to`.
async fn tcp_client_seen(to: SocketAddr) -> String {
    for _ in 0..50 {
        if let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(to)).await
        {
            let mut seen = String::new();
            stream.read_to_string(&mut seen).await.unwrap();
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no answer through {to}");
}

/// What the container's UDP server saw as its client, through `to`.
async fn udp_client_seen(to: SocketAddr) -> String {
    let client = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).await.unwrap();
    for _ in 0..20 {
        client.send_to(b"who", to).await.unwrap();
        let mut buf = [0u8; 64];
        if let Ok(got) =
            tokio::time::timeout(Duration::from_millis(500), client.recv_from(&mut buf)).await
        {
            let (len, from) = got.unwrap();
            assert_eq!(from, to, "the answer comes from the address asked");
            return String::from_utf8_lossy(&buf[..len]).into_owned();
        }
    }
    panic!("no answer through {to}");
}

#[test]
fn loopback6_reaches_the_container_through_the_proxy_and_other_host_addresses_through_dnat() {
    async_in_fresh_netns(
        "loopback6_reaches_the_container_through_the_proxy_and_other_host_addresses_through_dnat",
        || async {
            let ctr = container_behind_a_bridge();
            servers_reporting_the_client(&ctr);
            let on_every_ipv6_address = |protocol| PortMapping {
                host_ip: Some(HostIp::AnyV6),
                host_port: None,
                host_range: None,
                container_port: CONTAINER_PORT,
                protocol,
            };
            let held = Reservations::take(
                &[
                    on_every_ipv6_address(Protocol::Tcp),
                    on_every_ipv6_address(Protocol::Udp),
                ],
                Families::DualStack,
                &|_| None,
            )
            .unwrap();
            let ports: Vec<u16> = held
                .mappings()
                .iter()
                .map(|m| m.host_port.unwrap())
                .collect();
            let (tcp, udp) = (ports[0], ports[1]);
            dnat_every_address_but_loopback(tcp, udp);
            let proxies = proxy::start_all(&held, CONTAINER6).await.unwrap();
            assert_eq!(proxies.iter().count(), 2);

            // Another address of the host: DNAT, the client's address kept.
            let other = |port| SocketAddr::from((OTHER_HOST6, port));
            assert_eq!(tcp_client_seen(other(tcp)).await, OTHER_HOST6.to_string());
            assert_eq!(udp_client_seen(other(udp)).await, OTHER_HOST6.to_string());
            // ::1: the proxy, on the reservation's socket; the container sees
            // the proxy's connection from the gateway (the client's address
            // is lost on this path only).
            let loopback = |port| SocketAddr::from((LOCALHOST6, port));
            assert_eq!(tcp_client_seen(loopback(tcp)).await, GATEWAY6.to_string());
            assert_eq!(udp_client_seen(loopback(udp)).await, GATEWAY6.to_string());

            proxies.shutdown().await;
            drop(held);
        },
    );
}

/// A TCP server in `ctr` on `port` that answers each client with the
/// address and port it came from, `ADDR PORT`.
fn server_reporting_address_and_port(ctr: &OwnedFd, port: u16) {
    serve_in(ctr, port, |peer| format!("{} {}", peer.ip(), peer.port()));
}

/// A TCP server in `ctr` on `port` answering `answer(client)` and closing.
fn serve_in(ctr: &OwnedFd, port: u16, answer: fn(SocketAddr) -> String) {
    let ctr = ctr.try_clone().unwrap();
    let (ready, is_ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(ctr, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let tcp = std::net::TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).unwrap();
        ready.send(()).unwrap();
        for stream in tcp.incoming() {
            let Ok(mut stream) = stream else { continue };
            let said = answer(stream.peer_addr().unwrap());
            let _ = std::io::Write::write_all(&mut stream, said.as_bytes());
        }
    });
    is_ready.recv().unwrap();
}

/// What a client process sees connecting to `[::1]:port` from the
/// namespace at `netns` (see `common::loopback6::client`), after `prefix`
/// (a shell prefix, e.g. entering a cgroup); on a thread of its own: the
/// relay serves on the test's.
async fn client_of_loopback6(netns: &str, prefix: &str, port: u16, bind_loopback: bool) -> Seen {
    let (netns, script) = (
        netns.to_string(),
        format!("{prefix}{}", client(port, bind_loopback)),
    );
    tokio::task::spawn_blocking(move || seen(&sh_in(&netns, &script)))
        .await
        .unwrap()
}

/// The container as a client of the hook sees it as its peer.
fn container_peer() -> String {
    format!("[{CONTAINER6}]:{CONTAINER_PORT}")
}

/// The hook on `cgroup` for `held`'s TCP port.
fn hook_on(held: &Reservations, cgroup: &TestCgroup) -> proxy::Hook {
    let hooked = Loopback6Cgroup::At(cgroup.path().to_path_buf());
    proxy::hook_all(held, CONTAINER6, &hooked)
        .unwrap_or_else(|e| panic!("{}", Chain(&e)))
        .expect("a TCP port to hook")
}

/// A cgroup of the test's own (named `name`), the container with its
/// server reporting its clients, and one TCP port reserved for it.
fn relayed_container(name: &str) -> (TestCgroup, OwnedFd, Reservations, u16) {
    let cgroup = TestCgroup::new(name);
    let ctr = container_behind_a_bridge();
    server_reporting_address_and_port(&ctr, CONTAINER_PORT);
    let (held, port) = one_tcp_port();
    (cgroup, ctr, held, port)
}

/// One TCP port reserved on every IPv6 address for `CONTAINER_PORT`.
fn one_tcp_port() -> (Reservations, u16) {
    let held = Reservations::take(
        &[PortMapping {
            host_ip: Some(HostIp::AnyV6),
            host_port: None,
            host_range: None,
            container_port: CONTAINER_PORT,
            protocol: Protocol::Tcp,
        }],
        Families::DualStack,
        &|_| None,
    )
    .unwrap();
    let port = held.mappings()[0].host_port.unwrap();
    (held, port)
}

#[test]
fn loopback6_from_the_hooked_cgroup_goes_straight_to_the_container_and_elsewhere_through_the_relay()
{
    let test = "loopback6_from_the_hooked_cgroup_goes_straight_to_the_container_and_elsewhere_through_the_relay";
    async_in_fresh_netns(test, || async {
        let (cgroup, _ctr, held, port) = relayed_container("hooked-direct");
        let proxies = proxy::start_all(&held, CONTAINER6).await.unwrap();
        let hook = hook_on(&held, &cgroup);
        let host = this_thread_netns();
        // In the cgroup: its own connection reaches the container.
        let seen = client_of_loopback6(&host, &cgroup.enter(), port, false).await;
        assert_direct(&seen, &container_peer(), "in the hooked cgroup");
        // Outside it, and bound to ::1 in it: the relay.
        let seen = client_of_loopback6(&host, "", port, false).await;
        assert_relayed(&seen, port, "outside the hooked cgroup");
        let seen = client_of_loopback6(&host, &cgroup.enter(), port, true).await;
        assert_relayed(&seen, port, "bound to ::1 in the hooked cgroup");
        // Dropped: the relay for everyone.
        drop(hook);
        let seen = client_of_loopback6(&host, &cgroup.enter(), port, false).await;
        assert_relayed(&seen, port, "in the cgroup once the hook is dropped");
        assert!(
            proxy::hook_all(&held, CONTAINER6, &Loopback6Cgroup::None)
                .unwrap()
                .is_none()
        );
        proxies.shutdown().await;
    });
}

/// The hook rewrites unbound TCP only: a socket bound to a device (`curl
/// --interface lo`, a VRF) could not leave by the bridge, and was left
/// unreachable (ENETUNREACH) where the relay answers; a UDP datagram to
/// `[::1]:PORT` is the relay's (or here, a host socket's), never the
/// container's.
#[test]
fn the_hook_leaves_a_socket_bound_to_a_device_and_udp_to_loopback6_alone() {
    let test = "the_hook_leaves_a_socket_bound_to_a_device_and_udp_to_loopback6_alone";
    async_in_fresh_netns(test, || async {
        let (cgroup, _ctr, held, port) = relayed_container("hooked-bound-device");
        let proxies = proxy::start_all(&held, CONTAINER6).await.unwrap();
        let _hook = hook_on(&held, &cgroup);
        let host = this_thread_netns();
        let script = format!("{}{}", cgroup.enter(), client_bound_to_lo(port));
        let out = {
            let host = host.clone();
            tokio::task::spawn_blocking(move || sh_in(&host, &script))
                .await
                .unwrap()
        };
        assert_relayed(&seen(&out), port, "bound to lo in the hooked cgroup");
        // A UDP socket of the host on [::1]:PORT (the hook's port is TCP's).
        let udp = std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, port)).unwrap();
        udp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let script = format!("{}{}", cgroup.enter(), udp_sender(port));
        tokio::task::spawn_blocking(move || sh_in(&host, &script))
            .await
            .unwrap();
        let mut got = [0u8; 16];
        let n = udp
            .recv(&mut got)
            .expect("the datagram at [::1], not rewritten");
        assert_eq!(&got[..n], b"hello");
        proxies.shutdown().await;
    });
}

#[test]
fn a_process_of_the_hooked_cgroup_in_another_network_namespace_keeps_its_own_loopback() {
    let test = "a_process_of_the_hooked_cgroup_in_another_network_namespace_keeps_its_own_loopback";
    async_in_fresh_netns(test, || async {
        let (cgroup, ctr, held, port) = relayed_container("hooked-other-netns");
        // The container serves the host port's number on its own loopback.
        serve_in(&ctr, port, |_| "its own".to_string());
        let proxies = proxy::start_all(&held, CONTAINER6).await.unwrap();
        let _hook = hook_on(&held, &cgroup);
        let seen = client_of_loopback6(&fd_path(&ctr), &cgroup.enter(), port, false).await;
        assert_eq!(seen.peer, format!("[::1]:{port}"), "{seen:?}");
        assert_eq!(seen.answer, "its own", "{seen:?}");
        proxies.shutdown().await;
    });
}
