//! A container's network decided as a plain value before anything is
//! changed: the bridge and its sysctls, the lease, the veth pair with its
//! names and MAC, the address and route inside, and every nftables element
//! with its owner. `plan` is a pure function of what was asked and a
//! `Snapshot` of what is taken, so tests compare plans and `run --dry-run`
//! prints one (see `render`) without touching the system.
//!
//! `snapshot` reads what is taken (read-only); `apply` is the one step that
//! changes the kernel for a container and the one place a port or address
//! held by a dead supervisor is reclaimed and the plan made again.
//!
//! The run path takes its lease and host ports first (the lease directory
//! and bound sockets arbitrate them atomically), so its snapshot is what it
//! already holds and its plan has no conflicts to find; the kernel's refusal
//! of an existing element (NLM_F_EXCL) is the last word, never a read here.

pub mod apply;
pub mod families;
mod render;
pub mod snapshot;

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::firewall::{Owned, Publication, Target};
use crate::netlink::sysctl::Setting;
use crate::netlink::{ContainerLink, mac_for};
use crate::network::host_ifname;
use crate::values::{
    Generation, HostIp, Owner, Port, PortMapping, PortTaken, Protocol, Subnet, Subnet6,
};

pub use families::{NeedsIpv6, per_family};
pub use snapshot::{Leased, Snapshot};

pub use crate::netlink::PEER;

/// What a container's network is to be, asked for by `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub owner: Owner,
    pub bridge: String,
    pub subnet: Subnet,
    /// `--ip`, or the address already leased; None: the next free one.
    pub address: Option<Ipv4Addr>,
    /// With `--ipv6`, the network's IPv6 subnet.
    pub subnet6: Option<Subnet6>,
    /// `--ip6`; None: derived from the IPv4 address.
    pub address6: Option<Ipv6Addr>,
    pub mappings: Vec<PortMapping>,
}

/// Everything one container's network is made of, in the order applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    pub network: NetworkPart,
    pub container: ContainerPart,
}

/// What every container of a network shares: made once, left in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPart {
    pub bridge: String,
    pub subnet: Subnet,
    /// Dual stack: the bridge holds this subnet's gateway too.
    pub subnet6: Option<Subnet6>,
    /// Whether the supervisor's tables are to be loaded (nft/supervisor.nft).
    pub load_base: bool,
    /// Whether the bridge is to be created (with the gateway's address).
    pub create_bridge: bool,
    pub sysctls: Vec<Setting>,
}

/// What is the container's alone: gone with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPart {
    /// The address leased (and inside, on `ifname`).
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// The host end of the veth pair, on the bridge.
    pub host_ifname: String,
    /// The container's end, made inside its namespace: `PEER` for `run`,
    /// the engine's `CNI_IFNAME` for a CNI attachment.
    pub ifname: String,
    /// `ifname`'s MAC, derived from the address (see `netlink::mac_for`).
    pub mac: [u8; 6],
    /// Its IPv6 address (also on `ifname`) and the network's subnet6, on a
    /// dual-stack network; None: IPv6 off on `ifname`.
    pub ipv6: Option<(Ipv6Addr, Subnet6)>,
    /// Its elements: the guards and one per published port, with owner.
    pub publication: Publication,
}

impl ContainerPart {
    /// The netlink part: the veth pair onto the bridge of `bridge_index`
    /// (whose MAC is `bridge_mac`), and the address and routes inside.
    pub fn link(
        &self,
        bridge_index: u32,
        bridge_mac: Option<[u8; 6]>,
        subnet: Subnet,
    ) -> ContainerLink {
        ContainerLink {
            host_ifname: self.host_ifname.clone(),
            peer: self.ifname.clone(),
            bridge_index,
            bridge_mac,
            address: self.address,
            subnet,
            ipv6: self.ipv6,
            routed: self.publication.routed,
        }
    }
}

/// Why a plan cannot be made: something it needs is taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("address {addr} is taken by {holder}")]
    AddressTaken { addr: Ipv4Addr, holder: String },
    #[error("IPv6 address {addr} is taken by {holder}")]
    Address6Taken { addr: Ipv6Addr, holder: String },
    #[error("the host number of {addr} does not fit in {subnet6}")]
    NotDerivable { addr: Ipv4Addr, subnet6: Subnet6 },
    #[error("no free address left in {0}")]
    NoFreeAddress(Subnet),
    #[error(transparent)]
    PortTaken(PortTaken),
    #[error("no free host port left for {0}")]
    NoFreePort(Protocol),
}

