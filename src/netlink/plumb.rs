//! One container's network: the veth pair, then inside the container its
//! interface (`eth0` for `run`, `CNI_IFNAME` for a CNI engine) up, the
//! address, the default route via the bridge and the neighbour entry for
//! the gateway (see `inside`); with IPv6, its IPv6 address (no DAD), IPv6
//! default route and IPv6 gateway's entry too, in the same pipeline; then
//! the host's side of the port.
//!
//! The host end has no IPv6 address of its own: a bridge port carries the
//! containers' frames, and the host's IPv6 is the bridge's. With an
//! address, the carrier gave each port a link-local address, its route and
//! a local one, and the kernel walks every IPv6 route of the host at each
//! port's carrier change (`rt6_sync_up`) and removal (`rt6_disable_ip`):
//! with 1,000 ports, 0.3 ms of each ADD and 1.6 ms of each port's removal,
//! under RTNL, which the next ADD waits for.
//!
//! Address generation mode none, over netlink: the link is created down,
//! given the mode, then brought up, all before its peer comes up inside
//! (given while the link is up without a carrier, the mode announces a link
//! change, and IPv6 walks every route of the host for it,
//! `rt6_sync_down_dev`). Not disable_ipv6, which took no netlink request: a
//! write of it takes RTNL by trylock and restarts the syscall until it gets
//! it, so it loses to every other taker, spinning (by hand, ADD, DEL, `ip
//! netns del`, 150 times: the veth step's p90 4.2 ms with it, 1.5 ms
//! without).
//!
//! The carrier still gives the port IPv6's multicast route (ff00::/8), one
//! per port, which `host_side` deletes: kept, the routes of 1,000 ports
//! cost each port's removal 0.5 ms of walking them under RTNL (perf, 30
//! ADD/DEL at 1,000 attached; 0.03 ms without them).
//!
//! `run`'s host end too: alternated, its network ready was the same with
//! and without (p50 1.13 against 1.17 ms, `bench --containers 100 --pause
//! 30 --publish`, three rounds each at load 10; criterion's
//! `network_ready/run` 3.40 against 3.38 ms at the same load).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::neighbour::{NeighbourFlags, NeighbourState};
use rtnetlink::{AddressMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::direct::{Change, Direct, Request};
use super::lent;
use super::prepared::LentDefaults;
use super::{Error, Netlink, PreparedNetns, address, ipv6, link, netns, sysctl, veth};
use crate::values::{Subnet, Subnet6};

/// The container's end of the pair, as `run` names it.
pub const PEER: &str = "eth0";

/// What to plumb for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLink {
    /// The host end of the pair (at most 15 bytes), e.g. "sv-" + 12 hex digits
    /// of the container id.
    pub host_ifname: String,
    /// The container's end, created inside its namespace: `PEER` for `run`.
    pub peer: String,
    pub bridge_index: u32,
    /// The bridge's hardware address (see [`super::Ensured`]), for the
    /// container's gateway entry (see `inside`); None: no entry.
    pub bridge_mac: Option<[u8; 6]>,
    pub address: Ipv4Addr,
    /// The bridge's subnet: gives the prefix length and the gateway.
    pub subnet: Subnet,
    /// The IPv6 address and the bridge's subnet6, when it is dual stack;
    /// None: IPv6 is off on the peer.
    pub ipv6: Option<(Ipv6Addr, Subnet6)>,
    /// Routed mode (see `routed`): the host end on no bridge (`bridge_index`
    /// and `bridge_mac` unused), a `/32` route to the container on it.
    pub routed: bool,
}

/// What [`plumb`] made: the host end's interface index, and where the
/// time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plumbed {
    /// The host end of the pair, the bridge's port: for its removal once
    /// the container has ended (see `network::Attachment::removal`).
    pub host_index: u32,
    pub timings: PlumbTimings,
}

/// Where the time of [`plumb`] went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlumbTimings {
    /// The veth pair created (in an engine's namespace, with the socket
    /// inside opened and the namespace's IPv6 defaults lent for it).
    pub veth: Duration,
    /// Inside: eth0 up, its addresses and default routes.
    pub inside: Duration,
    /// On the host: the bridge port forwarding, hairpin on it, the
    /// container's forwarding and neighbour entries.
    pub host: Duration,
    pub total: Duration,
}

