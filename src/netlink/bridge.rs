//! The host bridge containers attach to: created when absent, given the
//! subnet's gateway address (and with IPv6 the subnet6's, without DAD), up. Idempotent, and safe when several
//! supervisors ensure it at the same moment: the kernel's EEXIST decides who
//! created it, and everyone then configures it the same way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtnetlink::LinkBridge;
use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::packet_route::route::RouteMessage;

use super::{Error, Netlink, address, ipv6, is_errno, link, route};
use crate::values::{Subnet, Subnet6};

/// A bridge and the subnet it serves, and its IPv6 subnet when it is dual
/// stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub subnet: Subnet,
    pub subnet6: Option<Subnet6>,
}

/// What [`ensure_bridge_made`] found or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ensured {
    pub index: u32,
    /// Its hardware address, for the containers' gateway entry (see
    /// `plumb::inside`); None should the kernel report none of 6 bytes.
    pub mac: Option<[u8; 6]>,
    /// Whether this call made it (not a concurrent supervisor): a bridge
    /// made again may have served other subnets before, whose elements
    /// are then stale.
    pub made: bool,
}

/// Makes sure `bridge` exists, holds the gateway address and is up; returns
/// its interface index. A subnet overlapping a route on another interface is
/// refused with that interface's name, and so is a bridge already serving
/// another subnet. The same for the IPv6 subnet when there is one: the
/// bridge's IPv6 addresses (but its link-local one) must be the subnet6's
/// gateway, which is added without DAD when missing.
pub async fn ensure_bridge(nl: &Netlink, bridge: &Bridge) -> Result<u32, Error> {
    Ok(ensure_bridge_made(nl, bridge).await?.index)
}

/// `ensure_bridge`, and what a container's plumbing and the firewall need
/// to know of the bridge besides its index (see [`Ensured`]).
pub async fn ensure_bridge_made(nl: &Netlink, bridge: &Bridge) -> Result<Ensured, Error> {
    ensure_bridge_of(nl, bridge, false).await
}

/// [`ensure_bridge_made`] for a routed network (CNI `"mode": "routed"`):
/// its containers' `/32`s are routes of the host, so reading every route
/// at each ADD grew with them (the dump and its decoding: 0.05 ms of ADD
/// at 0 attached, 1.0-1.2 ms at 1,000). The routes are read only when the
/// bridge is made; on an existing one each container's address is checked
/// on its own instead, once leased (see [`check_routed_address`]).
pub async fn ensure_bridge_routed(nl: &Netlink, bridge: &Bridge) -> Result<Ensured, Error> {
    ensure_bridge_of(nl, bridge, true).await
}

