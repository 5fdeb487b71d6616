//! The `[::1]` path of a published port, served in user space.
//!
//! The kernel cannot DNAT connections from `::1`: IPv6 has no
//! `route_localnet`, so a packet from the loopback address may not leave by
//! the bridge. Docker answers `[::1]:PORT` with a proxy process per port;
//! the supervisor already lives as long as its container, so it serves
//! those ports itself: a [`Proxy`] listens on `[::1]:PORT` and relays each
//! TCP connection (a connection of its own to the container, bytes copied
//! both ways, a half-close passed on) and each UDP client (a flow of its
//! own, closed after [`Limits::udp_idle`] without traffic) to the container's
//! `[addr]:port`.
//!
//! **The client's address is lost on this path**: the container sees the
//! proxy's connection, from the gateway's address, not `::1`. Every other
//! path (other host addresses, outside clients, other containers) keeps it.
//!
//! The owner starts one proxy per forwarded port ([`start_all`]) and stops
//! them with [`Proxy::shutdown`] or by dropping them; either way the
//! listener and every connection and flow are closed.

mod splice;
mod tcp;
mod udp;

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::values::Protocol;

/// How a TCP connection's bytes cross the proxy. Both are kept so
/// benches/proxy.rs can compare them on the machine at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpRelay {
    /// splice(2) through a pipe per direction: no copy into user space.
    Splice,
    /// tokio's `copy_bidirectional`, through buffers in the proxy.
    Copy,
}

/// How a proxy relays, and what it allows its UDP clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub tcp_relay: TcpRelay,
    /// How long a flow lives without a datagram either way.
    pub udp_idle: Duration,
    /// Clients at once; a datagram from one more is dropped, as a full
    /// conntrack table drops it.
    pub udp_max_flows: usize,
}

impl Default for Limits {
    /// Splice: about as fast as copying when the machine is idle, but the
    /// proxy spends roughly half the CPU time per byte (~180-300 us per MiB
    /// against ~520 us, benches/proxy.rs), which is what a busy host
    /// notices; 60 s idle (conntrack keeps unreplied UDP 30 s, replied
    /// 120 s), 4096 clients.
    fn default() -> Limits {
        Limits {
            tcp_relay: TcpRelay::Splice,
            udp_idle: Duration::from_secs(60),
            udp_max_flows: 4096,
        }
    }
}

/// One port to serve: what to listen on, and where to relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub protocol: Protocol,
    /// `[::1]:PORT` for the published port (tests may use any address).
    pub listen: SocketAddr,
    /// The container's `[addr]:port`.
    pub target: SocketAddr,
}

impl Forward {
    /// `[::1]:port` relayed to `target`.
    pub fn loopback6(protocol: Protocol, port: u16, target: SocketAddr) -> Forward {
        Forward {
            protocol,
            listen: SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
            target,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket: the port is taken, or the address missing.
    #[error("serving {listen}/{protocol} for the published port {port}")]
    Bind {
        listen: SocketAddr,
        protocol: Protocol,
        port: u16,
        #[source]
        source: io::Error,
    },
}

/// A running proxy. Dropping it stops it too: the serving task takes the
/// closing of `stop` as its order, and closes the listener and every flow
/// as soon as the runtime next runs it. [`Proxy::shutdown`] also waits
/// until they are closed.
#[derive(Debug)]
pub struct Proxy {
    forward: Forward,
    local: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Binds the listener (so a taken port is reported here) and starts
    /// serving on the current tokio runtime, with the default [`Limits`].
    pub async fn start(forward: Forward) -> Result<Proxy, Error> {
        Proxy::start_with(forward, Limits::default()).await
    }

    pub async fn start_with(forward: Forward, limits: Limits) -> Result<Proxy, Error> {
        let bind_error = |source| Error::Bind {
            listen: forward.listen,
            protocol: forward.protocol,
            port: forward.listen.port(),
            source,
        };
        let (stop, stopped) = oneshot::channel();
        let (task, local) = match forward.protocol {
            Protocol::Tcp => {
                let listener = tcp::bind(forward.listen).map_err(bind_error)?;
                let local = listener.local_addr().map_err(bind_error)?;
                let task = tokio::spawn(tcp::serve(
                    listener,
                    forward.target,
                    limits.tcp_relay,
                    stopped,
                ));
                (task, local)
            }
            Protocol::Udp => {
                let socket = udp::bind(forward.listen).map_err(bind_error)?;
                let local = socket.local_addr().map_err(bind_error)?;
                let task = tokio::spawn(udp::serve(socket, forward.target, limits, stopped));
                (task, local)
            }
        };
        Ok(Proxy {
            forward,
            local,
            stop,
            task,
        })
    }

    pub fn forward(&self) -> &Forward {
        &self.forward
    }

    /// The address it listens on (the bound port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Closes the listener and every connection and flow; returns when
    /// they are closed.
    pub async fn shutdown(self) {
        drop(self.stop);
        // A panic in the proxy left nothing open.
        let _ = self.task.await;
    }
}

/// Starts a proxy for each forward, or none: when one cannot bind, those
/// already started are shut down and its error returned.
pub async fn start_all(forwards: &[Forward]) -> Result<Vec<Proxy>, Error> {
    let mut started = Vec::with_capacity(forwards.len());
    for forward in forwards {
        match Proxy::start(*forward).await {
            Ok(proxy) => started.push(proxy),
            Err(err) => {
                for proxy in started {
                    proxy.shutdown().await;
                }
                return Err(err);
            }
        }
    }
    Ok(started)
}
