//! Crash recovery: what a dead supervisor held goes back.
//!
//! A supervisor killed with SIGKILL leaves its record, its lease and its
//! firewall elements, and sometimes its host veth (its container dies with
//! it: PR_SET_PDEATHSIG, and the veth with the container's namespace). A
//! record whose supervisor is dead is stale, and what it held is nobody's:
//! `gc` gives it all back, and `run` gives back whatever is in its way (a
//! name when it registers; an address or a port through `plan::apply`, the
//! one place that asks here) before going on. `supervisor check` reports
//! the same remains without removing them.
//!
//! Ownership is decided by ids and process identities, never by timing: a
//! lease names its holder's id and supervisor; a link is `sv-` and its
//! container's id; an element's comment is `NAME ID`. A lease is given back
//! when its supervisor is dead; a link or an element when no live record
//! has its id. A run writes its record before it creates anything and
//! removes it after everything else, and `gc` holds the records lock while
//! it lists links and elements and deletes the unexplained ones, so it
//! never takes a starting container's.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::etc_files::{self, EtcFiles};
use crate::firewall::{self, Firewall, GoneNetwork, Owned, Owner};
use crate::ipam::{self, Holder, Kept, LeaseDir, Pool, Swept};
use crate::netlink::{self, Netlink};
use crate::network::host_ifname;
use crate::state::{self, Entry, Record, Registration, Store, file};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] state::Error),
    #[error(transparent)]
    Lease(#[from] ipam::Error),
    #[error(transparent)]
    Netlink(#[from] netlink::Error),
    #[error(transparent)]
    Firewall(#[from] firewall::Error),
}

/// One thing given back, as `gc` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A stale record.
    Record {
        name: String,
        id: String,
        pid: u32,
    },
    /// A record file this version cannot read.
    Corrupt {
        path: PathBuf,
        problem: String,
    },
    /// A temporary record whose writer died before renaming it.
    Unfinished {
        path: PathBuf,
    },
    Lease {
        bridge: String,
        swept: Swept,
    },
    /// A container veth on the bridge that no live record has.
    Link {
        name: String,
    },
    /// A firewall element whose owner is no live container.
    Element(Owned),
    /// A network's firewall elements, whose bridge is gone.
    Network(GoneNetwork),
    /// A container's /etc files whose container is gone.
    Files {
        path: PathBuf,
    },
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Removed::Record { name, id, pid } => {
                write!(
                    f,
                    "record {name} ({id}): its supervisor (pid {pid}) is gone"
                )
            }
            Removed::Corrupt { path, problem } => {
                write!(f, "record {}: corrupt ({problem})", path.display())
            }
            Removed::Unfinished { path } => write!(f, "record {}: unfinished", path.display()),
            Removed::Lease { bridge, swept } => write!(f, "{swept} (bridge {bridge})"),
            Removed::Link { name } => write!(f, "link {name}: no live container has it"),
            Removed::Element(element) => match &element.owner {
                Some(owner) => write!(f, "element {element} of {owner}: no live container has it"),
                None => write!(f, "element {element}"),
            },
            Removed::Network(network) => write!(f, "{network}: its bridge is gone"),
            Removed::Files { path } => {
                write!(f, "files {}: no live container has them", path.display())
            }
        }
    }
}

/// What `gc` did: what it removed, and the live leases (with their
/// bridge) it left alone although they are outside the subnet it was given.
#[derive(Debug, Default)]
pub struct Collected {
    pub removed: Vec<Removed>,
    pub kept: Vec<(String, Kept)>,
}

/// Gives back what dead supervisors held. Opens a netlink connection: must
/// be made on a tokio runtime.
pub struct Reconciler {
    state_dir: PathBuf,
    store: Store,
    nl: Netlink,
    firewall: Firewall,
}

impl Reconciler {
    pub fn new(state_dir: &Path) -> Result<Reconciler, Error> {
        Ok(Reconciler {
            state_dir: state_dir.to_path_buf(),
            store: Store::new(state_dir),
            nl: Netlink::connect()?,
            firewall: Firewall::open(state_dir)?,
        })
    }

    /// Gives back what the stale `record` held, except the record itself:
    /// its firewall elements first (its ports must not forward to an
    /// address given to another), then its lease and its host veth.
    pub async fn release_remains(&self, record: &Record) -> Result<Vec<Removed>, Error> {
        let mut removed: Vec<Removed> = self.remove_files(&record.id).into_iter().collect();
        if record.bridge.is_none() {
            // `--network none`: nothing else outside the record.
            return Ok(removed);
        }
        removed.extend(self.remove_elements(|owner| owner.id == record.id)?);
        removed.extend(self.release_lease_and_link(record).await?);
        Ok(removed)
    }

