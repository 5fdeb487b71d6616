//! A container's bridge network as `run` uses it: the address lease, the
//! host's bridge and sysctls, the plumbing into the container's namespace,
//! and the address given back at the end. Composes `ipam` and `netlink`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::path::Path;

use crate::ipam::{self, Holder, Lease, Pool};
use crate::milestones::{timed, timed_async};
use crate::netlink::sysctl::Setting;
use crate::netlink::{self, Bridge, ContainerLink, Netlink, Plumbed, PreparedNetns};
use crate::spawn::Container;
use crate::values::{Subnet, Subnet6};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Lease(#[from] ipam::Error),
    #[error(transparent)]
    Netlink(#[from] netlink::Error),
    #[error("opening the container's network namespace")]
    Netns(#[source] io::Error),
    #[error(
        "bridge {bridge} has {BRIDGE_MAX_PORTS} ports already, the most a Linux bridge \
         takes: put more containers on another bridge (another network)"
    )]
    BridgeFull { bridge: String },
}

/// The ports a Linux bridge takes (net/bridge/br_private.h: BR_MAX_PORTS
/// 1024, port numbers from 1): one more is refused EXFULL.
const BRIDGE_MAX_PORTS: u32 = 1023;

/// Why no bridge can be named `name`, if none can: the kernel would
/// refuse it for an interface, or it cannot name the bridge's lease
/// directory. Every use of a bridge name refuses such a name alike.
pub fn bridge_name_problem(name: &str) -> Option<&'static str> {
    netlink::ifname_problem(name).or_else(|| ipam::lease_dir_problem(name))
}

/// Why no bridge may be made or joined under `name`, if none may: what
/// `bridge_name_problem` says, or the host links' prefix. Asked by what
/// makes an attachment (`run`, CNI ADD) only: a container whose host link
/// it named would take the bridge for its own leftover link and delete it,
/// and the firewall's guards match every "sv-*" link as a container's. A
/// DEL or `gc` on such a bridge, made before the prefix was refused, still
/// cleans up.
pub fn new_bridge_name_problem(name: &str) -> Option<&'static str> {
    bridge_name_problem(name).or_else(|| {
        name.starts_with(HOST_LINK_PREFIX)
            .then_some("starts with \"sv-\", which names the containers' host links")
    })
}

/// What every container's host link is named with (see `host_ifname`).
const HOST_LINK_PREFIX: &str = "sv-";

/// The host end of a container's veth: "sv-" and the start of its id, within
/// the kernel's 15 bytes. nft/supervisor.nft's spoof guard matches "sv-*".
pub fn host_ifname(container_id: &str) -> String {
    let id: String = container_id.chars().take(12).collect();
    format!("{HOST_LINK_PREFIX}{id}")
}

/// The network of one container, between `prepare` and `release`.
#[derive(Debug)]
pub struct Attachment {
    nl: Netlink,
    link: ContainerLink,
    /// Before `lease`: fields drop in order, and the entries go before
    /// the address.
    neighbours: Neighbours,
    lease: Lease,
    /// The container's network namespace, held from plumbing until
    /// `release`: see `plumb`.
    netns: Option<OwnedFd>,
    /// The host end of the pair, once plumbed: see `removal`.
    host_index: Option<u32>,
    /// Whether `prepare` made the bridge (see `netlink::ensure_bridge_made`).
    made_bridge: bool,
    /// For naming it when it is full (see `Error::BridgeFull`).
    bridge: String,
}

