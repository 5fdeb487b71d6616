//! A container's network over rtnetlink: the host bridge, the veth pair with
//! its peer created directly inside the container's network namespace, and
//! the container's address and default route, configured through a netlink
//! socket opened in that namespace. Sysctls go through /proc/sys.
//!
//! Nothing here knows about processes: the caller hands over the container's
//! network namespace as a file descriptor.

mod address;
mod bridge;
mod detached;
mod direct;
mod ipv6;
mod lent;
mod link;
mod neighbours;
mod netns;
mod plumb;
mod prepared;
pub mod procfs;
mod query;
mod route;
mod routed;
pub mod sysctl;
mod veth;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use direct::Direct;

pub use address::mac_for;
pub use bridge::{
    Bridge, Ensured, check_routed_address, ensure_bridge, ensure_bridge_made, ensure_bridge_routed,
};
pub use detached::{removal_request, remove_if_peer_lives, remove_link_detached, remove_link_now};
pub use ipv6::{
    add_ipv6_address, add_ipv6_address_in, add_ipv6_default_route_in, is_local_route_of,
    link_local_for,
};
pub use lent::{DIR as LENT_DIR, repair as repair_lent};
pub use link::{check_ifname, ifname_problem};
pub use neighbours::forget_neighbours_on;
pub use netns::{namespace_type, socket_in};
pub use plumb::{ContainerLink, PEER, PlumbTimings, Plumbed, plumb, plumb_prepared};
pub use prepared::{PreparedNetns, loopback_up_here};
pub use query::{
    InterfaceAddress, LinkState, addresses_in, container_links, hardware_address, link_state,
    made_as_ours,
};
pub use route::{
    AddressKind, RouteOverlap, RoutedTo, address_kinds, address_routes, overlap_beside,
    route_interface,
};
pub use routed::HOST_MAC;
pub use veth::{forwarding_message, neighbour_message, remove_link, wait_forwarding};

/// A netlink connection in the supervisor's own (host) network namespace:
/// a plain socket for the bridge check and the plumbing's pipelined
/// requests (see `direct`), and an rtnetlink
/// connection for the rest, made at its first use: a run on a bridge that
/// is already configured never needs it. Its connection task runs on the
/// current tokio runtime until the last clone of the handle is dropped.
#[derive(Clone)]
pub struct Netlink {
    handle: Arc<OnceLock<rtnetlink::Handle>>,
    direct: Arc<Mutex<Direct>>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// Must be called on a tokio runtime.
    pub fn connect() -> Result<Netlink, Error> {
        runtime()?;
        let direct = Direct::open().map_err(Error::Socket)?;
        Ok(Netlink {
            handle: Arc::new(OnceLock::new()),
            direct: Arc::new(Mutex::new(direct)),
        })
    }

    /// The rtnetlink connection, made now if it is the first use; must be
    /// called on a tokio runtime.
    pub(crate) fn handle(&self) -> Result<&rtnetlink::Handle, Error> {
        if let Some(handle) = self.handle.get() {
            return Ok(handle);
        }
        let runtime = runtime()?;
        let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Socket)?;
        runtime.spawn(connection);
        // A clone racing this one may have set its own: ours then ends
        // with its handle, dropped here.
        Ok(self.handle.get_or_init(|| handle))
    }

    pub(crate) fn direct(&self) -> MutexGuard<'_, Direct> {
        // A panic while it was held left no state behind but the socket.
        self.direct
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn runtime() -> Result<tokio::runtime::Handle, Error> {
    tokio::runtime::Handle::try_current().map_err(|err| Error::Socket(io::Error::other(err)))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening a netlink socket")]
    Socket(#[source] io::Error),
    #[error("opening a netlink socket in the container's network namespace")]
    NetnsSocket(#[source] io::Error),
    #[error("entering the container's network namespace")]
    EnterNetns(#[source] io::Error),
    #[error("locking the IPv6 defaults of the container's network namespace")]
    LendLock(#[source] io::Error),
    #[error("the record of the IPv6 defaults lent in the container's network namespace, {}", path.display())]
    LentRecord {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid interface name {name:?}: {reason}")]
    IfName { name: String, reason: &'static str },
    /// A kernel request failed: `action` on `object`, e.g. "creating bridge" "sv0".
    #[error("{action} {object}")]
    Request {
        action: &'static str,
        object: String,
        #[source]
        source: io::Error,
    },
    #[error("{name} exists and is not a bridge (it is a {kind} link)")]
    NotABridge { name: String, kind: String },
    // An IPv6 subnet is named as its option: a user who chose another
    // bridge and subnet (IPv4) read "choose another subnet" as done.
    #[error(
        "{} {subnet} overlaps the route {route} on {interface}; choose another {}",
        if subnet.contains(':') { "subnet6" } else { "subnet" },
        if subnet.contains(':') { "subnet6 (--subnet6)" } else { "subnet" }
    )]
    SubnetOverlap {
        subnet: String,
        route: String,
        interface: String,
    },
    /// `held`: "holds ADDRESS, an address of this host" or, for a range
    /// of them, "overlaps RANGE, addresses of this host (a local route)".
    #[error(
        "{} {subnet} {held} on {interface}; choose another {}",
        if subnet.contains(':') { "subnet6" } else { "subnet" },
        if subnet.contains(':') { "subnet6 (--subnet6)" } else { "subnet" }
    )]
    SubnetHoldsHostAddress {
        subnet: String,
        held: String,
        interface: String,
    },
    #[error(
        "bridge {bridge} has address {existing}, not {wanted}; choose the matching subnet or another bridge"
    )]
    BridgeAddress {
        bridge: String,
        existing: String,
        wanted: String,
    },
    #[error("sysctl {path}")]
    Sysctl {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn request(
        action: &'static str,
        object: impl Into<String>,
    ) -> impl FnOnce(rtnetlink::Error) -> Error {
        let direct = Error::direct(action, object);
        move |err| direct(io_error(err))
    }

    /// [`Error::request`] for a request answered on the spot (see `direct`).
    pub(crate) fn direct(
        action: &'static str,
        object: impl Into<String>,
    ) -> impl FnOnce(io::Error) -> Error {
        let object = object.into();
        move |source| Error::Request {
            action,
            object,
            source,
        }
    }
}

fn io_error(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// True when the kernel answered the request with `errno`.
fn is_errno(err: &rtnetlink::Error, errno: i32) -> bool {
    matches!(err, rtnetlink::Error::NetlinkError(msg) if msg.raw_code() == -errno)
}