/// Every port of the ephemeral range is published already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFreePort(pub Protocol);

/// The plan for `request` given what `snapshot` says is taken.
pub fn plan(request: &Request, snapshot: &Snapshot) -> Result<NetworkPlan, Conflict> {
    let network = network_part(&request.bridge, request.subnet, request.subnet6, snapshot);
    let address = address(request, snapshot)?;
    let ipv6 = match request.subnet6 {
        Some(subnet6) => Some((address6(request, subnet6, address, snapshot)?, subnet6)),
        None => None,
    };
    let ports =
        ports(&request.mappings, snapshot).map_err(|NoFreePort(p)| Conflict::NoFreePort(p))?;
    let container = container_part(
        &request.owner,
        request.subnet,
        address,
        ipv6,
        ports,
        snapshot.generation,
    );
    check_elements(&container.publication, snapshot)?;
    Ok(NetworkPlan { network, container })
}

/// The network's part: the bridge, its sysctls, and the tables when the
/// snapshot found them missing; IPv6 forwarding when it is dual stack.
pub fn network_part(
    bridge: &str,
    subnet: Subnet,
    subnet6: Option<Subnet6>,
    snapshot: &Snapshot,
) -> NetworkPart {
    let mut sysctls = vec![Setting::ip_forward(), Setting::route_localnet(bridge)];
    if subnet6.is_some() {
        sysctls.push(Setting::ipv6_forwarding());
    }
    NetworkPart {
        bridge: bridge.to_string(),
        subnet,
        subnet6,
        load_base: !snapshot.base_loaded,
        create_bridge: !snapshot.bridge_exists,
        sysctls,
    }
}

/// The container's part, once its addresses, host ports and generation
/// are decided; its interface inside is `PEER` (a CNI attachment names its
/// own).
pub fn container_part(
    owner: &Owner,
    subnet: Subnet,
    address: Ipv4Addr,
    ipv6: Option<(Ipv6Addr, Subnet6)>,
    ports: Vec<Port>,
    generation: Option<Generation>,
) -> ContainerPart {
    let host_ifname = host_ifname(&owner.id);
    ContainerPart {
        address,
        prefix_len: subnet.prefix_len(),
        gateway: subnet.gateway(),
        mac: mac_for(address),
        ipv6,
        publication: Publication {
            owner: owner.clone(),
            address,
            address6: ipv6.map(|(address6, _)| address6),
            veth: host_ifname.clone(),
            ports,
            generation,
            routed: false,
        },
        host_ifname,
        ifname: PEER.to_string(),
    }
}

/// The address asked for when it is free, else the next free one after
/// the last handed out (round robin); as `ipam::Pool::lease` decides, a
/// dead supervisor's lease is taken over when it is the one asked for, or
/// when no address is free.
fn address(request: &Request, snapshot: &Snapshot) -> Result<Ipv4Addr, Conflict> {
    let leased = |addr: Ipv4Addr| snapshot.leases.iter().find(|l| l.addr == addr);
    if let Some(addr) = request.address {
        return match leased(addr) {
            Some(lease) if lease.live => Err(Conflict::AddressTaken {
                addr,
                holder: lease.holder.clone(),
            }),
            _ => Ok(addr),
        };
    }
    let subnet = request.subnet;
    // An address whose derived IPv6 address another container pinned is
    // skipped, as `ipam` skips it.
    let usable = |addr: &Ipv4Addr| match request.subnet6.filter(|_| request.address6.is_none()) {
        Some(subnet6) => subnet6.derive(subnet, *addr).is_some_and(|addr6| {
            !snapshot
                .leases
                .iter()
                .any(|l| l.live && l.addr != *addr && l.addr6 == Some(addr6))
        }),
        None => true,
    };
    let mut addresses = subnet
        .container_addresses_after(snapshot.last_handed_out)
        .filter(usable);
    addresses
        .clone()
        .find(|addr| leased(*addr).is_none())
        .or_else(|| addresses.find(|addr| leased(*addr).is_some_and(|l| !l.live)))
        .ok_or(Conflict::NoFreeAddress(subnet))
}