/// Makes sure the bridge is there, then takes the address lease (`ip`, or
/// the lowest free; on a dual-stack bridge with the IPv6 address `ip6` or
/// the derived one) for `holder`, and sets `sysctls` (see
/// `plan::network_part`). The bridge comes first so a name that is no
/// bridge leaves no lease directory behind; a taken address is refused
/// after clone3, which the run path polls first, and its child is then
/// ended before it runs anything.
///
/// `routed`: a CNI attachment in routed mode (see `netlink::routed`); the
/// bridge then only holds the gateway's address, and the lease is refused
/// while the bridge serves bridge-mode containers (see `ipam::Pool::with_routed`).
pub async fn prepare(
    bridge: &Bridge,
    ip: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
    state_dir: &Path,
    holder: &Holder,
    sysctls: &[Setting],
    routed: bool,
) -> Result<Attachment, Error> {
    // The bridge first: a name that is no bridge (`lo`) is refused before
    // its lease directory is made.
    let nl = Netlink::connect()?;
    let ensured = if routed {
        timed_async("bridge", netlink::ensure_bridge_routed(&nl, bridge)).await?
    } else {
        timed_async("bridge", netlink::ensure_bridge_made(&nl, bridge)).await?
    };
    let pool = Pool::new(state_dir, &bridge.name, bridge.subnet)?
        .with_subnet6(bridge.subnet6)
        .with_routed(routed);
    let lease = timed("lease", || pool.lease(ip, ip6, holder))?;
    if routed {
        // Dropped on failure, the lease is given back.
        netlink::check_routed_address(&nl, bridge, ensured.index, lease.addr()).await?;
    }
    timed("sysctls", || {
        sysctls.iter().try_for_each(|s| s.apply_on_host().map(drop))
    })?;
    let link = ContainerLink {
        host_ifname: host_ifname(&holder.id),
        peer: netlink::PEER.to_string(),
        bridge_index: ensured.index,
        bridge_mac: ensured.mac,
        address: lease.addr(),
        subnet: bridge.subnet,
        ipv6: lease.addr6().zip(bridge.subnet6),
        routed,
    };
    Ok(Attachment {
        neighbours: Neighbours {
            nl: nl.clone(),
            plumbed: None,
        },
        nl,
        link,
        lease,
        netns: None,
        host_index: None,
        made_bridge: ensured.made,
        bridge: bridge.name.clone(),
    })
}

impl Attachment {
    pub fn address(&self) -> Ipv4Addr {
        self.link.address
    }

    /// The dead supervisor whose address this one took over, if any.
    pub fn reclaimed(&self) -> Option<&Holder> {
        self.lease.reclaimed()
    }

    pub fn subnet(&self) -> Subnet {
        self.link.subnet
    }

    /// The IPv6 address and subnet6, on a dual-stack bridge.
    pub fn ipv6(&self) -> Option<(Ipv6Addr, Subnet6)> {
        self.link.ipv6
    }

    /// Whether the bridge was made for this attachment: the subnets it
    /// served before, if any, are stale.
    pub fn made_bridge(&self) -> bool {
        self.made_bridge
    }

    /// The bridge's interface index, which the host end is attached to.
    pub fn bridge_index(&self) -> u32 {
        self.link.bridge_index
    }

    /// The bridge's hardware address (see `netlink::Ensured`).
    pub fn bridge_mac(&self) -> Option<[u8; 6]> {
        self.link.bridge_mac
    }

    /// Plumbs `container`, which must not be released yet, as `link` says
    /// (made from the plan, with this lease's address).
    ///
    /// Holds the container's network namespace until `release`: when the
    /// container ends, its namespace, and with it eth0 and the veth, stay
    /// until its elements are gone, so a client's SYN that they still send
    /// there is refused by the namespace's own stack rather than vanishing
    /// into a namespace the kernel is tearing down. After `release` the
    /// kernel removes the namespace, and the pair with it unless something
    /// still holds the namespace (see `removal`).
    ///
    /// `prepared`: the namespace as its own thread readied it (see
    /// `netlink::PreparedNetns`); None when clone3 made it.
    pub async fn plumb(
        &mut self,
        link: &ContainerLink,
        container: &Container,
        prepared: Option<PreparedNetns>,
    ) -> Result<Plumbed, Error> {
        let netns = OwnedFd::from(container.netns().map_err(Error::Netns)?);
        self.netns = Some(netns.try_clone().map_err(Error::Netns)?);
        self.neighbours.plumbed = Some(link.clone());
        match prepared {
            Some(prepared) => {
                let plumbed = netlink::plumb_prepared(&self.nl, link, netns, prepared)
                    .await
                    .map_err(|e| self.named(e))?;
                self.host_index = Some(plumbed.host_index);
                Ok(log_plumb(link, plumbed))
            }
            None => self.plumb_netns(link, netns).await,
        }
    }

    /// Plumbs the network namespace `netns` (closed on return) as `link`
    /// says: a spawned container's, or the one a CNI engine names.
    pub async fn plumb_netns(
        &mut self,
        link: &ContainerLink,
        netns: OwnedFd,
    ) -> Result<Plumbed, Error> {
        self.neighbours.plumbed = Some(link.clone());
        // Returns once the bridge port forwards: before the container runs
        // or anything is published to it.
        let plumbed = netlink::plumb(&self.nl, link, netns)
            .await
            .map_err(|e| self.named(e))?;
        self.host_index = Some(plumbed.host_index);
        Ok(log_plumb(link, plumbed))
    }

