//! TCP: each accepted connection gets its own connection to the target,
//! and bytes are copied both ways until both sides have closed. A
//! half-close (`shutdown(Write)`) on one side is passed on to the other,
//! which may go on sending.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::TcpRelay;

/// Bytes each direction reads at a time: tokio's default is 8 KiB, which
/// takes 128 reads and writes for a 1 MiB transfer; this takes a few.
const BUFFER: usize = 256 * 1024;

/// The listener, bound now so a taken port is an error of `start`.
pub(super) fn bind(listen: SocketAddr) -> io::Result<TcpListener> {
    let socket = match listen {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // A restarted supervisor must not wait for TIME_WAIT of the old one.
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(1024)
}

/// A reservation's socket, listening already.
pub(super) fn from_socket(socket: OwnedFd) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::from(socket);
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Accepts until told to stop; then the listener and every connection
/// close (the connections' tasks are aborted with the set).
pub(super) async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    how: TcpRelay,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(relay(client, target, how));
                }
                Err(err) => {
                    // Out of fds, or the peer gone before accept: neither
                    // ends the proxy.
                    tracing::debug!(%err, "accepting on the [::1] proxy");
                    tokio::task::yield_now().await;
                }
            },
        }
    }
    connections.shutdown().await;
}

async fn relay(mut client: TcpStream, target: SocketAddr, how: TcpRelay) {
    let mut upstream = match TcpStream::connect(target).await {
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
