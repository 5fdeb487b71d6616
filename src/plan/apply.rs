//! The plan made real for one container, and the one place where a port
//! or an address held by a dead supervisor is taken back: the lease (and
//! what its dead holder left) when the network is prepared, the elements in
//! one batch once the container is plumbed. On a refused element the holder
//! is asked about (`reconcile`): a dead one's remains go and the plan is
//! made again; a port we picked is picked again; a live holder is the
//! error. Bounded, so two supervisors can never chase each other forever.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{NetworkPart, Snapshot};
use crate::conntrack;
use crate::firewall::{self, Firewall, PendingNetwork, Publication};
use crate::ipam::Holder;
use crate::milestones::phase;
use crate::netlink::Bridge;
use crate::network::{self, Attachment};
use crate::reconcile;
use crate::reserve::{self, Reservations};
use crate::values::{Generation, Owner, Port, Protocol};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Firewall(#[from] firewall::Error),
    #[error(transparent)]
    Reserve(#[from] reserve::Error),
    /// The address its lease directory gave the container is another's,
    /// live: a container of another state directory on the same bridge
    /// (each state directory leases its addresses alone), or one whose
    /// lease was taken from under it.
    #[error(
        "address {address} is in use by {holder}, {}",
        if *.foreign {
            format!(
                "of another state directory than {}: two state directories lease addresses on \
                 one bridge; give each a bridge of its own",
                .state_dir.display()
            )
        } else {
            "whose lease is gone".to_string()
        }
    )]
    AddressTaken {
        address: IpAddr,
        holder: String,
        state_dir: PathBuf,
        foreign: bool,
    },
}

/// How many times the elements are planned and sent before a refusal is
/// the answer.
const ATTEMPTS: usize = 8;

/// Takes the address lease, ensures the bridge and sets `network`'s
/// sysctls (see `network::prepare`); an address taken over from a dead
/// supervisor brings the rest of what it held back too.
pub async fn lease(
    network: &NetworkPart,
    bridge: &Bridge,
    ip: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
    state_dir: &Path,
    holder: &Holder,
    routed: bool,
) -> Result<Attachment, network::Error> {
    let attachment =
        network::prepare(bridge, ip, ip6, state_dir, holder, &network.sysctls, routed).await?;
    if let Some(dead) = attachment.reclaimed() {
        reconcile::reclaimed_address(state_dir, &bridge.name, dead).await;
    }
    Ok(attachment)
}

/// Adds `publication`'s elements (a container part's) in one batch. A host port found published by a
/// dead supervisor is reclaimed, one we picked but someone else published
/// is picked again from `reservations`, and the elements planned again.
pub async fn publish(
    firewall: &Firewall,
    state_dir: &Path,
    publication: &mut Publication,
    reservations: &mut Reservations,
) -> Result<Publication, Error> {
    let none = PendingNetwork::default();
    publish_with(firewall, state_dir, publication, reservations, &none).await
}

/// [`publish`], each batch led by `network`'s elements still to add (see
/// [`Firewall::publish_with`]).
pub async fn publish_with(
    firewall: &Firewall,
    state_dir: &Path,
    publication: &mut Publication,
    reservations: &mut Reservations,
    network: &PendingNetwork,
) -> Result<Publication, Error> {
    let mut attempt = 1;
    loop {
        let taken = match firewall.publish_with(publication, network) {
            Ok(()) => return Ok(publication.clone()),
            Err(firewall::Error::PortTaken(taken)) => taken,
            Err(firewall::Error::AddressTaken {
                address,
                holder,
                owner,
            }) => {
                // A dead supervisor's elements (this state directory's)
                // go, and the same plan is tried again.
                if let Some(owner) = &owner
                    && attempt < ATTEMPTS
                    && reconcile::reclaim_port(state_dir, owner).await
                {
                    attempt += 1;
                    continue;
                }
                let foreign = owner.is_none_or(|owner| !reconcile::knows(state_dir, &owner));
                return Err(Error::AddressTaken {
                    address,
                    holder,
                    state_dir: state_dir.to_path_buf(),
                    foreign,
                });
            }
            Err(err) => return Err(err.into()),
        };
        if attempt == ATTEMPTS {
            return Err(firewall::Error::PortTaken(taken).into());
        }
        attempt += 1;
        match &taken.owner {
            // The port is free again: the same ports are tried again. A
            // CNI ADD has no reservations to rebuild them from.
            Some(holder) if reconcile::reclaim_port(state_dir, holder).await => {}
            _ => {
                if !reservations.repick(taken.port.protocol, taken.port.host_port)? {
                    return Err(firewall::Error::PortTaken(taken).into());
                }
                publication.ports = ports(reservations)?;
            }
        }
    }
}