    /// The lease and the host veth of the stale `record`.
    async fn release_lease_and_link(&self, record: &Record) -> Result<Vec<Removed>, Error> {
        let Some(bridge) = &record.bridge else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        let leases = LeaseDir::new(&self.state_dir, bridge)?;
        let addresses = match record.address {
            Some(addr) => match leases.release_held_by(addr, &record.id)? {
                true => vec![addr],
                false => Vec::new(),
            },
            // Killed between the lease and the record's update.
            None => leases.release_all_held_by(&record.id)?,
        };
        let holder = Holder {
            name: record.name.clone(),
            id: record.id.clone(),
            process: record.supervisor,
        };
        removed.extend(addresses.into_iter().map(|addr| Removed::Lease {
            bridge: bridge.clone(),
            swept: Swept::Dead {
                addr,
                holder: holder.clone(),
            },
        }));
        removed.extend(self.remove_link(&host_ifname(&record.id)).await?);
        Ok(removed)
    }

    /// Removes the stale `record` and everything it held; the record last,
    /// so an interrupted cleanup can be finished from it.
    pub async fn remove_stale(&self, record: &Record) -> Result<Vec<Removed>, Error> {
        let mut removed = self.release_remains(record).await?;
        let _lock = self.store.lock()?;
        if self.store.remove(record)? {
            removed.push(Removed::Record {
                name: record.name.clone(),
                id: record.id.clone(),
                pid: record.supervisor.pid,
            });
        }
        Ok(removed)
    }

    /// Everything of ours that no live supervisor explains: firewall
    /// elements (in one batch), the elements of networks whose bridge is
    /// gone, stale records with their leases and veths,
    /// corrupt and unfinished record files, container veths on `pool`'s
    /// bridge without a live record, and every lease whose holder is dead
    /// or unreadable. Returns what it removed, and the live leases it kept
    /// although they are outside `pool`'s subnet: a live holder's lease is
    /// never removed, whatever subnet `gc` was given.
    pub async fn gc(&self, pool: &Pool) -> Result<Collected, Error> {
        let lock = self.store.lock()?;
        let entries = self.store.entries()?;
        let live: BTreeSet<&str> = entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Record(record) if !record.is_stale() => Some(record.id.as_str()),
                _ => None,
            })
            .collect();
        let mut removed = self.remove_elements(|owner| !live.contains(owner.id.as_str()))?;
        let gone = self
            .firewall
            .remove_gone_networks(firewall::interface_exists)?;
        removed.extend(gone.into_iter().map(Removed::Network));
        let mut kept = Vec::new();
        for entry in &entries {
            match entry {
                Entry::Record(record) if !live.contains(record.id.as_str()) => {
                    removed.extend(self.release_lease_and_link(record).await?);
                    if self.store.remove(record)? {
                        removed.push(Removed::Record {
                            name: record.name.clone(),
                            id: record.id.clone(),
                            pid: record.supervisor.pid,
                        });
                    }
                }
                Entry::Record(_) => {}
                Entry::Corrupt { path, problem } => {
                    if self.store.remove_path(path)? {
                        let problem = problem.clone();
                        removed.push(Removed::Corrupt {
                            path: path.clone(),
                            problem,
                        });
                    }
                }
                Entry::Temporary { path } => {
                    if self.store.remove_path(path)? {
                        removed.push(Removed::Unfinished { path: path.clone() });
                    }
                }
            }
        }
        for id in etc_files::ids(&self.state_dir) {
            if !live.contains(id.as_str()) {
                removed.extend(self.remove_files(&id));
            }
        }
        let live_links: BTreeSet<String> = live.iter().map(|id| host_ifname(id)).collect();
        let bridge = pool.lease_dir().bridge();
        for name in netlink::bridge_ports(&self.nl, bridge).await? {
            if name.starts_with("sv-") && !live_links.contains(&name) {
                removed.extend(self.remove_link(&name).await?);
            }
        }
        drop(lock);
        // A lease's own holder says whether it is live: no lock needed
        // beyond the lease directory's.
        let leases = self.state_dir.join("leases");
        let dirs = file::names(&leases).map_err(state::Error::from)?;
        for dir in dirs {
            if dir.starts_with('.') || !leases.join(&dir).is_dir() {
                continue;
            }
            let sweep = if dir == bridge {
                pool.sweep()?
            } else {
                LeaseDir::new(&self.state_dir, &dir)?.sweep(None)?
            };
            removed.extend(sweep.removed.into_iter().map(|swept| Removed::Lease {
                bridge: dir.clone(),
                swept,
            }));
            kept.extend(sweep.kept.into_iter().map(|kept| (dir.clone(), kept)));
        }
        Ok(Collected { removed, kept })
    }

    /// Removes container `id`'s /etc files, if there are any.
    fn remove_files(&self, id: &str) -> Option<Removed> {
        let files = EtcFiles::new(&self.state_dir, id);
        match files.remove() {
            Ok(true) => Some(Removed::Files {
                path: files.dir().to_path_buf(),
            }),
            Ok(false) => None,
            Err(err) => {
                tracing::warn!("removing {}: {err}", files.dir().display());
                None
            }
        }
    }

    /// Removes, in one batch, the elements whose owner is `gone`.
    fn remove_elements(&self, gone: impl Fn(&Owner) -> bool) -> Result<Vec<Removed>, Error> {
        let doomed: Vec<Owned> = self
            .firewall
            .owned_elements()?
            .into_iter()
            .filter(|element| element.owner.as_ref().is_some_and(&gone))
            .collect();
        self.firewall.remove(&doomed)?;
        Ok(doomed.into_iter().map(Removed::Element).collect())
    }

    /// Deletes link `name` when it exists; what was removed.
    async fn remove_link(&self, name: &str) -> Result<Option<Removed>, Error> {
        if netlink::link_state(&self.nl, name).await?.is_none() {
            return Ok(None);
        }
        netlink::remove_link(&self.nl, name).await?;
        Ok(Some(Removed::Link {
            name: name.to_string(),
        }))
    }
}

