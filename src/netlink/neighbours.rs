//! The host's neighbour entries for a container's addresses, taken out at
//! its teardown.
//!
//! The plumbing sets one per address on the bridge (see
//! `veth::neighbour_message`), flagged as learned externally
//! (NTF_EXT_LEARNED), which keeps it out of the count the kernel's
//! neighbour table limits (gc_thresh3, 1,024 in the root namespace and
//! global to every namespace): counted, about 1,000 attached containers
//! filled it, and the next ADD or `run` failed with ENOBUFS. Exempt, the
//! kernel never collects it either, so whoever gives the address back
//! takes its entries out first, and only those still pointing at the
//! container's MAC: another may have taken the address since.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::address::mac_for;
use super::direct::{Change, Direct, Request};
use super::{ContainerLink, Error, Netlink};

impl Netlink {
    /// Deletes the entries `link`'s plumbing set (on its bridge, for its
    /// addresses) that still point at its MAC; how many went.
    pub fn forget_neighbours(&self, link: &ContainerLink) -> Result<usize, Error> {
        if link.routed {
            // On the host end, gone with it (see `routed`).
            return Ok(0);
        }
        let v6 = link.ipv6.map(|(address, _)| address);
        forget(&mut self.direct(), link.bridge_index, link.address, v6)
    }
}

/// The entries a container's plumbing set on the bridge named `bridge`
/// for `address` (and `address6`), deleted while they still point at its
/// MAC, over a socket of its own; how many went. A bridge that is gone
/// took its entries with it.
pub fn forget_neighbours_on(
    bridge: &str,
    address: Ipv4Addr,
    address6: Option<Ipv6Addr>,
) -> Result<usize, Error> {
    let mut direct = Direct::open().map_err(Error::Socket)?;
    let index = match direct.index_of(bridge) {
        Err(err) if err.raw_os_error() == Some(libc::ENODEV) => return Ok(0),
        found => found.map_err(Error::direct("finding", bridge))?,
    };
    forget(&mut direct, index, address, address6)
}

/// One lookup per address, then one deletion per entry that points at
/// the MAC of `address`, each batch in one message.
fn forget(
    direct: &mut Direct,
    bridge_index: u32,
    address: Ipv4Addr,
    address6: Option<Ipv6Addr>,
) -> Result<usize, Error> {
    let mac = mac_for(address);
    let addresses: Vec<IpAddr> = std::iter::once(address.into())
        .chain(address6.map(IpAddr::from))
        .collect();
    let lookups: Vec<Request> = addresses
        .iter()
        .map(|&address| {
            let message = entry_message(bridge_index, address);
            (RouteNetlinkMessage::GetNeighbour(message), None)
        })
        .collect();
    let found = direct.pipeline(lookups).map_err(Error::direct(
        "looking up the neighbour entries of",
        describe(&addresses),
    ))?;
    let mut doomed = Vec::new();
    for (outcome, &address) in found.into_iter().zip(&addresses) {
        match outcome {
            Ok(Some(RouteNetlinkMessage::NewNeighbour(entry))) if points_at(&entry, mac) => {
                doomed.push(address);
            }
            Ok(_) => {}
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
            Err(err) => {
                return Err(Error::direct(
                    "looking up the neighbour entry of",
                    address.to_string(),
                )(err));
            }
        }
    }
    if doomed.is_empty() {
        return Ok(0);
    }
    let deletions: Vec<Request> = doomed
        .iter()
        .map(|&address| {
            let message = entry_message(bridge_index, address);
            (
                RouteNetlinkMessage::DelNeighbour(message),
                Some(Change::Modify),
            )
        })
        .collect();
    let outcomes = direct.pipeline(deletions).map_err(Error::direct(
        "deleting the neighbour entries of",
        describe(&doomed),
    ))?;
    for (outcome, address) in outcomes.into_iter().zip(&doomed) {
        match outcome {
            // Gone meanwhile.
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
            other => {
                other.map_err(Error::direct(
                    "deleting the neighbour entry of",
                    address.to_string(),
                ))?;
            }
        }
    }
    Ok(doomed.len())
}

/// The entry for `address` on `bridge_index`, as a lookup or a deletion
/// names it: every other field zero (the kernel checks a lookup strictly).
/// The plumbing's setting of it starts from here too
/// (`veth::neighbour_message`).
pub(super) fn entry_message(bridge_index: u32, address: IpAddr) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.ifindex = bridge_index;
    message.header.state = NeighbourState::None;
    message.attributes = vec![NeighbourAttribute::Destination(match address {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    })];
    message
}

fn points_at(entry: &NeighbourMessage, mac: [u8; 6]) -> bool {
    entry
        .attributes
        .iter()
        .any(|a| matches!(a, NeighbourAttribute::LinkLayerAddress(l) if l[..] == mac[..]))
}

fn describe(addresses: &[IpAddr]) -> String {
    let names: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    names.join(", ")
}