async fn ensure_bridge_of(nl: &Netlink, bridge: &Bridge, routed: bool) -> Result<Ensured, Error> {
    link::check_ifname(&bridge.name)?;
    let ipv6 = bridge.subnet6.is_some();
    // Read on the spot, before the first await (see `direct`), on the
    // connection's own socket, which plumbing uses next: no socket of its
    // own to open, nor a buffer of its own to fault in. Each dump covers
    // both families when the bridge is dual stack. A bridge created below
    // starts without addresses.
    //
    // The routes are read even when the bridge already holds exactly the
    // gateway: a route that overlaps the subnet on another interface,
    // added since the bridge was made (a VPN's, say), sends part of the
    // subnet elsewhere, and every run then refuses the subnet as the first
    // one would have.
    //
    // Two round trips, not three: the link lookup and the route dump go in
    // one message. The address dump cannot join them: it needs the link's
    // index (a dump is filtered by index, never by name), and the kernel
    // refuses a dump behind another in one message (EBUSY) when the first
    // takes more than one datagram. An index read before (SIOCGIFINDEX)
    // would let it go first, but a bridge with many addresses would then
    // make the route dump fail, and a bridge made again in between would
    // be checked by another's addresses: each needs a retry, for one round
    // trip of a few microseconds.
    let (existing, all_addresses, routes) = {
        let mut direct = nl.direct();
        let (existing, routes) = if routed {
            let [existing] = direct
                .ask_all([(link::lookup_by_name(&bridge.name), false)])
                .map_err(Error::direct("looking up link", &bridge.name))?;
            let existing = link::from_lookup(existing, &bridge.name)?;
            let routes = match existing {
                Some(_) => Vec::new(),
                None => route::from_dump(direct.ask(route::dump_request(ipv6), true))?,
            };
            (existing, routes)
        } else {
            let [existing, routes] = direct
                .ask_all([
                    (link::lookup_by_name(&bridge.name), false),
                    (route::dump_request(ipv6), true),
                ])
                .map_err(Error::direct("looking up link", &bridge.name))?;
            (
                link::from_lookup(existing, &bridge.name)?,
                route::from_dump(routes)?,
            )
        };
        let all_addresses = match &existing {
            Some(link) => address::on_link(&mut direct, link.index, ipv6)?,
            None => Vec::new(),
        };
        (existing, all_addresses, routes)
    };
    check_overlap(nl, bridge, &routes, existing.as_ref().map(|l| l.index)).await?;
    let (br, made) = match existing {
        Some(br) => (br, false),
        None => create(nl, &bridge.name, bridge.subnet.gateway()).await?,
    };
    if br.kind != Some(InfoKind::Bridge) {
        return Err(Error::NotABridge {
            name: bridge.name.clone(),
            kind: br
                .kind
                .map_or_else(|| "kindless".to_string(), |k| k.to_string()),
        });
    }
    let subnet = bridge.subnet;
    let gateway = subnet.gateway();
    let addresses: Vec<(Ipv4Addr, u8)> = all_addresses
        .iter()
        .filter(|a| a.index == br.index)
        .filter_map(|a| match a.addr {
            IpAddr::V4(addr) => Some((addr, a.prefix_len)),
            IpAddr::V6(_) => None,
        })
        .collect();
    if let Some((addr, len)) = addresses
        .iter()
        .find(|a| **a != (gateway, subnet.prefix_len()))
    {
        return Err(Error::BridgeAddress {
            bridge: bridge.name.clone(),
            existing: format!("{addr}/{len}"),
            wanted: format!("{gateway}/{}", subnet.prefix_len()),
        });
    }
    let add_address6 = async {
        match bridge.subnet6 {
            Some(subnet6) => {
                ensure_gateway6(nl, &bridge.name, br.index, subnet6, &all_addresses).await
            }
            None => Ok(()),
        }
    };
    let add_address = async {
        if addresses.is_empty() {
            // A concurrent supervisor may add it first: EEXIST is fine.
            address::add(
                nl.handle()?,
                br.index,
                &bridge.name,
                gateway,
                subnet.prefix_len(),
                true,
            )
            .await?;
        }
        Ok(())
    };
    let set_up = async {
        if !br.up {
            link::set_up(nl.handle()?, br.index, &bridge.name).await?;
        }
        Ok(())
    };
    tokio::try_join!(add_address, add_address6, set_up)?;
    Ok(Ensured {
        index: br.index,
        mac: br.mac.as_slice().try_into().ok(),
        made,
    })
}

/// A routed network's container address `address`, leased on `bridge`
/// (index `bridge_index`) and not plumbed yet: no route as specific as the
/// subnet's or more may take it elsewhere than the bridge (a VPN's, added
/// since the bridge was made), else the subnet is refused as
/// [`ensure_bridge_made`] refuses one. A less specific route (a default
/// one) never wins over the subnet's own. One lookup, answered on the spot.
pub async fn check_routed_address(
    nl: &Netlink,
    bridge: &Bridge,
    bridge_index: u32,
    address: Ipv4Addr,
) -> Result<(), Error> {
    let matched = route::matched_route(&mut nl.direct(), address)?;
    // A local route wins whatever its length: with any policy rule the
    // local table is looked up before the main one, so an AnyIP range
    // (`local 172.16.0.0/16 dev lo`) takes the address from the subnet's
    // /24 and its /32s (the host would answer for the container).
    let oif = match matched {
        Some(m)
            if m.oif != Some(bridge_index)
                && (m.local || m.prefix_len >= bridge.subnet.prefix_len()) =>
        {
            m.oif
        }
        _ => return Ok(()),
    };
    let interface = match oif {
        Some(index) => match link::by_index(nl.handle()?, index).await? {
            Some(l) => l.name,
            None => format!("interface #{index}"),
        },
        None => "no interface (blackhole or multipath route)".to_string(),
    };
    Err(Error::SubnetOverlap {
        subnet: bridge.subnet.to_string(),
        route: format!("to {address}"),
        interface,
    })
}