/// `run`'s claim on its name: a dead supervisor's record of that name is
/// replaced, and what it held given back before the run goes on.
pub async fn claim(state_dir: &Path, record: Record) -> Result<Registration, state::Error> {
    let (registration, stale) = Store::new(state_dir).claim(record)?;
    if let Some(stale) = stale {
        tracing::info!(name = %stale.name, id = %stale.id, "reclaiming the name of a dead supervisor");
        let removed = match Reconciler::new(state_dir) {
            Ok(reconciler) => reconciler.release_remains(&stale).await,
            Err(err) => Err(err),
        };
        report(removed);
    }
    Ok(registration)
}

/// After `run` took over the address of `dead`, a dead supervisor, on
/// `bridge`: the rest of what it held (its record, elements, veth) goes
/// back too.
pub async fn reclaimed_address(state_dir: &Path, bridge: &str, dead: &Holder) {
    tracing::info!(name = %dead.name, id = %dead.id, "reclaimed the address of a dead supervisor");
    let removed = async {
        let reconciler = Reconciler::new(state_dir)?;
        match reconciler.store.find(&dead.name)? {
            Some(record) if record.id == dead.id && record.is_stale() => {
                reconciler.remove_stale(&record).await
            }
            // No record left: what else it held is found by its id.
            _ => {
                let mut known = Record::new(&dead.name, &dead.id, dead.process, Vec::new());
                known.bridge = Some(bridge.to_string());
                reconciler.release_remains(&known).await
            }
        }
    };
    report(removed.await);
}

/// When `run` finds a port published by `holder`: true when the holder is
/// a dead supervisor and what it held has been given back, so the run can
/// publish again; false when it is alive (or that cannot be told).
pub async fn reclaim_port(state_dir: &Path, holder: &Owner) -> bool {
    let removed = async {
        let reconciler = Reconciler::new(state_dir)?;
        match reconciler.store.find(&holder.name)? {
            Some(record) if record.id == holder.id => match record.is_stale() {
                true => reconciler.remove_stale(&record).await.map(Some),
                false => Ok(None),
            },
            // A run's record outlives its elements: without one, their
            // supervisor died.
            _ => reconciler
                .remove_elements(|owner| owner.id == holder.id)
                .map(Some),
        }
    };
    match removed.await {
        Ok(None) => false,
        Ok(Some(removed)) => {
            tracing::info!(%holder, "reclaimed the port of a dead supervisor");
            report(Ok(removed));
            true
        }
        Err(err) => {
            report(Err(err));
            false
        }
    }
}

/// `run` goes on whatever a cleanup did: what went is logged, a failure is a
/// warning (`gc` finishes the job).
fn report(removed: Result<Vec<Removed>, Error>) {
    match removed {
        Ok(removed) => {
            for what in removed {
                tracing::info!("removed {what}");
            }
        }
        Err(err) => {
            tracing::warn!("cleaning up after a dead supervisor: {err}; `supervisor gc` retries")
        }
    }
}