impl PlumbTimings {
    /// From the times since the start at which the pair was made, the
    /// inside done, and all done.
    pub(super) fn at(veth: Duration, inside: Duration, total: Duration) -> PlumbTimings {
        PlumbTimings {
            veth,
            inside: inside - veth,
            host: total - inside,
            total,
        }
    }
}

/// Plumbs the container whose network namespace is `netns`: the veth pair
/// with its peer created inside; inside, IPv6 disabled on the peer or,
/// with `spec.ipv6`, configured as `sysctl::Setting::container_ipv6` says,
/// then the peer up with its address and the default route via the
/// gateway (with IPv6, its IPv6 address and default route too); on the
/// host, the bridge port forwarding, in hairpin mode, the bridge
/// transmitting, and the host's forwarding and neighbour entries for the
/// container.
///
/// `lo` is not the plumbing's: `run` brings it up as it makes the
/// namespace (see `PreparedNetns`), a CNI engine in the namespaces it
/// hands over.
///
/// Each side's requests go in one message over a plain socket (see
/// `direct`), and the socket inside is opened by this thread for a moment
/// in the container's namespace (`netns::within`): a thread of its own
/// cost more to start than the work it did.
///
/// Takes the namespace fd and closes it, along with everything else that
/// refers to the namespace, before returning: the namespace, and with it
/// the veth pair, then dies with the container's last process.
pub async fn plumb(nl: &Netlink, spec: &ContainerLink, netns: OwnedFd) -> Result<Plumbed, Error> {
    plumb_in(nl, spec, netns, None).await
}

/// [`plumb`] of a namespace `prepared` from inside (see
/// [`super::PreparedNetns`]): the peer is born with its IPv6 settings, and
/// the requests inside go over the socket that came with it.
pub async fn plumb_prepared(
    nl: &Netlink,
    spec: &ContainerLink,
    netns: OwnedFd,
    prepared: PreparedNetns,
) -> Result<Plumbed, Error> {
    plumb_in(nl, spec, netns, Some(prepared)).await
}

async fn plumb_in(
    nl: &Netlink,
    spec: &ContainerLink,
    netns: OwnedFd,
    prepared: Option<PreparedNetns>,
) -> Result<Plumbed, Error> {
    link::check_ifname(&spec.host_ifname)?;
    link::check_ifname(&spec.peer)?;
    if spec.routed {
        return super::routed::plumb(nl, spec, netns, prepared).await;
    }
    let (timings, port) = plumb_now(nl, spec, netns, prepared)?;
    let plumbed = Plumbed {
        host_index: port.index(),
        timings,
    };
    if let Port::Disabled {
        port,
        entry_refused,
    } = port
    {
        // A kernel whose lookup does not run the link watcher (see
        // `host_side`): the watcher's own work item will, and the carrier
        // it sees gives the port its multicast route only then.
        super::wait_forwarding(nl, &spec.host_ifname).await?;
        let name = &spec.host_ifname;
        let mut requests = vec![bridge_lookup(spec.bridge_index), no_multicast_route(port)];
        let mut contexts = vec![
            ("looking up the bridge of", name.clone()),
            ("deleting the IPv6 multicast route of", name.clone()),
        ];
        if entry_refused {
            requests.push(forwarding_entry(port, address::mac_for(spec.address)));
            contexts.push(("setting the bridge forwarding entry of", name.clone()));
        }
        let mut outcomes = nl
            .direct()
            .pipeline(requests)
            .map_err(Error::direct("configuring", name))?;
        forgive_no_route(&mut outcomes[1]);
        first_failure(outcomes, contexts)?;
    }
    Ok(plumbed)
}

/// Whether the bridge port forwards once [`plumb_now`] returns.
enum Port {
    Forwarding(u32),
    /// Not yet (`port`); the bridge refuses a learned entry on a port that
    /// neither learns nor forwards (EPERM), so the forwarding entry may
    /// wait too (`entry_refused`).
    Disabled {
        port: u32,
        entry_refused: bool,
    },
}

