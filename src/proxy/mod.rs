//! The `[::1]` path of a published port, served in user space.
//!
//! The kernel cannot DNAT connections from `::1`: IPv6 has no
//! `route_localnet`, so a packet from the loopback address may not leave by
//! the bridge. Docker answers `[::1]:PORT` with a proxy process per port;
//! the supervisor already lives as long as its container, so it serves
//! those ports itself: a [`Proxy`] listens on `[::1]:PORT` and relays each
//! TCP connection (a connection of its own to the container, bytes spliced
//! both ways, a half-close passed on) and each UDP client (a flow of its
//! own, closed after [`Limits::udp_idle`] without traffic) to the container's
//! `[addr]:port`.
//!
//! The listening socket is the port's reservation itself (`reserve`): for a
//! port published on `[::]` (or `[::1]`), the reservation's socket on
//! `[::]:PORT` listens, and since the firewall DNATs a connection to any
//! other host address before the kernel looks a socket up, only
//! connections to `::1` reach it. No second socket, no SO_REUSEPORT
//! sharing. [`start_all`] serves every such reservation of a container.
//!
//! **The client's address is lost on this path only**: the container sees
//! the proxy's connection, from the gateway's address, not `::1`. Every
//! other path (other host addresses, outside clients, other containers) is
//! DNAT in the kernel and keeps it.
//!
//! For TCP the relay is the fallback: [`hook_all`] attaches a [`connect6`]
//! hook that makes a client's `connect()` to `[::1]:PORT` a connection to
//! the container itself, for the processes of one cgroup in the
//! supervisor's network namespace (no second hop, the client's port kept).
//! The relay still serves UDP, every other client, and everyone when the
//! hook cannot be had.
//!
//! The owner stops the proxies with [`Proxies::shutdown`] or by dropping
//! them; either way the serving task, and every connection and flow, end
//! (the listening socket stays open while the reservation holds it).

pub mod connect6;
mod splice;
mod tcp;
mod udp;

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::reserve::Reservations;
use crate::values::{Loopback6Cgroup, Protocol};

pub use connect6::Hook;

/// How a TCP connection's bytes cross the proxy. Both are kept so
/// benches/proxy.rs can compare them on the machine at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpRelay {
    /// splice(2) through a pipe per direction: no copy into user space.
    Splice,
    /// tokio's `copy_bidirectional`, through buffers in the proxy.
    Copy,
}

/// How a proxy relays, and what it allows its clients.
///
/// Anyone on the host may connect to `[::1]:PORT` (a socket bound to
/// `::1` first takes the relay even where the connect hook is), and each
/// relayed connection holds [`FILES_PER_CONNECTION`] of the supervisor's
/// descriptors for as long as the container keeps its end open. Unbounded,
/// 200 clients held a supervisor at its limit of 300 descriptors: it spun
/// on a failing accept (half a core), no UDP flow could open, and anything
/// else it had to open failed. So both kinds of client are bounded, within
/// the supervisor's descriptors ([`Limits::within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub tcp_relay: TcpRelay,
    /// TCP connections relayed at once; one more is closed as soon as it
    /// is accepted.
    pub tcp_max_connections: usize,
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
    /// notices; 1024 TCP connections; 60 s idle (conntrack keeps
    /// unreplied UDP 30 s, replied 120 s), 4096 UDP clients.
    fn default() -> Limits {
        Limits {
            tcp_relay: TcpRelay::Splice,
            tcp_max_connections: 1024,
            udp_idle: Duration::from_secs(60),
            udp_max_flows: 4096,
        }
    }
}

/// Descriptors one relayed TCP connection holds: the client's socket, its
/// own to the container, and when spliced a pipe (two ends) each way. A
/// UDP flow holds one, its socket to the container.
pub const FILES_PER_CONNECTION: u64 = 6;

impl Limits {
    /// The defaults, shrunk so that `proxies` proxies at their limits hold
    /// no more than `files` descriptors between them (at least one client
    /// each).
    pub fn within(files: u64, proxies: usize) -> Limits {
        let share = files / (proxies.max(1) as u64);
        let fit = |count: u64, most: usize| usize::try_from(count).unwrap_or(most).clamp(1, most);
        let default = Limits::default();
        Limits {
            tcp_max_connections: fit(share / FILES_PER_CONNECTION, default.tcp_max_connections),
            udp_max_flows: fit(share, default.udp_max_flows),
            ..default
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
    /// A reservation's socket could not be handed to the proxy.
    #[error("serving [::1]:{port}/{protocol} from its reservation")]
    Reserved {
        port: u16,
        protocol: Protocol,
        #[source]
        source: io::Error,
    },
}

/// A socket ready to serve: listening (TCP) or bound (UDP).
enum Serving {
    Tcp(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket),
}

impl Serving {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Serving::Tcp(listener) => listener.local_addr(),
            Serving::Udp(socket) => socket.local_addr(),
        }
    }
}

