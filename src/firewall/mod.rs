//! The supervisor's nftables tables: the base ruleset from nft/, the
//! per-network elements that name each bridge and subnet, and the
//! per-container elements that publish ports and guard source addresses,
//! MACs and ARP.
//!
//! Per container only elements change, each change one batch: all of a
//! container's elements go in together or not at all, and a host port that
//! is already published fails the whole batch in the kernel (elements are
//! created exclusively), never by a read-then-write here. Every element
//! carries its owner as a comment, so a refusal can say who holds the port
//! and `nft list ruleset` shows whose each element is. Nothing here retries
//! or picks ports: what to add is decided by `plan`, and a refusal goes back
//! to `plan::apply`, which reclaims or re-plans.

mod base;
mod lock;
mod network;
mod owned;
mod plan;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::nftables::{self, Batch, Element, Mode, SetRef, Socket, Udata};
use crate::values::{Owner, PortTaken, Protocol};

pub use base::{Base, RULESET, defines, version};
pub use network::{
    GoneNetwork, PendingNetwork, interface_exists, network_elements, network_elements6,
};
pub use owned::Owned;
pub use plan::{Mac, PlannedElement, Publication, Target};

/// The name of both supervisor tables (`ip supervisor`, `bridge supervisor`).
pub const TABLE: &CStr = c"supervisor";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    PortTaken(PortTaken),
    /// A container's address has a `generations` element already: another
    /// container holds it, whose lease is not in the lease directory that
    /// gave it to this one (another state directory's, on the same bridge).
    #[error("address {address} is in use by {holder}")]
    AddressTaken {
        address: IpAddr,
        holder: String,
        owner: Option<Owner>,
    },
    #[error("no free host port left for {0}")]
    NoFreePort(Protocol),
    #[error("the base ruleset nft/supervisor.nft")]
    Ruleset(#[source] crate::ruleset::Error),
    #[error("loading the base ruleset nft/supervisor.nft")]
    Load(#[source] crate::ruleset::ApplyError),
    /// The kernel refused a bridge's unmasqueraded range as overlapping
    /// one held: one not nested in it (put there by hand, say).
    #[error(
        "noMasqueradeCidrs {ranges} of the network of bridge {bridge} overlap a range it \
         holds in no_masquerade without holding it or lying inside it"
    )]
    NoMasqueradeOverlap { bridge: String, ranges: String },
    #[error("the firewall lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Kernel(#[from] nftables::Error),
}

/// A handle on the supervisor's tables in this network namespace.
pub struct Firewall {
    socket: Socket,
    /// Element changes hold it shared, a table replacement exclusive, so a
    /// replacement never drops an element added while it ran.
    lock: lock::LockFile,
}