impl Port {
    /// The port's interface index.
    fn index(&self) -> u32 {
        match *self {
            Port::Forwarding(port) | Port::Disabled { port, .. } => port,
        }
    }
}

/// The lookup of the bridge `bridge_index`, sent once the container's port
/// forwards, so the bridge transmits before the container is published.
///
/// A bridge whose last port went (the container before this one ended)
/// loses its carrier, and the kernel's link watcher then takes away its
/// queueing discipline (noop in place of noqueue). The new port's
/// forwarding gives the carrier back, but the discipline comes back only
/// when the watcher's work item runs, which needs RTNL, busy with the
/// old namespace's teardown just then: until it does, every packet routed
/// to the bridge is dropped (`skb:kfree_skb` reason QDISC_DROP in
/// `__dev_queue_xmit`, on the bridge), and a SYN sent to the restarted
/// service in that window was lost, costing its client a retransmit.
/// Like the port's (see [`host_side`]), a lookup runs the watcher for
/// the bridge on the spot.
fn bridge_lookup(bridge_index: u32) -> Request {
    (
        RouteNetlinkMessage::GetLink(link::lookup_message(bridge_index)),
        None,
    )
}

/// The bridge's forwarding entry for the container's MAC on its port.
fn forwarding_entry(port: u32, mac: [u8; 6]) -> Request {
    (
        RouteNetlinkMessage::NewNeighbour(veth::forwarding_message(port, mac)),
        Some(Change::Replace),
    )
}

/// [`plumb`]'s requests, each answered before it returns; whether the
/// bridge port forwards already.
fn plumb_now(
    nl: &Netlink,
    spec: &ContainerLink,
    netns: OwnedFd,
    prepared: Option<PreparedNetns>,
) -> Result<(PlumbTimings, Port), Error> {
    let start = Instant::now();
    let mac = address::mac_for(spec.address);
    let mut host = nl.direct();
    let veth = veth::create_message(
        &spec.host_ifname,
        spec.bridge_index,
        &spec.peer,
        mac,
        netns.as_fd(),
    );
    let name = &spec.host_ifname;
    // Created down, given no IPv6 address of its own while down, then
    // up, before its peer: see the module's opening comment.
    let requests = vec![
        (RouteNetlinkMessage::NewLink(veth), Some(Change::Create)),
        (
            RouteNetlinkMessage::NewLink(veth::no_ipv6_addresses_message(name)),
            Some(Change::Modify),
        ),
        (
            RouteNetlinkMessage::NewLink(veth::up_message(name)),
            Some(Change::Modify),
        ),
    ];
    let contexts = vec![
        ("creating veth", name.clone()),
        ("turning off IPv6 addresses on", name.clone()),
        ("bringing up", name.clone()),
    ];
    let socket = create_pair(&mut host, spec, netns.as_fd(), prepared, requests, contexts)?;
    let veth = start.elapsed();
    let mut socket = inside(socket, spec, mac)?;
    drop(netns);
    let inside = start.elapsed();
    let port = host_side(&mut host, spec, mac)?;
    // After the host's side, which the kernel's work for the address
    // overlaps.
    if let Some((address6, _)) = spec.ipv6 {
        await_local_route(&mut socket, address6)?;
    }
    let total = start.elapsed();
    let timings = PlumbTimings::at(veth, inside, total);
    Ok((timings, port))
}

