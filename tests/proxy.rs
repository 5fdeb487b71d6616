//! The `[::1]` proxy against real sockets, each test in its own network
//! namespace (loopback only): TCP relayed with half-close, UDP clients kept
//! apart, everything closed on shutdown, a taken port named.

mod common;

use std::collections::HashSet;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::netns::async_in_fresh_netns;
use supervisor::error_chain::Chain;
use supervisor::proxy::{Forward, Limits, Proxies, Proxy, TcpRelay};
use supervisor::values::Protocol;
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
            let free = {
                let probe = TcpListener::bind((LOCALHOST6, 0)).await.unwrap();
                probe.local_addr().unwrap().port()
            };
            let forwards = [
                Forward::loopback6(Protocol::Tcp, free, target),
                Forward::loopback6(Protocol::Tcp, port, target),
            ];
            let err = Proxies::start(&forwards).await.unwrap_err();
            assert!(err.to_string().contains(&format!("port {port}")), "{err}");
            TcpListener::bind((LOCALHOST6, free))
                .await
                .expect("the first proxy was shut down again");
        },
    );
}