impl Firewall {
    /// Opens the netfilter socket; the lock lives in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Firewall, Error> {
        Ok(Firewall {
            socket: Socket::open()?,
            lock: lock::LockFile::new(state_dir.join("firewall.lock")),
        })
    }

    /// Another descriptor of the netfilter socket, for conntrack requests:
    /// every netfilter socket a process closes after deleting elements makes
    /// it wait for the kernel (see `close`), so the supervisor uses one.
    pub fn netfilter_socket(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.socket.duplicate()
    }

    /// Lets go of the netfilter socket without waiting for the kernel's
    /// deferred frees (see `nftables::Socket::close_detached`).
    pub fn close(self) {
        self.socket.close_detached();
    }

    /// As [`Firewall::close`], and `also` is closed by the same holder once
    /// this process has exited, after its `after_exit` work (see
    /// `nftables::Socket::close_detached_with`).
    pub fn close_with(
        self,
        also: Vec<std::os::fd::OwnedFd>,
        after_exit: Option<nftables::AfterExit>,
    ) {
        self.socket.close_detached_with(also, after_exit);
    }

    fn lock(&self, exclusive: bool) -> Result<lock::Held<'_>, Error> {
        self.lock.hold(exclusive).map_err(|source| Error::Lock {
            path: self.lock.path().to_path_buf(),
            source,
        })
    }

    /// Adds a container's elements in one batch. A host port already
    /// published by anyone fails the whole batch with `PortTaken`.
    pub fn publish(&self, publication: &Publication) -> Result<(), Error> {
        self.publish_all(std::slice::from_ref(publication))
    }

    /// Adds the elements of several containers in one batch, all or none
    /// (e.g. many containers' worth of ports at once, as `supervisor bench
    /// --scale` pre-publishes them). Each element carries its own owner.
    pub fn publish_all(&self, publications: &[Publication]) -> Result<(), Error> {
        self.publish_batch(publications, &PendingNetwork::default())
    }

    /// [`Firewall::publish`], with the elements of the container's network
    /// that [`Firewall::ensure_base_for`] left (none when its load added
    /// them) first in the same batch: one transaction, not two, on the
    /// engine's path (a batch's commit, lock and acks: about 50 us of a CNI
    /// ADD). A port taken refuses both. Any other refusal (a stale
    /// network's subnet overlapping this one, say) goes the way of
    /// [`Firewall::ensure_network`], which takes out what is stale and
    /// tries again, then the elements are published alone. Only a refusal:
    /// after any other failure (acks lost, the lock) the batch may have been
    /// committed, and publishing again would find the container's own
    /// elements and take it for the holder of its ports.
    pub fn publish_with(
        &self,
        publication: &Publication,
        network: &PendingNetwork,
    ) -> Result<(), Error> {
        let publications = std::slice::from_ref(publication);
        match self.publish_batch(publications, network) {
            Err(err @ (Error::PortTaken(_) | Error::AddressTaken { .. })) => Err(err),
            Err(Error::Kernel(nftables::Error::Refused(_))) if !network.is_empty() => {
                network.ensure(self)?;
                self.publish_all(publications)
            }
            other => other,
        }
    }

    fn publish_batch(
        &self,
        publications: &[Publication],
        network: &PendingNetwork,
    ) -> Result<(), Error> {
        // Unlabelled: an element's label (as nft prints it) is for a
        // refusal's message, and formatting them cost a tenth of the batch
        // (perf); a refusal gets them then (see `labelled`).
        let planned: Vec<(CString, plan::PlannedElement)> = publications
            .iter()
            .flat_map(|p| {
                let comment = CString::new(p.owner.comment()).unwrap_or_default();
                p.unlabelled_elements()
                    .into_iter()
                    .map(move |e| (comment.clone(), e))
            })
            .collect();
        let mut batch = Batch::new();
        for (target, elements) in network.elements() {
            batch.add_elements(&set_ref(*target), elements, Mode::Add)?;
        }
        // Each batch item of ours, and where its element is in `planned`.
        let mut items: Vec<(usize, usize)> = Vec::new();
        let indices: Vec<usize> = (0..planned.len()).collect();
        for (target, group) in grouped(&indices, |&i| planned[i].1.target) {
            let elements: Vec<Element> = group
                .iter()
                .map(|&&i| {
                    let (comment, e) = &planned[i];
                    let mut element = match &e.data {
                        Some(data) => Element::with_data(e.key.clone(), data.clone()),
                        None => Element::new(e.key.clone()),
                    };
                    element.udata = Some(Udata::comment(comment));
                    element
                })
                .collect();
            let range = batch.add_elements(&set_ref(target), &elements, Mode::Create)?;
            items.extend(range.zip(group.into_iter().copied()));
        }
        let _lock = self.lock(false)?;
        match self.socket.send(batch) {
            Ok(()) => Ok(()),
            Err(nftables::Error::Refused(mut refusals)) => {
                let planned_of = |item: Option<usize>| {
                    let item = item?;
                    items.iter().find(|(i, _)| *i == item).map(|&(_, at)| at)
                };
                let taken = refusals.iter().find_map(|r| {
                    let e = &planned[planned_of(r.item)?].1;
                    (r.errno == Errno::EEXIST)
                        .then_some(e)?
                        .port
                        .map(|p| (e, p))
                });
                if let Some((e, port)) = taken {
                    let (holder, owner) = self.holder(e.target, &e.key);
                    return Err(Error::PortTaken(PortTaken {
                        port,
                        holder,
                        owner,
                    }));
                }
                // An address is keyed alone in `generations`: held there,
                // it is another container's.
                let held = refusals.iter().find_map(|r| {
                    let e = &planned[planned_of(r.item)?].1;
                    let address = match (e.target, e.key.len()) {
                        (Target::Generations, 4) => {
                            IpAddr::from(<[u8; 4]>::try_from(&e.key[..]).ok()?)
                        }
                        (Target::Generations6, 16) => {
                            IpAddr::from(<[u8; 16]>::try_from(&e.key[..]).ok()?)
                        }
                        _ => return None,
                    };
                    (r.errno == Errno::EEXIST).then_some((e, address))
                });
                if let Some((e, address)) = held {
                    let (holder, owner) = self.holder(e.target, &e.key);
                    return Err(Error::AddressTaken {
                        address,
                        holder,
                        owner,
                    });
                }
                let labelled = labelled(publications);
                for refusal in &mut refusals {
                    if let Some(e) = planned_of(refusal.item).and_then(|at| labelled.get(at)) {
                        refusal.what = format!("{}: {}", refusal.what, e.label);
                    }
                }
                Err(nftables::Error::Refused(refusals).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a container's elements: its ports and generation, then its
    /// generation's `live` element (see [`Firewall::unlive`]), then its
    /// anti-spoofing elements (see [`Firewall::unguard`]), going on past a
    /// failure.
    /// Elements already gone (a `gc` got there first) are not an error.
    pub fn unpublish(&self, publication: &Publication) -> Result<(), Error> {
        let ports = self.unpublish_ports(publication);
        let live = self.unlive(publication);
        let guards = self.unguard(publication);
        ports.and(live).and(guards)
    }

    /// Removes a container's published ports and its generation (the
    /// `generations` map's elements: no new connection is marked with it),
    /// in one batch.
    pub fn unpublish_ports(&self, publication: &Publication) -> Result<(), Error> {
        self.destroy(publication, |target| {
            !target.is_guard() && !target.is_live()
        })
    }

    /// Removes a container's `live` elements, in a batch after its ports',
    /// never with them: a SYN from another container reaching it through
    /// the host (a hairpin) and marked with its generation just before its
    /// ports went is reset by its kernel just after, and that reset, going
    /// back into a bridge, passes the generation chain only while the
    /// generation is live (it was dropped there, kfree_skb reason
    /// NETFILTER_DROP: the client waited a second). Must be done before the
    /// address is given back: until then no other container can hold the
    /// address, so a flow of the old generation still passing can only
    /// reach the stopping container; after, the next holder would get it.
    pub fn unlive(&self, publication: &Publication) -> Result<(), Error> {
        self.destroy(publication, Target::is_live)
    }

    /// Removes a container's anti-spoofing elements, in a batch after its
    /// ports', never with them: a SYN DNATed to the container just before
    /// its ports went is answered by its kernel (a reset, its listener
    /// gone) just after, and with the guards gone by then the bridge drops
    /// that reset (kfree_skb reason NETFILTER_DROP in nft_do_chain): the
    /// client's SYN is lost, and it waits a second to send it again. The
    /// SYN and its reset take one pass of the kernel's receive work, a few
    /// microseconds; the later the guards go, the surer the pass is over
    /// (`run` gives the address back in between).
    pub fn unguard(&self, publication: &Publication) -> Result<(), Error> {
        self.destroy(publication, Target::is_guard)
    }

    /// Removes the elements of `publication` in the targets `which` takes,
    /// in one batch.
    fn destroy(&self, publication: &Publication, which: fn(Target) -> bool) -> Result<(), Error> {
        let planned = publication.unlabelled_elements();
        let mut batch = Batch::new();
        for (target, group) in grouped(&planned, |e| e.target) {
            if !which(target) {
                continue;
            }
            let elements: Vec<Element> =
                group.iter().map(|e| Element::new(e.key.clone())).collect();
            batch.destroy_elements(&set_ref(target), &elements)?;
        }
        if batch.is_empty() {
            return Ok(());
        }
        let _lock = self.lock(false)?;
        self.socket.send(batch)?;
        Ok(())
    }

    /// Who holds an element, from its comment as the publishing supervisor
    /// wrote it: for people, and the owner when the comment is ours.
    fn holder(&self, target: Target, key: &[u8]) -> (String, Option<Owner>) {
        let unknown = || ("another container".to_string(), None);
        let Ok(elements) = self.socket.elements(&set_ref(target)) else {
            return unknown();
        };
        elements
            .into_iter()
            .find(|e| e.key == key)
            .and_then(|e| e.udata?.comment_text())
            .map(|comment| match Owner::from_comment(&comment) {
                Some(owner) => (format!("container {owner}"), Some(owner)),
                None => (format!("\"{comment}\""), None),
            })
            .unwrap_or_else(unknown)
    }
}

/// Planned elements grouped by target, in a fixed order: one element
/// message per set.
/// The elements of `publications`, labelled, in the order of
/// `Publication::unlabelled_elements`.
fn labelled(publications: &[Publication]) -> Vec<plan::PlannedElement> {
    publications
        .iter()
        .flat_map(Publication::elements)
        .collect()
}

fn grouped<T>(planned: &[T], target: impl Fn(&T) -> Target) -> BTreeMap<Target, Vec<&T>> {
    let mut groups: BTreeMap<Target, Vec<&T>> = BTreeMap::new();
    for e in planned {
        groups.entry(target(e)).or_default().push(e);
    }
    groups
}

pub(crate) fn set_ref(target: Target) -> SetRef {
    SetRef {
        family: target.family(),
        table: TABLE.to_owned(),
        name: CString::new(target.name()).unwrap_or_default(),
        id: None,
        is_map: target.is_map(),
    }
}
