//! Host port reservations on IPv6 (`supervisor::reserve`), each test in a
//! network namespace of its own (loopback only): `[::]:P` holds IPv6's
//! port and leaves IPv4's alone, one address refuses its own and every
//! address, refusals name the holder, a port picked for both families is
//! the same on both, and the `[::1]` proxy's listening reservation can be
//! taken again at once by a restarted supervisor.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

use common::closed::{self, Table};
use common::in_fresh_netns;
use common::netns::async_in_fresh_netns;
use supervisor::plan::per_family;
use supervisor::proxy;
use supervisor::reserve::{Error, Families, Reservations};
use supervisor::values::{HostIp, PortMapping, Protocol};

const LOCALHOST6: HostIp = HostIp::V6(Ipv6Addr::LOCALHOST);

fn mapping(host_ip: Option<HostIp>, host_port: Option<u16>, protocol: Protocol) -> PortMapping {
    PortMapping {
        host_ip,
        host_port,
        host_range: None,
        container_port: 80,
        protocol,
    }
}

fn take(mappings: &[PortMapping], families: Families) -> Result<Reservations, Error> {
    Reservations::take(mappings, families, &|_| None)
}

/// A port free on both families: any, in a namespace of the test's own
/// with nothing but what the test binds; not one a probe socket had
/// (bound to port 0 and closed), which a command forked beside this test
/// would hold until it execs.
fn free_port() -> u16 {
    common::unique_port()
}