/// Sends `requests` (`contexts` in their order), which create the pair and
/// set up its host end, the second one its IPv6 settings; returns the
/// socket inside the container's namespace `netns`, the one `prepared`
/// brought or one opened with its IPv6 defaults lent for the peer's
/// creation (given back once it exists).
pub(super) fn create_pair(
    host: &mut Direct,
    spec: &ContainerLink,
    netns: BorrowedFd<'_>,
    prepared: Option<PreparedNetns>,
    requests: Vec<Request>,
    contexts: Vec<(&'static str, String)>,
) -> Result<Direct, Error> {
    let (socket, lent) = match prepared {
        Some(prepared) => (prepared.inside, None),
        None => open_inside(spec, netns).map(|(s, lent)| (s, Some(lent)))?,
    };
    crate::milestones::pause_at("lent");
    let created = host
        .pipeline(requests)
        .map_err(Error::direct("creating veth", &spec.host_ifname))
        .and_then(|mut outcomes| {
            forgive_no_ipv6(&mut outcomes[1]);
            first_failure(outcomes, contexts)
        });
    let given_back = lent.map_or(Ok(()), LentDefaults::give_back);
    created?;
    given_back?;
    Ok(socket)
}

/// A socket inside the container's namespace `netns` (an engine's), and
/// its IPv6 defaults lent for the peer's creation (see `prepared`), to be
/// given back once the peer exists.
///
/// Without IPv6 on the bridge, IPv6 is off on the peer: no link-local
/// address, no autoconfiguration from a stray router advertisement. With
/// it, accept_dad=0 must be there before the peer goes up, which adds the
/// link-local address: set after, that address stays tentative (unusable)
/// for about a second. Born with them, the peer needs no sysctl of its
/// own.
fn open_inside(
    spec: &ContainerLink,
    netns: BorrowedFd<'_>,
) -> Result<(Direct, LentDefaults), Error> {
    netns::within(netns, || {
        let socket = Direct::open().map_err(Error::NetnsSocket)?;
        let cookie = crate::netns_cookie::of_socket(socket.as_fd()).map_err(Error::LendLock)?;
        let dir = std::path::Path::new(lent::DIR);
        let lent = sysctl::with_private_proc(|proc| {
            LentDefaults::here(spec.ipv6.is_some(), proc, netns, cookie, dir)
        })?;
        Ok::<_, Error>((socket, lent))
    })
    .map_err(Error::EnterNetns)?
}

/// Inside the container's namespace, over `inside`: the peer (MAC `mac`)
/// up, its address and default route, its neighbour entry for the
/// gateway when the bridge's MAC (`spec.bridge_mac`) is known, and with IPv6
/// its link-local and IPv6 addresses (no DAD), default route and entry
/// for the IPv6 gateway. The socket, listening with IPv6 for the address's
/// local route (see `await_local_route`).
///
/// The gateway's entry, because the container's first ARP request must
/// not come before its anti-spoofing elements, which come with the
/// publish batch after the plumbing: the bridge drops it, and the kernel
/// asks again only a second later. It came before them when the host had
/// a packet for the address (a connection of the previous container on
/// it, e.g. to a service on the host, still sending) queued on its
/// INCOMPLETE neighbour entry, which the host side's entry then sends:
/// the new container answered with a reset, and its ARP request for the
/// gateway went into the guard (`skb:kfree_skb` NETFILTER_DROP, ARP, at
/// the port's ingress). Every SYN-ACK of the next second then waited in
/// that entry's queue: the restarted service went dark for a second
/// (tests/churn.rs, `Between::Lingering`: 2 to 12 of 20 restarts
/// without it, 5 runs of 5; none with it). STALE, as on the host (see
/// `veth::neighbour_message`): used at once, confirmed by the traffic.
///
/// The IPv6 gateway's entry likewise: the container's neighbour
/// solicitation for it met the guard too. Unicast IPv6 for the container
/// is dropped on the way out of the bridge until its elements are in (the
/// bridge's postrouting chain), but multicast is not, and the
/// container answers a multicast from the gateway's address (an echo
/// request to ff02::1 from the host) by soliciting it: the entry stayed
/// INCOMPLETE past the publish batch, and the first SYN-ACK waited for
/// the retransmit (tests/first_packets.rs).
fn inside(mut inside: Direct, spec: &ContainerLink, mac: [u8; 6]) -> Result<Direct, Error> {
    let peer = &spec.peer;
    let index = peer_index(&inside, peer)?;
    let (address, prefix_len) = (spec.address, spec.subnet.prefix_len());
    let gateway = spec.subnet.gateway();
    // Handled in this order: the route needs the peer up and addressed.
    // (With IPv6, the link-local address goes before all of them, below.)
    let mut requests: Vec<Request> = vec![
        (
            RouteNetlinkMessage::NewLink(LinkUnspec::new_with_index(index).up().build()),
            Some(Change::Modify),
        ),
        (
            RouteNetlinkMessage::NewAddress(
                AddressMessageBuilder::<Ipv4Addr>::new()
                    .index(index)
                    .address(address, prefix_len)
                    .build(),
            ),
            Some(Change::Create),
        ),
        (
            RouteNetlinkMessage::NewRoute(
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gateway)
                    .build(),
            ),
            Some(Change::Create),
        ),
    ];
    let mut contexts = vec![
        ("bringing up", peer.clone()),
        (
            "adding address",
            format!("{address}/{prefix_len} to {peer}"),
        ),
        ("adding default route via", gateway.to_string()),
    ];
    if let Some(bridge_mac) = spec.bridge_mac {
        requests.push(gateway_entry(index, IpAddr::V4(gateway), bridge_mac));
        contexts.push(("setting the neighbour entry of", gateway.to_string()));
    }
    if let Some((address6, subnet6)) = spec.ipv6 {
        let prefix_len6 = subnet6.prefix_len();
        // First of all: the kernel's work item that gives the address its
        // local route (see `await_local_route`) then runs while the rest
        // is done, rather than after it.
        requests.insert(
            0,
            (
                RouteNetlinkMessage::NewAddress(ipv6::address_message(
                    index,
                    address6,
                    prefix_len6,
                )),
                Some(Change::Create),
            ),
        );
        contexts.insert(
            0,
            (
                "adding address",
                format!("{address6}/{prefix_len6} to {peer}"),
            ),
        );
        requests.push((
            RouteNetlinkMessage::NewRoute(ipv6::default_route_message(
                subnet6.gateway(),
                Some(index),
            )),
            Some(Change::Create),
        ));
        contexts.push((
            "adding IPv6 default route via",
            subnet6.gateway().to_string(),
        ));
        // The address the default route goes via, the one the kernel
        // resolves (not the bridge's link-local address).
        if let Some(bridge_mac) = spec.bridge_mac {
            let gateway6 = subnet6.gateway();
            requests.push(gateway6_entry(index, gateway6, bridge_mac));
            contexts.push(("setting the neighbour entry of", gateway6.to_string()));
        }
    }
    if spec.ipv6.is_some() {
        // The link-local address first, while the peer is down: left to
        // the kernel, it is added when the carrier comes, tentative, and
        // only its address-configuration work item clears that, even with
        // accept_dad=0; on a busy machine that came after the command had
        // started. The kernel's own would be the same address (EUI-64 of
        // the MAC), which then exists already.
        let link_local = ipv6::link_local_for(mac);
        requests.insert(
            0,
            (
                RouteNetlinkMessage::NewAddress(ipv6::address_message(index, link_local, 64)),
                Some(Change::Create),
            ),
        );
        contexts.insert(0, ("adding address", format!("{link_local}/64 to {peer}")));
    }
    if spec.ipv6.is_some() {
        // Before the address is added, so that the notification of its
        // local route cannot come before we listen (see
        // `ipv6::is_local_route_of`, `await_local_route`).
        inside
            .join(libc::RTNLGRP_IPV6_ROUTE)
            .map_err(|source| Error::Request {
                action: "listening for the IPv6 routes of",
                object: format!("{peer} in the container"),
                source,
            })?;
    }
    let outcomes = inside.pipeline(requests).map_err(Error::direct(
        "configuring",
        format!("{peer} in the container"),
    ))?;
    first_failure(outcomes, contexts)?;
    Ok(inside)
}

