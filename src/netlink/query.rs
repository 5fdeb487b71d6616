//! Read-only views of links and addresses, for `inspect` and `gc`.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::netns::{socket_in, with_connection};
use rtnetlink::packet_route::link::InfoKind;

use super::routed::HOST_MAC;
use super::{Error, Netlink, address, link, route};
use crate::values::Subnet;

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
    let Some(found) = link::by_name(nl.handle()?, name).await? else {
        return Ok(None);
    };
    let bridge = match found.controller {
        Some(index) => link::by_index(nl.handle()?, index).await?.map(|b| b.name),
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

/// The hardware address of link `name`, None when there is no such link.
/// A lookup without RTNL or a round trip (see `Direct::index_of`): CNI
/// ADD's answer names the host end's MAC.
pub fn hardware_address(name: &str) -> Result<Option<Vec<u8>>, Error> {
    match super::direct::Direct::hardware_address_of(name) {
        Ok(mac) => Ok(Some(mac)),
        Err(err) if err.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(err) => Err(Error::Request {
            action: "reading the hardware address of",
            object: name.to_string(),
            source: err,
        }),
    }
}

/// Whether link `name` bears the mark of a bridge `run` or the main CNI
/// plugin made: its MAC is the one they give it, 02:42 and the four bytes
/// of its gateway address (see `mac_for`), and it holds that address. The
/// mark is on the link, so every state directory sees it, where a lease
/// directory is one state directory's alone; a bridge made by others
/// (the reference plugin's, whose MAC is the kernel's random one or its
/// first port's) has it not. False when there is no such link.
/// Two requests on a socket of its own: an ioctl and one address dump.
pub fn made_as_ours(name: &str) -> Result<bool, Error> {
    let mac = match hardware_address(name)? {
        Some(mac) => mac,
        None => return Ok(false),
    };
    let [0x02, 0x42, a, b, c, d] = mac[..] else {
        return Ok(false);
    };
    let gateway = IpAddr::from([a, b, c, d]);
    let mut direct = super::direct::Direct::open().map_err(Error::Socket)?;
    let index = match direct.index_of(name) {
        Ok(index) => index,
        Err(err) if err.raw_os_error() == Some(libc::ENODEV) => return Ok(false),
        Err(err) => return Err(Error::direct("looking up link", name)(err)),
    };
    Ok(address::on_link(&mut direct, index, false)?
        .iter()
        .any(|found| found.index == index && found.addr == gateway))
}

/// How long a container's veth may outlive it: the kernel deletes the pair
/// with the container's network namespace, milliseconds after the exit
/// (more under load; a namespace's last reference can be a socket freed
/// after an RCU grace period, so no kernel state tells the dying from the
/// live before that).
const DYING_GRACE: Duration = Duration::from_millis(500);

/// The names of the links of bridge `bridge`'s network: its ports (bridge
/// mode), and the host ends of its routed containers (CNI routed mode),
/// which are on no bridge: a veth with the routed host end's MAC
/// ([`HOST_MAC`]) that a routed container's route of the bridge's subnet
/// goes out of (`X/32 scope link src GATEWAY`, see `routed::host_route`),
/// the gateway being an address the bridge holds. The MAC says the link
/// is a routed host end, the route whose network it serves: another
/// network's (another state directory's) is not listed. None when there
/// is no such bridge.
///
/// `check` and `gc` judge what no live container explains (`explained`):
/// a container that just ended leaves its veth for a few milliseconds, no
/// one's leftover, so while any link is unexplained the scan is repeated
/// until it is gone or DYING_GRACE has passed. A veth whose peer's
/// namespace id the kernel has already taken back (-1) is being deleted
/// and left out at once.
pub async fn container_links(
    nl: &Netlink,
    bridge: &str,
    explained: impl Fn(&str) -> bool,
) -> Result<Vec<String>, Error> {
    let deadline = Instant::now() + DYING_GRACE;
    loop {
        let links = scan_links(nl, bridge).await?;
        if links.iter().all(|p| explained(p)) || Instant::now() >= deadline {
            return Ok(links);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn scan_links(nl: &Netlink, bridge: &str) -> Result<Vec<String>, Error> {
    let links = link::all(nl.handle()?).await?;
    let Some(index) = links.iter().find(|l| l.name == bridge).map(|l| l.index) else {
        return Ok(Vec::new());
    };
    let (ports, others): (Vec<link::Link>, Vec<link::Link>) = links
        .into_iter()
        .filter(|l| l.peer_netns.is_none_or(|id| id >= 0))
        .partition(|l| l.controller == Some(index));
    let routed: Vec<link::Link> = others
        .into_iter()
        .filter(|l| {
            l.controller.is_none() && l.kind == Some(InfoKind::Veth) && l.mac[..] == HOST_MAC
        })
        .collect();
    let mut names: Vec<String> = ports.into_iter().map(|l| l.name).collect();
    if routed.is_empty() {
        return Ok(names);
    }
    let mut direct = nl.direct();
    let subnets: Vec<Subnet> = address::on_link(&mut direct, index, false)?
        .iter()
        .filter_map(|a| served_subnet(a.addr, a.prefix_len))
        .collect();
    let routes = route::from_dump(direct.ask(route::dump_request(false), true))?;
    drop(direct);
    let served = |l: &link::Link| {
        routes.iter().any(|r| {
            route::destination_and_oif(r).1 == Some(l.index)
                && subnets.iter().any(|&s| route::is_routed_container(r, s))
        })
    };
    names.extend(routed.into_iter().filter(served).map(|l| l.name));
    Ok(names)
}

/// The subnet whose gateway a bridge's address `addr/prefix_len` is, if
/// it is one.
fn served_subnet(addr: IpAddr, prefix_len: u8) -> Option<Subnet> {
    let IpAddr::V4(addr) = addr else {
        return None;
    };
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0);
    let network = std::net::Ipv4Addr::from(addr.to_bits() & mask);
    Subnet::new(network, prefix_len)
        .ok()
        .filter(|s| s.gateway() == addr)
}

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
}

/// Every IPv4 and IPv6 address in the network namespace `netns`, through a socket
/// opened there and closed again before returning. Must be called on a
/// tokio runtime.
pub async fn addresses_in(netns: BorrowedFd<'_>) -> Result<Vec<InterfaceAddress>, Error> {
    let socket = socket_in(netns).await?;
    with_connection(socket, |handle| async move {
        // One after the other: a socket runs one dump at a time.
        let links = link::all(&handle).await?;
        let addresses = address::all(&handle, true).await?;
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