/// A socket of `protocol` bound to `addr`, with SO_REUSEADDR when `reuse`,
/// and IPV6_V6ONLY when IPv6 (a program that takes IPv6's port alone).
fn program_binds(addr: SocketAddr, protocol: Protocol, reuse: bool) -> nix::Result<OwnedFd> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, setsockopt, sockopt,
    };
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let kind = match protocol {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let socket = nix::sys::socket::socket(family, kind, SockFlag::SOCK_CLOEXEC, None)?;
    if addr.is_ipv6() {
        setsockopt(&socket, sockopt::Ipv6V6Only, &true)?;
    }
    setsockopt(&socket, sockopt::ReuseAddr, &reuse)?;
    nix::sys::socket::bind(socket.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(socket)
}

/// The kernel's table of `protocol`'s sockets on `family`'s addresses.
fn table(protocol: Protocol, ipv6: bool) -> Table {
    match (protocol, ipv6) {
        (Protocol::Tcp, false) => Table::Tcp,
        (Protocol::Tcp, true) => Table::Tcp6,
        (Protocol::Udp, false) => Table::Udp,
        (Protocol::Udp, true) => Table::Udp6,
    }
}

/// A socket of `protocol` bound to `addr` (as `program_binds`, without
/// SO_REUSEADDR), once the kernel lists no socket on its family and port
/// left: one we just closed there may be held a little longer by a
/// command forked beside this test (same process), until its exec is
/// done (see `common::closed`).
fn binds_once_closed(addr: SocketAddr, protocol: Protocol) -> OwnedFd {
    closed::unbound(table(protocol, addr.is_ipv6()), [addr.port()]);
    program_binds(addr, protocol, false).unwrap_or_else(|e| panic!("{addr} {protocol}: {e}"))
}

#[test]
fn a_port_reserved_on_every_ipv6_address_holds_ipv6s_port_and_leaves_ipv4s_free() {
    in_fresh_netns(
        "a_port_reserved_on_every_ipv6_address_holds_ipv6s_port_and_leaves_ipv4s_free",
        || {
            for protocol in [Protocol::Tcp, Protocol::Udp] {
                let port = free_port();
                let held = take(
                    &[mapping(Some(HostIp::AnyV6), Some(port), protocol)],
                    Families::DualStack,
                )
                .unwrap();
                assert_eq!(
                    held.mappings(),
                    [mapping(Some(HostIp::AnyV6), Some(port), protocol)]
                );
                for addr in ["[::]", "[::1]"] {
                    for reuse in [false, true] {
                        let addr: SocketAddr = format!("{addr}:{port}").parse().unwrap();
                        let bound = program_binds(addr, protocol, reuse);
                        assert!(
                            bound.is_err(),
                            "{protocol}: {addr} (SO_REUSEADDR {reuse}) is held"
                        );
                    }
                }
                let v4: SocketAddr = (Ipv4Addr::UNSPECIFIED, port).into();
                program_binds(v4, protocol, false)
                    .unwrap_or_else(|e| panic!("{protocol}: IPv4's port stays free: {e}"));
            }
        },
    );
}

#[test]
fn a_port_on_one_ipv6_address_and_on_every_one_refuse_each_other_naming_the_holder() {
    in_fresh_netns(
        "a_port_on_one_ipv6_address_and_on_every_one_refuse_each_other_naming_the_holder",
        || {
            let port = free_port();
            let pid = std::process::id();
            let on = |host_ip| mapping(Some(host_ip), Some(port), Protocol::Tcp);
            let first = take(&[on(LOCALHOST6)], Families::DualStack).unwrap();
            let err = take(&[on(HostIp::AnyV6)], Families::DualStack).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "cannot publish [::]:{port}->80/tcp: host port [::]:{port}/tcp is in use by process {pid} ("
                )),
                "{text}"
            );
            // The caller names its containers' supervisors.
            let err = Reservations::take(&[on(HostIp::AnyV6)], Families::DualStack, &|p| {
                (p == pid).then(|| "container web".to_string())
            })
            .unwrap_err();
            assert!(
                err.to_string().ends_with("is in use by container web"),
                "{err}"
            );
            drop(first);
            // Once the kernel has let [::1]'s socket go (see `common::closed`).
            closed::unbound(Table::Tcp6, [port]);
            let _every = take(&[on(HostIp::AnyV6)], Families::DualStack).unwrap();
            let err = take(&[on(LOCALHOST6)], Families::DualStack).unwrap_err();
            assert!(
                err.to_string().contains(&format!(
                    "host port [::1]:{port}/tcp is in use by process {pid} ("
                )),
                "{err}"
            );
            // A host program's UDP socket on ::1, named as well.
            let program = std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
            let udp = program.local_addr().unwrap().port();
            let err = take(
                &[mapping(Some(HostIp::AnyV6), Some(udp), Protocol::Udp)],
                Families::DualStack,
            )
            .unwrap_err();
            assert!(
                err.to_string().contains(&format!(
                    "host port [::]:{udp}/udp is in use by process {pid} ("
                )),
                "{err}"
            );
            // And check() refuses as take() does, keeping nothing.
            assert!(
                Reservations::check(&[on(LOCALHOST6)], Families::DualStack, &|_| None).is_err()
            );
        },
    );
}

#[test]
fn a_port_published_without_an_address_is_reserved_on_both_families_when_dual_stack() {
    in_fresh_netns(
        "a_port_published_without_an_address_is_reserved_on_both_families_when_dual_stack",
        || {
            let port = free_port();
            let asked = [mapping(None, Some(port), Protocol::Tcp)];
            let held = take(&asked, Families::DualStack).unwrap();
            assert_eq!(
                held.mappings(),
                [
                    mapping(Some(HostIp::AnyV4), Some(port), Protocol::Tcp),
                    mapping(Some(HostIp::AnyV6), Some(port), Protocol::Tcp),
                ]
            );
            drop(held);
            // IPv4 alone without IPv6 on the network: IPv6's port stays
            // free (once the kernel has let IPv4's socket go).
            closed::unbound(Table::Tcp, [port]);
            let held = take(&asked, Families::Ipv4).unwrap();
            assert_eq!(
                held.mappings(),
                [mapping(Some(HostIp::AnyV4), Some(port), Protocol::Tcp)]
            );
            binds_once_closed((Ipv6Addr::UNSPECIFIED, port).into(), Protocol::Tcp);
        },
    );
}

