//! UDP: each client address gets a flow of its own, a socket connected to
//! the target, so replies go back to the client that asked. A flow ends
//! after an idle time without a datagram either way.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::Limits;

/// The largest datagram (IPv6 jumbograms aside).
const MAX_DATAGRAM: usize = 65_535;

pub(super) fn bind(listen: SocketAddr) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(listen)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// A reservation's socket, bound already.
pub(super) fn from_socket(socket: OwnedFd) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::from(socket);
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

struct Flow {
    upstream: Arc<UdpSocket>,
    /// Milliseconds since `epoch` of the last datagram either way.
    last: Arc<AtomicU64>,
    task: AbortHandle,
}

/// Relays until told to stop; then the socket and every flow close.
pub(super) async fn serve(
    socket: UdpSocket,
    target: SocketAddr,
    limits: Limits,
    mut stop: oneshot::Receiver<()>,
) {
    let idle = limits.udp_idle;
    let socket = Arc::new(socket);
    let epoch = Instant::now();
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(ended) = tasks.join_next() => {
                if let Ok(client) = ended {
                    // Gone idle; unless a new flow took its place already.
                    if flows.get(&client).is_some_and(|f| f.task.is_finished()) {
                        flows.remove(&client);
                    }
                }
            }
            received = socket.recv_from(&mut buf) => {
                let (len, client) = match received {
                    Ok(got) => got,
                    Err(err) => {
                        tracing::debug!(%err, "receiving on the [::1] proxy");
                        continue;
                    }
                };
                let flow = match flows.get(&client) {
                    Some(flow) if !flow.task.is_finished() => flow,
                    _ => {
                        if flows.len() >= limits.udp_max_flows {
                            flows.retain(|_, f| !f.task.is_finished());
                            if flows.len() >= limits.udp_max_flows {
                                continue;
                            }
                        }
                        match open_flow(&socket, client, target, idle, epoch, &mut tasks).await {
                            Ok(flow) => flows.entry(client).insert_entry(flow).into_mut(),
                            Err(err) => {
                                tracing::debug!(%err, %target, "opening a [::1] proxy flow");
                                continue;
                            }
                        }
                    }
                };
                flow.last.store(millis_since(epoch), Ordering::Relaxed);
                if let Err(err) = flow.upstream.send(&buf[..len]).await {
                    tracing::debug!(%err, %target, "relaying a datagram through the [::1] proxy");
                }
            }
        }
    }
    tasks.shutdown().await;
}

fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

async fn open_flow(
    socket: &Arc<UdpSocket>,
    client: SocketAddr,
    target: SocketAddr,
    idle: Duration,
    epoch: Instant,
    tasks: &mut JoinSet<SocketAddr>,
) -> io::Result<Flow> {
    let any: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let upstream = UdpSocket::bind(any).await?;
    upstream.connect(target).await?;
    let upstream = Arc::new(upstream);
    let last = Arc::new(AtomicU64::new(millis_since(epoch)));
    let task = tasks.spawn(replies(
        socket.clone(),
        upstream.clone(),
        client,
        last.clone(),
        idle,
        epoch,
    ));
    Ok(Flow {
        upstream,
        last,
        task,
    })
}

/// Sends the target's replies back to `client` until the flow is idle;
/// returns the client it served.
async fn replies(
    socket: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<AtomicU64>,
    idle: Duration,
    epoch: Instant,
) -> SocketAddr {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = epoch + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
        if Instant::now() >= deadline {
            return client;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            received = upstream.recv(&mut buf) => match received {
                Ok(len) => {
                    last.store(millis_since(epoch), Ordering::Relaxed);
                    let _ = socket.send_to(&buf[..len], client).await;
                }
                // ECONNREFUSED from an ICMP port unreachable: nothing
                // listens yet; the client may try again.
                Err(err) => tracing::debug!(%err, "receiving a reply in the [::1] proxy"),
            },
        }
    }
}