/// A running proxy. Dropping it stops it too: the serving task takes the
/// closing of `stop` as its order, and closes the listener and every flow
/// as soon as the runtime next runs it. [`Proxy::shutdown`] also waits
/// until they are closed.
#[derive(Debug)]
pub struct Proxy {
    forward: Forward,
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
        let serving = match forward.protocol {
            Protocol::Tcp => Serving::Tcp(tcp::bind(forward.listen).map_err(bind_error)?),
            Protocol::Udp => Serving::Udp(udp::bind(forward.listen).map_err(bind_error)?),
        };
        let listen = serving.local_addr().map_err(bind_error)?;
        Ok(Proxy::spawn(Forward { listen, ..forward }, serving, limits))
    }

    /// Serves a socket bound already, a host port's reservation: listening
    /// when `protocol` is TCP, bound when UDP. Connections and datagrams
    /// that reach it are relayed to `target`. The caller names the port in
    /// its error ([`start_all`] does).
    pub fn serve(
        socket: OwnedFd,
        protocol: Protocol,
        target: SocketAddr,
        limits: Limits,
    ) -> io::Result<Proxy> {
        let serving = match protocol {
            Protocol::Tcp => Serving::Tcp(tcp::from_socket(socket)?),
            Protocol::Udp => Serving::Udp(udp::from_socket(socket)?),
        };
        let forward = Forward {
            protocol,
            listen: serving.local_addr()?,
            target,
        };
        Ok(Proxy::spawn(forward, serving, limits))
    }

    fn spawn(forward: Forward, serving: Serving, limits: Limits) -> Proxy {
        let (stop, stopped) = oneshot::channel();
        let task = match serving {
            Serving::Tcp(listener) => {
                tokio::spawn(tcp::serve(listener, forward.target, limits, stopped))
            }
            Serving::Udp(socket) => {
                tokio::spawn(udp::serve(socket, forward.target, limits, stopped))
            }
        };
        Proxy {
            forward,
            stop,
            task,
        }
    }

    /// What it serves; `listen` is the address bound (the port the kernel
    /// picked when it was 0).
    pub fn forward(&self) -> &Forward {
        &self.forward
    }

    /// The address it listens on (the bound port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.forward.listen
    }

    /// Closes the listener and every connection and flow; returns when
    /// they are closed.
    pub async fn shutdown(self) {
        drop(self.stop);
        // A panic in the proxy left nothing open.
        let _ = self.task.await;
    }
}

/// The proxies of one container; dropping them stops them all.
#[derive(Debug, Default)]
pub struct Proxies {
    proxies: Vec<Proxy>,
}

impl Proxies {
    /// Starts a proxy for each forward, or none: when one cannot bind,
    /// those already started are shut down and its error returned.
    pub async fn start(forwards: &[Forward]) -> Result<Proxies, Error> {
        let mut started = Proxies::default();
        for forward in forwards {
            match Proxy::start(*forward).await {
                Ok(proxy) => started.proxies.push(proxy),
                Err(err) => {
                    started.shutdown().await;
                    return Err(err);
                }
            }
        }
        Ok(started)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Proxy> {
        self.proxies.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.proxies.is_empty()
    }

    /// Stops every proxy; returns when all their sockets are closed.
    pub async fn shutdown(self) {
        for proxy in self.proxies {
            proxy.shutdown().await;
        }
    }
}

/// Serves `[::1]` for the container at `container`: every reserved host
/// port published on all IPv6 addresses (`[::]`) or on `[::1]` is relayed
/// to the same container port at that address, from the reservation's own
/// socket (see the module comment). Call it once the reservations are
/// final (after any repick) and the container's IPv6 address is known.
/// None start when one fails.
pub async fn start_all(reservations: &Reservations, container: Ipv6Addr) -> Result<Proxies, Error> {
    let mut started = Proxies::default();
    let proxied = reservations.proxied();
    if proxied.is_empty() {
        return Ok(started);
    }
    let limits = Limits::within(reservations.room_for_relays(), proxied.len());
    for served in proxied {
        let reserved = |source| Error::Reserved {
            port: served.host_port,
            protocol: served.protocol,
            source,
        };
        let target = SocketAddr::from((container, served.container_port));
        let proxy = served
            .socket
            .try_clone_to_owned()
            .and_then(|socket| Proxy::serve(socket, served.protocol, target, limits))
            .map_err(reserved)?;
        started.proxies.push(proxy);
    }
    Ok(started)
}

/// The kernel's path for the TCP ports [`start_all`] serves: a
/// [`connect6`] hook on `cgroup` rewriting a connect to `[::1]:PORT` into
/// one to `[container]:port`, for the processes of that cgroup in the
/// supervisor's network namespace; the relay stays for everyone else, and
/// for UDP. None when there is no TCP port to serve or `cgroup` is
/// [`Loopback6Cgroup::None`].
pub fn hook_all(
    reservations: &Reservations,
    container: Ipv6Addr,
    cgroup: &Loopback6Cgroup,
) -> Result<Option<Hook>, connect6::Error> {
    let tcp: Vec<_> = reservations
        .proxied()
        .into_iter()
        .filter(|served| served.protocol == Protocol::Tcp)
        .collect();
    let Some(first) = tcp.first() else {
        return Ok(None);
    };
    let cgroup = match cgroup {
        Loopback6Cgroup::None => return Ok(None),
        Loopback6Cgroup::At(path) => path.clone(),
        Loopback6Cgroup::Root => connect6::cgroup2_root()?,
    };
    // The reservation's socket is in the supervisor's namespace.
    let cookie = connect6::netns_cookie(first.socket)?;
    let entries: Vec<connect6::Entry> = tcp
        .iter()
        .map(|served| connect6::Entry {
            host_port: served.host_port,
            target: SocketAddrV6::new(container, served.container_port, 0, 0),
        })
        .collect();
    Hook::attach(&cgroup, cookie, &entries).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_share_the_descriptors_left_between_the_proxies() {
        // 1,024 left for two proxies: 512 each, 85 TCP connections or
        // 512 UDP flows.
        let limits = Limits::within(1024, 2);
        assert_eq!(limits.tcp_max_connections, 85);
        assert_eq!(limits.udp_max_flows, 512);
        // Plenty: the defaults; none: one client each still.
        assert_eq!(Limits::within(1 << 20, 1), Limits::default());
        let none = Limits::within(0, 3);
        assert_eq!((none.tcp_max_connections, none.udp_max_flows), (1, 1));
    }
}