/// Narrows the namespace's ephemeral ports (what a bind to port 0 picks
/// from) to `first..=last`.
fn port_range(first: u16, last: u16) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo '{first} {last}' > /proc/sys/net/ipv4/ip_local_port_range"
        ))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_port_picked_for_both_families_is_the_same_on_both_and_skips_ports_ipv6_has_taken() {
    in_fresh_netns(
        "a_port_picked_for_both_families_is_the_same_on_both_and_skips_ports_ipv6_has_taken",
        || {
            // Ten ports; IPv6 has all but an even one taken. bind(2) tries
            // odd ports first (even ones are connect's), so a pick that only
            // tried again would keep landing on taken odd ones.
            port_range(40000, 40009);
            let v6 = |p| SocketAddr::from((Ipv6Addr::UNSPECIFIED, p));
            let _taken: Vec<OwnedFd> = (40000..=40009)
                .filter(|&p| p != 40004)
                .map(|p| program_binds(v6(p), Protocol::Tcp, false).unwrap())
                .collect();
            // Unqualified, or already split per family (`plan::per_family`).
            let unqualified = [mapping(None, None, Protocol::Tcp)];
            let split = per_family(&unqualified, true).unwrap();
            for asked in [&unqualified[..], &split, &unqualified, &split] {
                // 40004 was the last round's on both families, and any
                // port on IPv4 may have been a socket a pick tried and
                // closed: once the kernel has let them go.
                closed::unbound(Table::Tcp, 40000..=40009);
                closed::unbound(Table::Tcp6, [40004]);
                let held = take(asked, Families::DualStack).unwrap();
                assert_eq!(
                    held.mappings(),
                    [
                        mapping(Some(HostIp::AnyV4), Some(40004), Protocol::Tcp),
                        mapping(Some(HostIp::AnyV6), Some(40004), Protocol::Tcp),
                    ]
                );
            }
            // The last one taken too (once the last round's is gone): no
            // pair is left, and nothing stays held.
            let last = binds_once_closed(v6(40004), Protocol::Tcp);
            let err = take(&[mapping(None, None, Protocol::Tcp)], Families::DualStack).unwrap_err();
            assert!(matches!(err, Error::NoFreePortPair(Protocol::Tcp)), "{err}");
            drop(last);
            for p in 40000..=40009 {
                binds_once_closed((Ipv4Addr::UNSPECIFIED, p).into(), Protocol::Tcp);
            }
        },
    );
}

#[test]
fn a_restarted_supervisor_reserves_its_ipv6_port_again_while_the_proxys_connections_are_in_time_wait()
 {
    async_in_fresh_netns(
        "a_restarted_supervisor_reserves_its_ipv6_port_again_while_the_proxys_connections_are_in_time_wait",
        || async {
            // The container's server: answers and closes first, so the proxy
            // passes the close on and its side of the client's connection,
            // on the reserved port, ends in TIME_WAIT.
            let server = tokio::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
                .await
                .unwrap();
            let server_port = server.local_addr().unwrap().port();
            tokio::spawn(async move {
                loop {
                    let (mut stream, _) = server.accept().await.unwrap();
                    use tokio::io::AsyncWriteExt;
                    stream.write_all(b"hello").await.unwrap();
                }
            });
            let port = free_port();
            let asked = [PortMapping {
                container_port: server_port,
                ..mapping(Some(HostIp::AnyV6), Some(port), Protocol::Tcp)
            }];
            let held = take(&asked, Families::DualStack).unwrap();
            let proxies = proxy::start_all(&held, Ipv6Addr::LOCALHOST).await.unwrap();
            let reply = tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut client = TcpStream::connect((Ipv6Addr::LOCALHOST, port)).unwrap();
                let mut reply = String::new();
                client.read_to_string(&mut reply).unwrap();
                reply
            })
            .await
            .unwrap();
            assert_eq!(reply, "hello");
            proxies.shutdown().await;
            drop(held);
            // The proxy's side of the connection is in TIME_WAIT. The
            // client's close sends the FIN that puts it there only once a
            // command forked beside this test no longer holds a copy of
            // the client's socket (see `common::closed`); on loopback,
            // within that last close.
            closed::in_time_wait(Table::Tcp6, port);
            // The listener the proxy closed is gone, the TIME_WAIT stays:
            // the reservation is taken again beside it.
            closed::unbound(Table::Tcp6, [port]);
            take(&asked, Families::DualStack).unwrap();
        },
    );
}

