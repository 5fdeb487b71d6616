//! One container's network: the veth pair, then inside the container lo and
//! its interface (`eth0` for `run`, `CNI_IFNAME` for a CNI engine) up, the
//! address and the default route via the bridge; with IPv6, its IPv6
//! address (no DAD) and IPv6 default route too, in the same pipeline.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::netns::{NetnsSocket, socket_in, with_connection};
use super::{
    Error, Netlink, address, create_veth, ipv6, link, route, set_forwarding, set_hairpin,
    set_neighbour, sysctl, wait_forwarding,
};
use crate::values::{Subnet, Subnet6};

/// The container's end of the pair, as `run` names it.
pub const PEER: &str = "eth0";
/// `lo` has index 1 in every network namespace.
const LOOPBACK_INDEX: u32 = 1;

/// What to plumb for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLink {
    /// The host end of the pair (at most 15 bytes), e.g. "sv-" + 12 hex digits
    /// of the container id.
    pub host_ifname: String,
    /// The container's end, created inside its namespace: `PEER` for `run`.
    pub peer: String,
    pub bridge_index: u32,
    pub address: Ipv4Addr,
    /// The bridge's subnet: gives the prefix length and the gateway.
    pub subnet: Subnet,
    /// The IPv6 address and the bridge's subnet6, when it is dual stack;
    /// None: IPv6 is off on the peer.
    pub ipv6: Option<(Ipv6Addr, Subnet6)>,
}

/// Where the time of [`plumb`] went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlumbTimings {
    /// The veth pair created, while a thread opened the socket inside.
    pub veth: Duration,
    /// Hairpin on the host side, while lo, eth0, address and route were set
    /// inside.
    pub configure: Duration,
    pub total: Duration,
}

/// Plumbs the container whose network namespace is `netns`: the veth pair
/// with its peer created inside, hairpin mode on the host end, and inside
/// lo and the peer up, the address and the default route via the gateway,
/// and IPv6 disabled on the peer or, with `spec.ipv6`, configured as
/// `sysctl::Setting::container_ipv6` says, with its address and default
/// route; then the host's neighbour entry for the IPv4 address and, once
/// the host end forwards, the bridge's forwarding entry for the MAC.
///
/// Takes the namespace fd and closes it, along with everything else that
/// refers to the namespace, before returning: the namespace, and with it
/// the veth pair, then dies with the container's last process.
pub async fn plumb(
    nl: &Netlink,
    spec: &ContainerLink,
    netns: OwnedFd,
) -> Result<PlumbTimings, Error> {
    link::check_ifname(&spec.host_ifname)?;
    link::check_ifname(&spec.peer)?;
    let start = Instant::now();
    let mac = address::mac_for(spec.address);
    let (socket, ()) = tokio::try_join!(
        socket_in(netns.as_fd()),
        create_veth(
            nl,
            &spec.host_ifname,
            spec.bridge_index,
            &spec.peer,
            mac,
            netns.as_fd()
        ),
    )?;
    let veth = start.elapsed();
    // Without IPv6 on the bridge, IPv6 is off on eth0: no link-local
    // address, no autoconfiguration from a stray router advertisement;
    // that may land while eth0 comes up. With IPv6, accept_dad=0 must land
    // before eth0 goes up, which adds the link-local address: written
    // after, that address stays tentative (unusable) for about a second.
    // (The IPv6 address itself is added without DAD.)
    let configure = async {
        match spec.ipv6 {
            Some(_) => {
                let sysctls = sysctl::Setting::container_ipv6(&spec.peer);
                sysctl::apply_in(netns.as_fd(), sysctls).await?;
                configure_inside(socket, &spec.peer, spec.address, spec.subnet, spec.ipv6).await
            }
            None => {
                let sysctls = vec![sysctl::Setting::disable_ipv6(&spec.peer, true)];
                tokio::try_join!(
                    configure_inside(socket, &spec.peer, spec.address, spec.subnet, None),
                    sysctl::apply_in(netns.as_fd(), sysctls),
                )
                .map(drop)
            }
        }
    };
    let port = async {
        let port = link::by_name(nl.handle(), &spec.host_ifname)
            .await?
            .ok_or_else(|| Error::Request {
                action: "finding",
                object: spec.host_ifname.clone(),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            })?
            .index;
        set_hairpin(nl, port, &spec.host_ifname).await?;
        Ok::<_, Error>(port)
    };
    let (port, ()) = tokio::try_join!(port, configure)?;
    drop(netns);
    // Once eth0 holds the address, so what the host queued for the
    // address finds it, through the new port.
    // An IPv6 address derived from the IPv4 one keeps its MAC when reused,
    // as the IPv4 address does; a pinned one may come back with another
    // container's MAC, so its entry is set too.
    let pinned6 = spec
        .ipv6
        .filter(|(address6, subnet6)| subnet6.derive(spec.subnet, spec.address) != Some(*address6));
    let neighbour6 = async {
        match pinned6 {
            Some((address6, _)) => {
                set_neighbour(nl, spec.bridge_index, IpAddr::V6(address6), mac).await
            }
            None => Ok(()),
        }
    };
    // The bridge takes a learned entry only on a port that forwards (or
    // learns): once the kernel's link watcher has seen the carrier.
    let forwarding = async {
        wait_forwarding(nl, &spec.host_ifname).await?;
        set_forwarding(nl, port, &spec.host_ifname, mac).await
    };
    tokio::try_join!(
        forwarding,
        set_neighbour(nl, spec.bridge_index, IpAddr::V4(spec.address), mac),
        neighbour6,
    )?;
    let total = start.elapsed();
    Ok(PlumbTimings {
        veth,
        configure: total - veth,
        total,
    })
}

/// Inside the container, through `socket` (closed on return): lo up, `peer`
/// up, `address` on it and the default route via the subnet's gateway;
/// with `ipv6`, its address (no DAD) and the default route via the
/// subnet6's gateway.
pub async fn configure_inside(
    socket: NetnsSocket,
    peer: &str,
    address: Ipv4Addr,
    subnet: Subnet,
    ipv6: Option<(Ipv6Addr, Subnet6)>,
) -> Result<(), Error> {
    with_connection(socket, |handle| async move {
        let (eth0, ()) = tokio::try_join!(
            link::by_name(&handle, peer),
            link::set_up(&handle, LOOPBACK_INDEX, "lo"),
        )?;
        let eth0 = eth0.ok_or_else(|| Error::Request {
            action: "finding",
            object: format!("{peer} in the container"),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        // Sent in this order, handled in this order: the kernel runs a
        // socket's requests as they arrive, and the route needs eth0 up.
        let v6 = async {
            let Some((address6, subnet6)) = ipv6 else {
                return Ok(());
            };
            tokio::try_join!(
                biased;
                ipv6::add_address(&handle, eth0.index, peer, address6, subnet6.prefix_len(), false),
                ipv6::add_default_route(&handle, subnet6.gateway(), Some(eth0.index)),
            )
            .map(drop)
        };
        tokio::try_join!(
            biased;
            link::set_up(&handle, eth0.index, peer),
            address::add(&handle, eth0.index, peer, address, subnet.prefix_len(), false),
            route::add_default(&handle, subnet.gateway()),
            v6,
        )?;
        Ok(())
    })
    .await
}