    /// A plumbing failure, the bridge named when it was full: the kernel
    /// says only "Exchange full" about the veth.
    fn named(&self, err: netlink::Error) -> Error {
        match err {
            netlink::Error::Request {
                action: "creating veth",
                source,
                ..
            } if source.raw_os_error() == Some(libc::EXFULL) => Error::BridgeFull {
                bridge: self.bridge.clone(),
            },
            err => Error::Netlink(err),
        }
    }

    /// Deletes the veth pair now, for when the container's network
    /// namespace outlives it (containers that joined it still run): else
    /// its address would stay there after the lease is given back. Tens of
    /// milliseconds (see netlink::remove_link), so only then.
    pub async fn unplug(&self) -> Result<(), Error> {
        Ok(netlink::remove_link(&self.nl, &self.link.host_ifname).await?)
    }

    /// The request that deletes the veth pair, by its host end's index, for
    /// the holder of our netfilter socket to send after our exit (see
    /// `nftables::AfterExit`), when something still holds the container's
    /// namespace (see `netlink::remove_if_peer_lives`); None before
    /// plumbing. The
    /// namespace's sockets can outlive the container by minutes (an
    /// orphaned TCP connection still sending), and the pair with them: its
    /// eth0 would answer for an address given back, its host end stay a
    /// port of the bridge. Deleted now, it would cost the exit 14-25 ms
    /// (RCU, measured); taken off the bridge or down, one RTNL section,
    /// which other namespaces' teardowns hold for milliseconds.
    pub fn removal(&self) -> Option<Vec<u8>> {
        self.host_index.map(netlink::removal_request)
    }

    /// The host netlink connection, for undoing a plumb whose namespace
    /// outlives this process (a CNI attachment's).
    pub fn netlink(&self) -> &Netlink {
        &self.nl
    }

    /// Keeps the lease after this process: its holder (a CNI attachment)
    /// gives it back explicitly, on DEL or GC.
    pub fn keep(mut self) {
        self.neighbours.plumbed = None;
        self.lease.keep();
    }

    /// Lets go of the container's namespace, takes out the host's
    /// neighbour entries for the container, and gives the address back.
    /// The veth is `removal`'s, off the exit path.
    pub fn release(mut self) -> Result<(), Error> {
        drop(self.netns.take());
        let forgotten = self.neighbours.forget();
        let released = self.lease.release();
        forgotten?;
        Ok(released?)
    }
}

/// The host's neighbour entries a plumbing set for the container (see
/// `netlink::forget_neighbours_on`): taken out by `release`, or when the
/// attachment goes without it (a `run` or ADD that failed after
/// plumbing), but not once its holder `keep`s it.
#[derive(Debug)]
struct Neighbours {
    nl: Netlink,
    /// What was plumbed, or began to be.
    plumbed: Option<ContainerLink>,
}

impl Neighbours {
    fn forget(&mut self) -> Result<(), netlink::Error> {
        match self.plumbed.take() {
            Some(link) => self.nl.forget_neighbours(&link).map(drop),
            None => Ok(()),
        }
    }
}

impl Drop for Neighbours {
    fn drop(&mut self) {
        if let Err(err) = self.forget() {
            tracing::warn!(
                "taking out the host's neighbour entries: {}",
                crate::error_chain::Chain(&err)
            );
        }
    }
}

/// Logs where a plumb's time went; returns what it made.
fn log_plumb(link: &ContainerLink, plumbed: Plumbed) -> Plumbed {
    let timings = plumbed.timings;
    tracing::debug!(
        address = %link.address,
        veth = %link.host_ifname,
        "plumb: {} us (veth {} us, inside {} us, host {} us)",
        timings.total.as_micros(),
        timings.veth.as_micros(),
        timings.inside.as_micros(),
        timings.host.as_micros()
    );
    plumbed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ifname_fits_the_kernel_limit() {
        assert_eq!(host_ifname("3f2a9c0b7d1e"), "sv-3f2a9c0b7d1e");
        assert_eq!(host_ifname("0123456789abcdef"), "sv-0123456789ab");
        assert!(netlink::check_ifname(&host_ifname(&"x".repeat(64))).is_ok());
    }
}