#[test]
fn only_reservations_on_every_ipv6_address_or_on_loopback6_are_the_proxys() {
    in_fresh_netns(
        "only_reservations_on_every_ipv6_address_or_on_loopback6_are_the_proxys",
        || {
            let asked = [
                mapping(None, None, Protocol::Tcp),
                mapping(Some(LOCALHOST6), None, Protocol::Udp),
                mapping(Some(HostIp::V4(Ipv4Addr::LOCALHOST)), None, Protocol::Tcp),
            ];
            let held = take(&asked, Families::DualStack).unwrap();
            let mappings = held.mappings();
            let proxied: Vec<(u16, Protocol)> = held
                .proxied()
                .iter()
                .map(|p| (p.host_port, p.protocol))
                .collect();
            assert_eq!(
                proxied,
                [
                    (mappings[1].host_port.unwrap(), Protocol::Tcp),
                    (mappings[2].host_port.unwrap(), Protocol::Udp),
                ]
            );
            // The TCP one listens already.
            let proxied = held.proxied();
            let listening = nix::sys::socket::getsockopt(
                &proxied[0].socket,
                nix::sys::socket::sockopt::AcceptConn,
            );
            assert_eq!(listening, Ok(true));
        },
    );
}

#[test]
fn a_port_picked_for_both_families_is_picked_again_for_both() {
    in_fresh_netns(
        "a_port_picked_for_both_families_is_picked_again_for_both",
        || {
            let mut held = take(
                &[
                    mapping(None, None, Protocol::Tcp),
                    mapping(Some(LOCALHOST6), None, Protocol::Tcp),
                ],
                Families::DualStack,
            )
            .unwrap();
            let before = held.mappings();
            let old = before[0].host_port.unwrap();
            assert_eq!(before[1].host_port, Some(old));
            assert!(held.repick(Protocol::Tcp, old).unwrap());
            let after = held.mappings();
            let new = after[0].host_port.unwrap();
            assert_ne!(new, old);
            assert_eq!(after[0].host_ip, Some(HostIp::AnyV4));
            assert_eq!(
                after[1],
                PortMapping {
                    host_port: Some(new),
                    ..before[1]
                }
            );
            // The one on ::1 alone was not touched.
            assert_eq!(after[2], before[2]);
            // The old port is free again on both families.
            binds_once_closed((Ipv4Addr::UNSPECIFIED, old).into(), Protocol::Tcp);
            binds_once_closed((Ipv6Addr::UNSPECIFIED, old).into(), Protocol::Tcp);
            assert!(!held.repick(Protocol::Udp, new).unwrap());
        },
    );
}

fn in_range(host_ip: Option<HostIp>, first: u16, last: u16, protocol: Protocol) -> PortMapping {
    PortMapping {
        host_range: Some((first, last)),
        ..mapping(host_ip, None, protocol)
    }
}