/// The index of the container's end `peer`, over the socket `inside` its
/// namespace.
pub(super) fn peer_index(inside: &Direct, peer: &str) -> Result<u32, Error> {
    inside.index_of(peer).map_err(|source| Error::Request {
        action: "finding",
        object: format!("{peer} in the container"),
        source,
    })
}

/// Waits until the container's IPv6 address `address6` has its local
/// route, which the kernel inserts after the request adding the address
/// (see `ipv6::is_local_route_of`): a container published before that
/// dropped the SYNs of its first milliseconds (tests/churn.rs, the
/// dual-stack restart; with RTNL busy, up to 1.5 ms after the publish
/// batch). Bounded: past the bound the container starts anyway, warned.
fn await_local_route(inside: &mut Direct, address6: Ipv6Addr) -> Result<(), Error> {
    let start = Instant::now();
    let came = inside
        .await_notification(LOCAL_ROUTE_BOUND, |message| {
            ipv6::is_local_route_of(message, address6)
        })
        .map_err(|source| Error::Request {
            action: "waiting for the local route of",
            object: address6.to_string(),
            source,
        })?;
    tracing::debug!(
        "local route of {address6}: waited {} us",
        start.elapsed().as_micros()
    );
    if !came {
        tracing::warn!(
            "{address6} is not usable after {LOCAL_ROUTE_BOUND:?}: the container starts anyway, \
             and may not be reachable over IPv6 at once"
        );
    }
    Ok(())
}

