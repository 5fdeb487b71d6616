//! One container's network in routed mode (CNI `"mode": "routed"`): the
//! veth pair as in bridge mode, but the host end on no bridge. The host
//! routes to the container by a `/32` on its host end, and the container
//! routes everything to the gateway, `default via GW dev IFNAME onlink`,
//! over its only link. No bridge port is added, so nothing walks a
//! bridge's ports at each ADD: what grows with the attached containers in
//! bridge mode (docs/routed-probe.md) is not there.
//!
//! Three messages, as bridge mode's: the pair created, given no IPv6
//! address and `route_localnet` (for ports published on 127.0.0.1, which
//! are DNATed out of this link), and up; inside, the peer up with its
//! `/32`, the default route and a PERMANENT entry for the gateway at the
//! host end's MAC (fixed, so known before the pair exists, and never
//! left to the host's `arp_ignore` or `proxy_arp`); on the host, the link
//! lookup that runs the link watcher, the `/32` (`scope link src GW`), the
//! host's entry for the container (as bridge mode sets it on the bridge)
//! and the IPv6 multicast route's removal. The route and the entry go
//! with the link: DEL deletes only the link.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{AfSpecInet, AfSpecUnspec, LinkAttribute, LinkFlags};
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::packet_route::route::{RouteFlags, RouteProtocol, RouteScope};
use rtnetlink::{AddressMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::direct::{Change, Direct, Request};
use super::plumb::{
    PlumbTimings, Plumbed, create_pair, first_failure, forgive_no_route, no_multicast_route,
    peer_index,
};
use super::{ContainerLink, Error, Netlink, PreparedNetns, address, link, veth};

/// The MAC of every routed host end (a locally administered one, as
/// Calico's): the container's gateway entry points at it before the pair
/// exists, and ADD's result names it without asking the kernel.
pub const HOST_MAC: [u8; 6] = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];

/// IFLA_INET_CONF, and its IPV4_DEVCONF_ARP_IGNORE and
/// IPV4_DEVCONF_ROUTE_LOCALNET (include/uapi/linux/ip.h): not in the
/// crate's request types.
const IFLA_INET_CONF: u16 = 1;
const IPV4_DEVCONF_ARP_IGNORE: u16 = 19;
const IPV4_DEVCONF_ROUTE_LOCALNET: u16 = 26;
/// `arp_ignore` 8: answer no ARP request on the host end. The host makes
/// a neighbour entry for the sender of each request it answers, and a
/// container sending requests from forged addresses filled the table every
/// namespace of the machine shares (gc_thresh3, 1,024 entries: "neighbor
/// table overflow"), where bridge mode's ARP guard drops them. The
/// container needs no answer: its gateway's entry is PERMANENT.
const ARP_IGNORE_ALL: u32 = 8;

/// Plumbs `spec` (a routed one) into `netns`, as the module says; closes
/// the namespace before returning.
pub(super) async fn plumb(
    nl: &Netlink,
    spec: &ContainerLink,
    netns: OwnedFd,
    prepared: Option<PreparedNetns>,
) -> Result<Plumbed, Error> {
    let (timings, port, running) = plumb_now(nl, spec, netns, prepared)?;
    if !running {
        // The link watcher had not seen the carrier yet at the lookup (a
        // kernel whose lookup does not run it): until it has, the host
        // end's queueing discipline drops what is routed to it, and the
        // multicast route comes only then.
        super::wait_forwarding(nl, &spec.host_ifname).await?;
        let mut outcomes = nl
            .direct()
            .pipeline(vec![no_multicast_route(port)])
            .map_err(Error::direct("configuring", &spec.host_ifname))?;
        forgive_no_route(&mut outcomes[0]);
        first_failure(
            outcomes,
            vec![(
                "deleting the IPv6 multicast route of",
                spec.host_ifname.clone(),
            )],
        )?;
    }
    Ok(Plumbed {
        host_index: port,
        timings,
    })
}

/// The three messages; the host end's index, and whether it was running
/// at the lookup.
fn plumb_now(
    nl: &Netlink,
    spec: &ContainerLink,
    netns: OwnedFd,
    prepared: Option<PreparedNetns>,
) -> Result<(PlumbTimings, u32, bool), Error> {
    let start = Instant::now();
    let mac = address::mac_for(spec.address);
    let name = &spec.host_ifname;
    let mut host = nl.direct();
    let create =
        veth::create_message_on(name, None, Some(HOST_MAC), &spec.peer, mac, netns.as_fd());
    let mut settings = veth::no_ipv6_addresses_message(name);
    if let Some(LinkAttribute::AfSpecUnspec(specs)) = settings.attributes.last_mut() {
        specs.push(route_localnet());
    }
    let requests = vec![
        (RouteNetlinkMessage::NewLink(create), Some(Change::Create)),
        (RouteNetlinkMessage::NewLink(settings), Some(Change::Modify)),
        (
            RouteNetlinkMessage::NewLink(veth::up_message(name)),
            Some(Change::Modify),
        ),
    ];
    let contexts = vec![
        ("creating veth", name.clone()),
        (
            "turning off IPv6 addresses and on route_localnet on",
            name.clone(),
        ),
        ("bringing up", name.clone()),
    ];
    let socket = create_pair(&mut host, spec, netns.as_fd(), prepared, requests, contexts)?;
    let veth = start.elapsed();
    inside(socket, spec)?;
    drop(netns);
    let inside = start.elapsed();
    let (port, running) = host_side(&mut host, spec, mac)?;
    let total = start.elapsed();
    let timings = PlumbTimings::at(veth, inside, total);
    Ok((timings, port, running))
}