#[test]
fn a_host_range_takes_its_first_port_free_on_every_family_and_is_picked_again_within_it() {
    in_fresh_netns(
        "a_host_range_takes_its_first_port_free_on_every_family_and_is_picked_again_within_it",
        || {
            for protocol in [Protocol::Tcp, Protocol::Udp] {
                // 8000 taken on IPv6 only: a mapping on both families skips it.
                let _v6 =
                    program_binds((Ipv6Addr::UNSPECIFIED, 8000).into(), protocol, false).unwrap();
                let asked = per_family(&[in_range(None, 8000, 8003, protocol)], true).unwrap();
                let mut held = take(&asked, Families::DualStack).unwrap();
                let ports: Vec<_> = held.mappings().iter().map(|m| m.host_port).collect();
                assert_eq!(ports, [Some(8001), Some(8001)], "{protocol}");
                assert_eq!(held.picked(), [true, true]);
                // IPv4 alone takes 8000, once the kernel has let go the
                // socket the pick above tried on it and closed; an
                // address takes its own.
                closed::unbound(table(protocol, false), [8000]);
                let v4 = take(&[in_range(None, 8000, 8003, protocol)], Families::Ipv4).unwrap();
                assert_eq!(v4.mappings()[0].host_port, Some(8000), "{protocol}");
                let local = in_range(Some(HostIp::V4(Ipv4Addr::LOCALHOST)), 8000, 8003, protocol);
                let on_local = take(&[local], Families::DualStack).unwrap();
                assert_eq!(on_local.mappings()[0].host_port, Some(8002), "{protocol}");
                // Picked again (an element without a socket on 8001): the
                // next free one of the range, on both families.
                assert!(held.repick(protocol, 8001).unwrap());
                let ports: Vec<_> = held.mappings().iter().map(|m| m.host_port).collect();
                assert_eq!(ports, [Some(8003), Some(8003)], "{protocol}");
                assert!(
                    held.mappings()
                        .iter()
                        .all(|m| m.host_range == Some((8000, 8003)))
                );
                // Picked again on the range's last port: none left after
                // it, and never back to 8001, free of sockets again but
                // rejected before (it would alternate until the attempts
                // ran out).
                assert!(!held.repick(protocol, 8003).unwrap());
            }
        },
    );
}

#[test]
fn a_given_port_is_reserved_before_a_range_that_has_it() {
    in_fresh_netns(
        "a_given_port_is_reserved_before_a_range_that_has_it",
        || {
            let asked = [
                in_range(None, 8000, 8001, Protocol::Tcp),
                mapping(None, Some(8000), Protocol::Tcp),
            ];
            let held = take(&asked, Families::Ipv4).unwrap();
            let ports: Vec<_> = held.mappings().iter().map(|m| m.host_port).collect();
            assert_eq!(ports, [Some(8001), Some(8000)], "in the order asked");
            assert_eq!(held.picked(), [true, false]);
        },
    );
}

#[test]
fn a_range_with_every_port_taken_is_refused_naming_it_and_the_first_holders() {
    in_fresh_netns(
        "a_range_with_every_port_taken_is_refused_naming_it_and_the_first_holders",
        || {
            let pid = std::process::id();
            let _taken: Vec<TcpListener> = (8000..=8004)
                .map(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap())
                .collect();
            let asked = in_range(None, 8000, 8004, Protocol::Tcp);
            let named = |p| (p == pid).then(|| "container web".to_string());
            for err in [
                Reservations::take(&[asked], Families::Ipv4, &named).unwrap_err(),
                Reservations::check(&[asked], Families::Ipv4, &named).unwrap_err(),
            ] {
                assert_eq!(
                    err.to_string(),
                    "cannot publish 8000-8004->80/tcp: every host port of 8000-8004/tcp is in \
                     use: 8000/tcp by container web, 8001/tcp by container web, 8002/tcp by \
                     container web, and 2 more"
                );
            }
            let on_local = in_range(
                Some(HostIp::V4(Ipv4Addr::LOCALHOST)),
                8003,
                8004,
                Protocol::Tcp,
            );
            let err = take(&[on_local], Families::Ipv4).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!(
                    "cannot publish 127.0.0.1:8003-8004->80/tcp: every host port of \
                     127.0.0.1:8003-8004/tcp is in use: 127.0.0.1:8003/tcp by process {pid} ("
                )),
                "{err}"
            );
            // UDP is another keyspace.
            let udp = take(&[in_range(None, 8000, 8004, Protocol::Udp)], Families::Ipv4).unwrap();
            assert_eq!(udp.mappings()[0].host_port, Some(8000));
        },
    );
}