/// Adds the subnet6's gateway to the bridge unless it holds it already; a
/// bridge holding another IPv6 address (its link-local one aside) serves
/// another subnet6, and is refused as for IPv4.
async fn ensure_gateway6(
    nl: &Netlink,
    name: &str,
    index: u32,
    subnet6: Subnet6,
    all_addresses: &[address::LinkAddress],
) -> Result<(), Error> {
    let gateway = subnet6.gateway();
    let wanted = (gateway, subnet6.prefix_len());
    let addresses: Vec<(Ipv6Addr, u8)> = all_addresses
        .iter()
        .filter(|a| a.index == index)
        .filter_map(|a| match a.addr {
            IpAddr::V6(addr) if !addr.is_unicast_link_local() => Some((addr, a.prefix_len)),
            _ => None,
        })
        .collect();
    if let Some((addr, len)) = addresses.iter().find(|a| **a != wanted) {
        return Err(Error::BridgeAddress {
            bridge: name.to_string(),
            existing: format!("{addr}/{len}"),
            wanted: format!("{gateway}/{}", subnet6.prefix_len()),
        });
    }
    if addresses.is_empty() {
        // A concurrent supervisor may add it first: EEXIST is fine.
        ipv6::add_address(
            nl.handle()?,
            index,
            name,
            gateway,
            subnet6.prefix_len(),
            true,
        )
        .await?;
    }
    Ok(())
}

/// Creates the bridge with a fixed MAC (the gateway's, docker-style): left
/// alone, a bridge takes the lowest MAC of its ports, which changes as
/// containers come and go, and containers' ARP entries for the gateway go
/// stale.
/// Whether it was made by this call is the second value.
async fn create(nl: &Netlink, name: &str, gateway: Ipv4Addr) -> Result<(link::Link, bool), Error> {
    let handle = nl.handle()?;
    let message = LinkBridge::new(name)
        .address(address::mac_for(gateway).to_vec())
        .build();
    let made = match handle.link().add(message).execute().await {
        Err(err) if is_errno(&err, libc::EEXIST) => false,
        other => {
            other.map_err(Error::request("creating bridge", name))?;
            true
        }
    };
    // Created by us or by a concurrent supervisor; deleted in between only
    // by someone deleting it on purpose.
    let link = link::by_name(handle, name)
        .await?
        .ok_or_else(|| Error::Request {
            action: "creating bridge",
            object: name.to_string(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })?;
    Ok((link, made))
}

async fn check_overlap(
    nl: &Netlink,
    bridge: &Bridge,
    routes: &[RouteMessage],
    bridge_index: Option<u32>,
) -> Result<(), Error> {
    let v4 = route::first_overlap(routes, bridge.subnet, bridge_index)
        .map(|found| (bridge.subnet.to_string(), found));
    let v6 = || {
        let subnet6 = bridge.subnet6?;
        route::first_overlap6(routes, subnet6, bridge_index)
            .map(|found| (subnet6.to_string(), found))
    };
    if let Some((subnet, found)) = v4.or_else(v6) {
        return Err(Error::SubnetOverlap {
            subnet,
            route: format!("{}/{}", found.destination, found.prefix_len),
            interface: interface_name(nl, found.oif).await?,
        });
    }
    let host4 = route::first_host_address(
        routes,
        |address, prefix_len| match address {
            IpAddr::V4(address) => bridge.subnet.overlaps(address, prefix_len),
            IpAddr::V6(_) => false,
        },
        bridge_index,
    )
    .map(|found| (bridge.subnet.to_string(), found));
    let host6 = || {
        let subnet6 = bridge.subnet6?;
        route::first_host_address(
            routes,
            |address, prefix_len| match address {
                IpAddr::V6(address) => subnet6.overlaps(address, prefix_len),
                IpAddr::V4(_) => false,
            },
            bridge_index,
        )
        .map(|found| (subnet6.to_string(), found))
    };
    if let Some((subnet, found)) = host4.or_else(host6) {
        return Err(Error::SubnetHoldsHostAddress {
            subnet,
            held: found.describe(),
            interface: interface_name(nl, found.oif).await?,
        });
    }
    Ok(())
}

/// The name of link `oif` of a route, for a message.
async fn interface_name(nl: &Netlink, oif: Option<u32>) -> Result<String, Error> {
    Ok(match oif {
        Some(index) => match link::by_index(nl.handle()?, index).await? {
            Some(l) => l.name,
            None => format!("interface #{index}"),
        },
        None => "no interface (blackhole or multipath route)".to_string(),
    })
}