/// How long plumbing waits for the kernel to make a container's IPv6
/// address its own: the work item needs RTNL, which a busy host holds for
/// milliseconds at a time.
const LOCAL_ROUTE_BOUND: Duration = Duration::from_secs(2);

/// The container's neighbour entry (on its interface `index`) for its
/// gateway `address`, at the bridge's MAC (see `inside`).
fn gateway_entry(index: u32, address: IpAddr, bridge_mac: [u8; 6]) -> Request {
    (
        RouteNetlinkMessage::NewNeighbour(veth::neighbour_message(index, address, bridge_mac)),
        Some(Change::Replace),
    )
}

/// The container's neighbour entry for its IPv6 gateway, PERMANENT: a
/// neighbour advertisement from another container, for the gateway's
/// address with the override flag and that container's MAC, moved a
/// STALE one, and the container's traffic out of the network went to
/// that container's port, dropped there (the bridge's postrouting guard):
/// cut off as long as the forger kept sending. IPv4's form, a forged ARP
/// reply, meets the ARP guard; the bridge cannot check an advertisement's
/// target (nft 1.0.6), and no advertisement moves a PERMANENT entry. The
/// bridge's MAC follows from its gateway address and stays while a port
/// of it does. Exempt from the neighbour table's limit, as the STALE
/// entry's external flag was.
fn gateway6_entry(index: u32, address: Ipv6Addr, bridge_mac: [u8; 6]) -> Request {
    let mut message = veth::neighbour_message(index, IpAddr::V6(address), bridge_mac);
    message.header.state = NeighbourState::Permanent;
    message.header.flags = NeighbourFlags::empty();
    (
        RouteNetlinkMessage::NewNeighbour(message),
        Some(Change::Replace),
    )
}

/// Where the forwarding entry is in [`host_side`]'s message.
const FORWARDING_ENTRY: usize = 3;

