//! Read-only views of links and addresses, for `inspect` and `gc`.

use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;

use super::netns::{socket_in, with_connection};
use super::{Error, Netlink, address, link};

/// A link as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub name: String,
    pub index: u32,
    pub up: bool,
    /// The bridge it is attached to.
    pub bridge: Option<String>,
    /// Its hardware address.
    pub mac: Vec<u8>,
    pub is_bridge: bool,
}

/// The link named `name`, or None.
pub async fn link_state(nl: &Netlink, name: &str) -> Result<Option<LinkState>, Error> {
    let Some(found) = link::by_name(nl.handle(), name).await? else {
        return Ok(None);
    };
    let bridge = match found.controller {
        Some(index) => link::by_index(nl.handle(), index).await?.map(|b| b.name),
        None => None,
    };
    Ok(Some(LinkState {
        name: found.name,
        index: found.index,
        up: found.up,
        bridge,
        mac: found.mac,
        is_bridge: found.kind == Some(rtnetlink::packet_route::link::InfoKind::Bridge),
    }))
}

/// The names of the links attached to bridge `bridge`; none when there is
/// no such bridge.
pub async fn bridge_ports(nl: &Netlink, bridge: &str) -> Result<Vec<String>, Error> {
    let links = link::all(nl.handle()).await?;
    let Some(index) = links.iter().find(|l| l.name == bridge).map(|l| l.index) else {
        return Ok(Vec::new());
    };
    Ok(links
        .into_iter()
        .filter(|l| l.controller == Some(index))
        .map(|l| l.name)
        .collect())
}

/// An IPv4 address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
}

/// Every IPv4 address in the network namespace `netns`, through a socket
/// opened there and closed again before returning. Must be called on a
/// tokio runtime.
pub async fn addresses_in(netns: BorrowedFd<'_>) -> Result<Vec<InterfaceAddress>, Error> {
    let socket = socket_in(netns).await?;
    with_connection(socket, |handle| async move {
        // One after the other: a socket runs one dump at a time.
        let links = link::all(&handle).await?;
        let addresses = address::ipv4_all(&handle).await?;
        Ok(addresses
            .into_iter()
            .map(|a| InterfaceAddress {
                interface: links
                    .iter()
                    .find(|l| l.index == a.index)
                    .map_or_else(|| format!("#{}", a.index), |l| l.name.clone()),
                address: a.addr,
                prefix_len: a.prefix_len,
            })
            .collect())
    })
    .await
}
