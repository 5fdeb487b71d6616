//! Crash recovery: what a dead supervisor held goes back.
//!
//! A supervisor killed with SIGKILL leaves its record and its lease, and
//! sometimes its host veth (its container dies with it: PR_SET_PDEATHSIG,
//! and the veth with the container's namespace). A record whose supervisor
//! is dead is stale, and what it held is nobody's: `gc` gives it all back,
//! and `run` gives back whatever is in its way (a name, an address) before
//! going on.
//!
//! Ownership is decided by ids and process identities, never by timing: a
//! lease names its holder's id and supervisor; a link is `sv-` and its
//! container's id. A lease is given back when its supervisor is dead; a
//! link when no live record has its id. A run writes its record before it
//! creates anything, and `gc` holds the records lock while it lists links
//! and deletes the unexplained ones, so it never takes a starting
//! container's link.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::ipam::{self, Holder, LeaseDir, Pool, Swept};
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
        }
    }
}

/// Gives back what dead supervisors held. Opens a netlink connection: must
/// be made on a tokio runtime.
pub struct Reconciler {
    state_dir: PathBuf,
    store: Store,
    nl: Netlink,
}

impl Reconciler {
    pub fn new(state_dir: &Path) -> Result<Reconciler, Error> {
        Ok(Reconciler {
            state_dir: state_dir.to_path_buf(),
            store: Store::new(state_dir),
            nl: Netlink::connect()?,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Gives back what the stale `record` held, except the record itself:
    /// its lease and its host veth.
    pub async fn release_remains(&self, record: &Record) -> Result<Vec<Removed>, Error> {
        let Some(bridge) = &record.bridge else {
            // `--network none`: nothing outside the record.
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

    /// Everything of ours that no live supervisor explains: stale records
    /// with what they held, corrupt and unfinished record files, container
    /// veths on `pool`'s bridge without a live record, and every lease whose
    /// holder is dead or unreadable (on `pool`, also those outside its
    /// subnet). Returns what it removed.
    pub async fn gc(&self, pool: &Pool) -> Result<Vec<Removed>, Error> {
        let mut removed = Vec::new();
        let lock = self.store.lock()?;
        let mut live = BTreeSet::new();
        for entry in self.store.entries()? {
            match entry {
                Entry::Record(record) if !record.is_stale() => {
                    live.insert(host_ifname(&record.id));
                }
                Entry::Record(record) => {
                    removed.extend(self.release_remains(&record).await?);
                    if self.store.remove(&record)? {
                        removed.push(Removed::Record {
                            name: record.name,
                            id: record.id,
                            pid: record.supervisor.pid,
                        });
                    }
                }
                Entry::Corrupt { path, problem } => {
                    if self.store.remove_path(&path)? {
                        removed.push(Removed::Corrupt { path, problem });
                    }
                }
                Entry::Temporary { path } => {
                    if self.store.remove_path(&path)? {
                        removed.push(Removed::Unfinished { path });
                    }
                }
            }
        }
        let bridge = pool.lease_dir().bridge();
        for name in netlink::bridge_ports(&self.nl, bridge).await? {
            if name.starts_with("sv-") && !live.contains(&name) {
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
            let swept = if dir == bridge {
                pool.sweep()?
            } else {
                LeaseDir::new(&self.state_dir, &dir)?.sweep(None)?
            };
            removed.extend(swept.into_iter().map(|swept| Removed::Lease {
                bridge: dir.clone(),
                swept,
            }));
        }
        Ok(removed)
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

/// After `run` took over the address of `dead`, a dead supervisor: the
/// rest of what it held (its record, its veth) goes back too.
pub async fn reclaimed_address(state_dir: &Path, dead: &Holder) {
    tracing::info!(name = %dead.name, id = %dead.id, "reclaimed the address of a dead supervisor");
    let removed = async {
        let reconciler = Reconciler::new(state_dir)?;
        match reconciler.store.find(&dead.name)? {
            Some(record) if record.id == dead.id && record.is_stale() => {
                reconciler.remove_stale(&record).await
            }
            // No record left: its veth, named by its id, may be.
            _ => Ok(reconciler
                .remove_link(&host_ifname(&dead.id))
                .await?
                .into_iter()
                .collect()),
        }
    };
    report(removed.await);
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