/// The IPv6 address asked for, else the one derived from `address`, as
/// `ipam::Pool::lease` decides: a live holder's is a conflict.
fn address6(
    request: &Request,
    subnet6: Subnet6,
    address: Ipv4Addr,
    snapshot: &Snapshot,
) -> Result<Ipv6Addr, Conflict> {
    let addr = match request.address6 {
        Some(addr) => addr,
        None => subnet6
            .derive(request.subnet, address)
            .ok_or(Conflict::NotDerivable {
                addr: address,
                subnet6,
            })?,
    };
    match snapshot
        .leases
        .iter()
        .find(|l| l.live && l.addr6 == Some(addr) && l.addr != address)
    {
        Some(lease) => Err(Conflict::Address6Taken {
            addr,
            holder: lease.holder.clone(),
        }),
        None => Ok(addr),
    }
}

/// Every host port decided: given ones as they are, missing ones from the
/// ephemeral range, the first not published at or after the snapshot's
/// starting point (random in a real snapshot, so racing dry runs differ),
/// or from their own range, the first not published; one mapping split per
/// family gets one port for both (as `reserve` gives it).
pub fn ports(mappings: &[PortMapping], snapshot: &Snapshot) -> Result<Vec<Port>, NoFreePort> {
    let (low, high) = snapshot.ephemeral;
    let mut taken: Vec<(Protocol, u16)> = snapshot
        .published
        .iter()
        .filter_map(|e| Some((protocol_of(e.target)?, host_port_of(&e.key)?)))
        .collect();
    taken.extend(
        mappings
            .iter()
            .filter_map(|m| Some((m.protocol, m.host_port?))),
    );
    let span = u64::from(high.saturating_sub(low)) + 1;
    let mut decided: Vec<Port> = Vec::with_capacity(mappings.len());
    for (i, m) in mappings.iter().enumerate() {
        // The IPv6 half of a mapping split per family: the IPv4 half's port.
        let twin = i
            .checked_sub(1)
            .filter(|&j| mappings[j].is_split_pair(m))
            .map(|j| decided[j].host_port);
        let host_port = match (m.host_port, m.host_range, twin) {
            (Some(port), _, _) | (None, _, Some(port)) => port,
            (None, Some((first, last)), None) => {
                // Every one published: its first, which `check_elements`
                // then refuses naming the holder.
                let port = (first..=last)
                    .find(|p| !taken.contains(&(m.protocol, *p)))
                    .unwrap_or(first);
                taken.push((m.protocol, port));
                port
            }
            (None, None, None) => {
                let start = snapshot.pick_from % span;
                let port = (0..span)
                    .map(|i| low + ((start + i) % span) as u16)
                    .find(|p| !taken.contains(&(m.protocol, *p)))
                    .ok_or(NoFreePort(m.protocol))?;
                taken.push((m.protocol, port));
                port
            }
        };
        decided.push(Port {
            host_ip: m.host_ip.unwrap_or(HostIp::AnyV4),
            host_port,
            container_port: m.container_port,
            protocol: m.protocol,
        });
    }
    Ok(decided)
}

/// The first of `publication`'s port elements the snapshot already has,
/// named by its holder: the batch would be refused for it.
pub fn check_elements(publication: &Publication, snapshot: &Snapshot) -> Result<(), Conflict> {
    for element in publication.elements() {
        let Some(port) = element.port else { continue };
        if let Some(found) = snapshot
            .published
            .iter()
            .find(|e| e.target == element.target && e.key == element.key)
        {
            return Err(Conflict::PortTaken(PortTaken {
                port,
                holder: holder_name(found),
                owner: found.owner.clone(),
            }));
        }
    }
    Ok(())
}

/// Who holds an element, for people.
fn holder_name(found: &Owned) -> String {
    match &found.owner {
        Some(owner) => format!("container {owner}"),
        None => "another container".to_string(),
    }
}

/// The protocol of a ports map; None for the other sets.
fn protocol_of(target: Target) -> Option<Protocol> {
    match target {
        Target::Ports(p) | Target::AddrPorts(p) | Target::Ports6(p) | Target::AddrPorts6(p) => {
            Some(p)
        }
        _ => None,
    }
}

/// The host port in a ports map key: all of an `inet_service` key, the
/// second field of an `ipv4_addr . inet_service` or `ipv6_addr .
/// inet_service` one (20 bytes, the port after 16).
fn host_port_of(key: &[u8]) -> Option<u16> {
    let bytes = match key.len() {
        2 => key,
        20 => key.get(16..18)?,
        _ => key.get(4..6)?,
    };
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

#[cfg(test)]
mod tests;