/// The reserved host ports, every one decided, as the plan's ports.
pub fn ports(reservations: &Reservations) -> Result<Vec<Port>, firewall::Error> {
    super::ports(&reservations.mappings(), &Snapshot::default())
        .map_err(|super::NoFreePort(protocol)| firewall::Error::NoFreePort(protocol))
}

/// Publishes `mappings` for a container at `address` behind `veth`,
/// picking each missing host port among the ephemeral ports not published
/// yet (a snapshot of the port maps, then one batch). Without the bound
/// sockets of `run`'s reservations: for tests and tools.
pub fn publish_mappings(
    firewall: &Firewall,
    owner: &Owner,
    address: Ipv4Addr,
    veth: &str,
    mappings: &[crate::values::PortMapping],
) -> Result<Publication, firewall::Error> {
    let snapshot = Snapshot::published(firewall)?;
    let ports = super::ports(mappings, &snapshot)
        .map_err(|super::NoFreePort(protocol)| firewall::Error::NoFreePort(protocol))?;
    let publication = Publication {
        owner: owner.clone(),
        address,
        address6: None,
        veth: veth.to_string(),
        ports,
        generation: Some(Generation::random()),
        routed: false,
    };
    firewall.publish(&publication)?;
    Ok(publication)
}

/// Deletes the conntrack entries of the publication's UDP ports: those
/// DNATed to `address`, or all of them when None.
///
/// NAT is decided when an entry is created, and a UDP client that keeps
/// sending keeps its entry: one made before the port was published bypasses
/// the DNAT, one made for a container that is gone keeps pointing at it.
/// TCP clients open new connections, so their entries are left to expire.
/// Only UDP: a dual-stack container's entries, or all of a port's, still
/// take a dump, which walks the whole conntrack hash table (about 10 ms on
/// a host with 24 GiB); an IPv4 container's go by flushes the kernel
/// filters itself.
pub fn forget_udp(
    firewall: &Firewall,
    publication: &Publication,
    address: Option<Ipv4Addr>,
) -> Result<(), conntrack::Error> {
    forget(firewall, publication, address, |p| p == Protocol::Udp)
}

fn forget(
    firewall: &Firewall,
    publication: &Publication,
    address: Option<Ipv4Addr>,
    which: impl Fn(Protocol) -> bool,
) -> Result<(), conntrack::Error> {
    let t = Instant::now();
    let ports: Vec<_> = publication
        .ports
        .iter()
        .filter(|p| which(p.protocol))
        .map(|p| (p.protocol, p.host_port))
        .collect();
    if ports.is_empty() {
        return Ok(());
    }
    // The container's IPv6 address too: its ports may be published on both.
    let targets: Option<Vec<std::net::IpAddr>> = address.map(|a| {
        std::iter::once(a.into())
            .chain(publication.address6.map(Into::into))
            .collect()
    });
    let forgotten = firewall
        .netfilter_socket()
        .map_err(conntrack::Error::Socket)
        .and_then(|socket| conntrack::forget_with(socket, &ports, targets.as_deref()));
    phase("conntrack", t);
    forgotten.map(drop)
}