/// IFLA_AF_SPEC's AF_INET part turning on `route_localnet` on the host
/// end: a port published on 127.0.0.1 is DNATed to the container, and a
/// packet from 127.0.0.0/8 leaves by a link only with it (the bridge has
/// it in bridge mode). Refused in the creating request (EAFNOSUPPORT, as
/// the IPv6 part is), taken in the next (the probe read 1 back).
///
/// `arp_ignore` goes with it (see [`ARP_IGNORE_ALL`]).
fn route_localnet() -> AfSpecUnspec {
    let mut conf = Vec::with_capacity(16);
    for (setting, value) in [
        (IPV4_DEVCONF_ROUTE_LOCALNET, 1u32),
        (IPV4_DEVCONF_ARP_IGNORE, ARP_IGNORE_ALL),
    ] {
        conf.extend_from_slice(&8u16.to_ne_bytes());
        conf.extend_from_slice(&setting.to_ne_bytes());
        conf.extend_from_slice(&value.to_ne_bytes());
    }
    AfSpecUnspec::Inet(vec![AfSpecInet::Other(DefaultNla::new(
        IFLA_INET_CONF,
        conf,
    ))])
}

/// Inside, over `inside`: the peer up, its address as a `/32`, the
/// default route via the gateway on it (onlink: no subnet is on-link),
/// and the gateway's PERMANENT entry at [`HOST_MAC`].
fn inside(mut inside: Direct, spec: &ContainerLink) -> Result<(), Error> {
    let peer = &spec.peer;
    let index = peer_index(&inside, peer)?;
    let gateway = spec.subnet.gateway();
    let mut default = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(index)
        .build();
    default.header.flags = RouteFlags::Onlink;
    let mut entry = veth::neighbour_message(index, IpAddr::V4(gateway), HOST_MAC);
    // The host end's MAC is fixed: nothing is to be learned or confirmed.
    entry.header.state = NeighbourState::Permanent;
    entry.header.flags = Default::default();
    let requests: Vec<Request> = vec![
        (
            RouteNetlinkMessage::NewLink(LinkUnspec::new_with_index(index).up().build()),
            Some(Change::Modify),
        ),
        (
            RouteNetlinkMessage::NewAddress(
                AddressMessageBuilder::<Ipv4Addr>::new()
                    .index(index)
                    .address(spec.address, 32)
                    .build(),
            ),
            Some(Change::Create),
        ),
        (RouteNetlinkMessage::NewRoute(default), Some(Change::Create)),
        (
            RouteNetlinkMessage::NewNeighbour(entry),
            Some(Change::Replace),
        ),
    ];
    let contexts = vec![
        ("bringing up", peer.clone()),
        ("adding address", format!("{}/32 to {peer}", spec.address)),
        ("adding default route via", gateway.to_string()),
        ("setting the neighbour entry of", gateway.to_string()),
    ];
    let outcomes = inside.pipeline(requests).map_err(Error::direct(
        "configuring",
        format!("{peer} in the container"),
    ))?;
    first_failure(outcomes, contexts)
}

/// On the host: the host end's lookup (it runs the link watcher, so the
/// link transmits before anything is published to it), the container's
/// `/32` on it, the host's entry for the container, the IPv6 multicast
/// route deleted. The host end's index, and whether it was running.
fn host_side(host: &mut Direct, spec: &ContainerLink, mac: [u8; 6]) -> Result<(u32, bool), Error> {
    let name = &spec.host_ifname;
    let port = host
        .index_of(name)
        .map_err(Error::direct("finding", name))?;
    let requests: Vec<Request> = vec![
        (
            RouteNetlinkMessage::GetLink(link::lookup_message(port)),
            None,
        ),
        (
            RouteNetlinkMessage::NewRoute(host_route(spec, port)),
            Some(Change::Replace),
        ),
        (
            RouteNetlinkMessage::NewNeighbour(veth::neighbour_message(
                port,
                IpAddr::V4(spec.address),
                mac,
            )),
            Some(Change::Replace),
        ),
        no_multicast_route(port),
    ];
    let contexts = vec![
        ("looking up link", name.clone()),
        (
            "adding the route to",
            format!("{}/32 via {name}", spec.address),
        ),
        ("setting the neighbour entry of", spec.address.to_string()),
        ("deleting the IPv6 multicast route of", name.clone()),
    ];
    let mut outcomes = host
        .pipeline(requests)
        .map_err(Error::direct("configuring", name))?;
    if let Some(last) = outcomes.last_mut() {
        forgive_no_route(last);
    }
    let running = match std::mem::replace(&mut outcomes[0], Ok(None)) {
        Ok(Some(RouteNetlinkMessage::NewLink(msg))) => {
            msg.header.flags.contains(LinkFlags::Running)
        }
        _ => false,
    };
    first_failure(outcomes, contexts)?;
    Ok((port, running))
}

/// `X/32 dev HOST_END scope link src GW proto static`: the source is the
/// gateway, the address the container knows the host by.
pub(crate) fn host_route(
    spec: &ContainerLink,
    port: u32,
) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(spec.address, 32)
        .scope(RouteScope::Link)
        .output_interface(port)
        .pref_source(spec.subnet.gateway())
        .protocol(RouteProtocol::Static)
        .build()
}