/// On the host, once the peer holds its address: the bridge port made to
/// forward, hairpin mode on it, and the bridge's forwarding entry and the
/// host's neighbour entries for the container (see `veth`). Whether the
/// port forwards.
///
/// The peer's coming up gave the host end its carrier, but the bridge
/// enables the port only when the kernel's link watcher has seen that
/// carrier, in a work item of its own, later (see `veth::wait_forwarding`).
/// A link lookup runs the watcher for that link on the spot (the kernel
/// does it so a lookup never reports a state it has yet to act on), so
/// the lookup first in this message leaves the port forwarding, and its
/// answer says so; the bridge's lookup after it gives the bridge back its
/// queueing discipline if the port's forwarding gave it its carrier back
/// (see [`bridge_lookup`]).
fn host_side(host: &mut Direct, spec: &ContainerLink, mac: [u8; 6]) -> Result<Port, Error> {
    let name = &spec.host_ifname;
    let port = host
        .index_of(name)
        .map_err(Error::direct("finding", name))?;
    // The IPv6 address's entry for the same reason as the IPv4 one's (see
    // `veth::neighbour_message`), even when its MAC has not changed: a SYN
    // routed while no port carried the address leaves the entry
    // INCOMPLETE, and IPv6 asks again only after a second too (a restart
    // of a dual-stack service went dark that long without it).
    let addresses =
        std::iter::once(IpAddr::V4(spec.address)).chain(spec.ipv6.map(|(a, _)| IpAddr::V6(a)));
    let mut requests: Vec<Request> = vec![
        (
            RouteNetlinkMessage::GetLink(link::lookup_message(port)),
            None,
        ),
        // After the port's: its forwarding gives the bridge its carrier.
        bridge_lookup(spec.bridge_index),
        (veth::hairpin_message(port), Some(Change::Modify)),
        forwarding_entry(port, mac),
    ];
    let mut contexts = vec![
        ("looking up link", name.clone()),
        ("looking up the bridge of", name.clone()),
        ("turning on hairpin mode of", name.clone()),
        ("setting the bridge forwarding entry of", name.clone()),
    ];
    for address in addresses {
        requests.push((
            RouteNetlinkMessage::NewNeighbour(veth::neighbour_message(
                spec.bridge_index,
                address,
                mac,
            )),
            Some(Change::Replace),
        ));
        contexts.push(("setting the neighbour entry of", address.to_string()));
    }
    // Last, so the others keep their places (`FORWARDING_ENTRY`).
    requests.push(no_multicast_route(port));
    contexts.push(("deleting the IPv6 multicast route of", name.clone()));
    let mut outcomes = host
        .pipeline(requests)
        .map_err(Error::direct("configuring", name))?;
    if let Some(last) = outcomes.last_mut() {
        // Not made yet when the carrier's work item has not run (see
        // `Port::Disabled`): `plumb_in` asks again after it.
        forgive_no_route(last);
    }
    let lookup = std::mem::replace(&mut outcomes[0], Ok(None));
    let running = match lookup {
        Ok(Some(RouteNetlinkMessage::NewLink(msg))) => link::Link::from_message(msg).running,
        _ => false,
    };
    if running {
        first_failure(outcomes, contexts)?;
        return Ok(Port::Forwarding(port));
    }
    let refused = matches!(
        &outcomes[FORWARDING_ENTRY],
        Err(err) if err.raw_os_error() == Some(libc::EPERM)
    );
    if refused {
        outcomes[FORWARDING_ENTRY] = Ok(None);
    }
    first_failure(outcomes, contexts)?;
    Ok(Port::Disabled {
        port,
        entry_refused: refused,
    })
}

/// The request deleting the IPv6 multicast route (ff00::/8, table local)
/// that a link with IPv6 on and no address of its own still gets when its
/// carrier comes (see the module's opening comment).
pub(super) fn no_multicast_route(port: u32) -> Request {
    (
        RouteNetlinkMessage::DelRoute(ipv6::multicast_route_message(port)),
        Some(Change::Modify),
    )
}

/// A route to delete that is not there (ESRCH) counts as deleted, as
/// does any IPv6 request on a kernel without IPv6 (EAFNOSUPPORT).
pub(super) fn forgive_no_route(outcome: &mut std::io::Result<Option<RouteNetlinkMessage>>) {
    if matches!(outcome, Err(err) if err.raw_os_error() == Some(libc::ESRCH)) {
        *outcome = Ok(None);
    }
    forgive_no_ipv6(outcome);
}

/// An IPv6 request on a kernel without IPv6 (EAFNOSUPPORT) counts as done:
/// there is no IPv6 to turn off.
fn forgive_no_ipv6(outcome: &mut std::io::Result<Option<RouteNetlinkMessage>>) {
    if matches!(outcome, Err(err) if err.raw_os_error() == Some(libc::EAFNOSUPPORT)) {
        *outcome = Ok(None);
    }
}

/// The first failed request's error, named by its context (`contexts`, in
/// the order of the requests).
pub(super) fn first_failure(
    outcomes: Vec<std::io::Result<Option<RouteNetlinkMessage>>>,
    contexts: Vec<(&'static str, String)>,
) -> Result<(), Error> {
    for (outcome, (action, object)) in outcomes.into_iter().zip(contexts) {
        outcome.map_err(Error::direct(action, object))?;
    }
    Ok(())
}
