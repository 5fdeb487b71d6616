//! TCP: each accepted connection gets its own connection to the target,
//! and bytes are copied both ways until both sides have closed. A
//! half-close (`shutdown(Write)`) on one side is passed on to the other,
//! which may go on sending.
//!
//! Both of a relay's connections are host-local hops: loopback to the
//! client, a bridge and a veth pair to the container. There is no
//! bottleneck on them to probe, so they run [`CONGESTION_CONTROL`] rather
//! than the host's default, which may pace: BBR (a common default, this
//! machine's) sends each segment when a pacing timer set from the rate it
//! measured fires, and the proxy's hops would add their pacing delays to
//! the client's. Paced, 1 MiB through the proxy took 61-81% of a direct
//! connection's rate; unpaced, 87-102% (benches/proxy.rs, eight runs each,
//! alternated, load average 4.5 to 7). Checked again (load average 6 to
//! 8), the client and server on reno, then on bbr: the proxy's hops on the
//! host's default (bbr) reached 41-45% and 71-72% of direct, on reno 63-68%
//! and 97-101%; cubic on its hops did as reno (62-66% with the client and
//! server on reno or cubic). Where nothing paces (a host
//! defaulting to cubic or reno) the proxied exchange costs about 310 us of
//! CPU per MiB against 175 direct, 120 of them the proxy's thread sending
//! on the second hop, and reaches 53-65% of direct's rate (the bench's
//! cubic and reno gates and its `cost` section).

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{setsockopt, sockopt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::{Limits, TcpRelay};

/// Bytes each direction reads at a time: tokio's default is 8 KiB, which
/// takes 128 reads and writes for a 1 MiB transfer; this takes a few.
const BUFFER: usize = 256 * 1024;

/// Reno: built into every kernel and allowed to unprivileged sockets, so
/// setting it cannot fail for want of a module or a capability; it never
/// paces. On a hop that does not lose packets it stays in slow start, so
/// it behaves as CUBIC would.
const CONGESTION_CONTROL: &str = "reno";

/// The listener, bound now so a taken port is an error of `start`.
pub(super) fn bind(listen: SocketAddr) -> io::Result<TcpListener> {
    let socket = match listen {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // A restarted supervisor must not wait for TIME_WAIT of the old one.
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    let listener = socket.listen(1024)?;
    unpaced(&listener);
    Ok(listener)
}

/// A reservation's socket, listening already.
pub(super) fn from_socket(socket: OwnedFd) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::from(socket);
    listener.set_nonblocking(true)?;
    unpaced(&listener);
    TcpListener::from_std(listener)
}

/// How long accepting pauses when the process or the machine is out of
/// descriptors or memory: the connection waiting keeps the listener
/// readable, and retrying at once spun the supervisor's thread.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Accepts until told to stop; then the listener and every connection
/// close (the connections' tasks are aborted with the set). A client past
/// `limits.tcp_max_connections` is closed as soon as it is accepted: left
/// in the backlog it would keep the listener readable.
pub(super) async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    limits: Limits,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    while connections.try_join_next().is_some() {}
                    if connections.len() >= limits.tcp_max_connections {
                        tracing::debug!(
                            limit = limits.tcp_max_connections,
                            "[::1] proxy full: closing a new connection"
                        );
                        continue;
                    }
                    connections.spawn(relay(client, target, limits.tcp_relay));
                }
                Err(err) => {
                    // Out of fds, or the peer gone before accept: neither
                    // ends the proxy.
                    tracing::debug!(%err, "accepting on the [::1] proxy");
                    if matches!(
                        err.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) {
                        tokio::select! {
                            _ = &mut stop => break,
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                }
            },
        }
    }
    connections.shutdown().await;
}

/// Sets [`CONGESTION_CONTROL`]; a failure leaves the host's default,
/// which is slower but relays the same bytes. On a listener, for the
/// connections it accepts: they take a congestion control set on their
/// listener rather than the host's default.
fn unpaced(socket: &impl AsFd) {
    if let Err(err) = setsockopt(
        socket,
        sockopt::TcpCongestion,
        &OsString::from(CONGESTION_CONTROL),
    ) {
        tracing::debug!(%err, "setting the [::1] proxy's congestion control");
    }
}

async fn connect(target: SocketAddr) -> io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Before connecting, so the handshake already runs it.
    unpaced(&socket);
    socket.connect(target).await
}

async fn relay(mut client: TcpStream, target: SocketAddr, how: TcpRelay) {
    let mut upstream = match connect(target).await {
        Ok(stream) => stream,
        Err(err) => {
            tracing::debug!(%err, %target, "connecting the [::1] proxy to its target");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let relayed = match how {
        TcpRelay::Splice => super::splice::relay(&client, &upstream).await,
        TcpRelay::Copy => {
            tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, BUFFER, BUFFER)
                .await
                .map(drop)
        }
    };
    if let Err(err) = relayed {
        tracing::debug!(%err, %target, "relaying through the [::1] proxy");
    }
}
