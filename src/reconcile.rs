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
//! has its id (an element, only when this state directory knows the id:
//! see `known_ids`). A run writes its record before it creates anything and
//! removes it after everything else, and `gc` holds the records lock while
//! it lists links and elements and deletes the unexplained ones, so it
//! never takes a starting container's.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::cgroup;
use crate::container_log;
use crate::error_chain::Chain;
use crate::etc_files::{self, EtcFiles};
use crate::firewall::{self, Firewall, GoneNetwork, Owned};
use crate::ipam::{self, Holder, Kept, LeaseDir, Pool, Swept};
use crate::milestones::pause_at;
use crate::netlink::{self, Netlink};
use crate::network::host_ifname;
use crate::state::{self, Entry, Record, Registration, StaleMarker, Store, file};
use crate::values::Owner;

/// The container ids `state_dir` knows: of its records (stale ones too),
/// its id markers, its containers' /etc files and its leases' holders. A
/// firewall element whose owner is none of them belongs to another state
/// directory (a CNI network's own `stateDir`, a run with `--state-dir`),
/// whose containers' records are not here: no live record here says
/// nothing of it, and its elements are not this directory's to remove.
pub fn known_ids(state_dir: &Path, entries: &[Entry]) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Record(record) => Some(record.id.clone()),
            _ => None,
        })
        .collect();
    known.extend(file::names(&state_dir.join("ids")).unwrap_or_default());
    known.extend(etc_files::ids(state_dir));
    let leases = state_dir.join("leases");
    for bridge in file::names(&leases).unwrap_or_default() {
        let held = LeaseDir::new(state_dir, &bridge).and_then(|dir| dir.leases());
        known.extend(
            held.unwrap_or_default()
                .into_iter()
                .filter_map(|(_, holder)| Some(holder?.id)),
        );
    }
    known
}

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
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Cgroup(#[from] cgroup::Error),
}

/// One thing a cleanup could not give back, named, with why. A cleanup goes
/// on past it and returns every one (as netavark's teardown does), so `gc`
/// can name each and `run` can report each once.
#[derive(Debug, thiserror::Error)]
#[error("{object}")]
pub struct Failure {
    /// What is left, as `gc` would have reported it removed.
    pub object: String,
    #[source]
    pub source: Error,
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
    /// The exited record of a detached container that ended.
    Exited {
        name: String,
        id: String,
        exit_code: u8,
    },
    /// The log of a container that ended or crashed.
    Log {
        path: PathBuf,
    },
    /// The cgroup of a crashed supervisor's container.
    Cgroup {
        path: PathBuf,
    },
    /// A marker no record explains: of a join whose joiner or target is
    /// gone, or of an id no record of its name has (see `state::markers`).
    Marker(StaleMarker),
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
            Removed::Exited {
                name,
                id,
                exit_code,
            } => write!(f, "exited record {name} ({id}): it exited {exit_code}"),
            Removed::Log { path } => {
                write!(f, "log {}: its container is gone", path.display())
            }
            Removed::Cgroup { path } => {
                write!(f, "cgroup {}: its container is gone", path.display())
            }
            Removed::Marker(stale) => write!(f, "{stale}"),
        }
    }
}

/// What a cleanup did: what it removed, the live leases (with their
/// bridge) it left alone although they are outside the subnet `gc` was
/// given, and what it could not remove.
#[derive(Debug, Default)]
pub struct Collected {
    pub removed: Vec<Removed>,
    /// Live records whose id had no marker, marked: (name, id).
    pub marked: Vec<(String, String)>,
    pub kept: Vec<(String, Kept)>,
    pub failed: Vec<Failure>,
}

impl Collected {
    /// The value of a step that worked; a step that failed is added to
    /// `failed`, naming `object`, and the cleanup goes on.
    fn attempt<T>(
        &mut self,
        object: impl FnOnce() -> String,
        result: Result<T, impl Into<Error>>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.failed.push(Failure {
                    object: object(),
                    source: err.into(),
                });
                None
            }
        }
    }
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
    /// address given to another), then its host veth and its lease. Goes
    /// on past a failed step.
    pub async fn release_remains(&self, record: &Record) -> Collected {
        let mut done = Collected::default();
        self.remove_files(&record.id, &mut done);
        remove_cgroup(record, &mut done);
        if record.bridge.is_none() {
            // `--network none`: nothing else outside the record.
            return done;
        }
        self.remove_elements_of(|owner| owner.id == record.id, &mut done);
        self.release_lease_and_link(record, &mut done).await;
        done
    }

    /// The host veth of the stale `record`, then its lease: as a CNI DEL,
    /// so no one gets the address while its old owner's veth (with the MAC
    /// derived from it) is still on the bridge. A veth that could not be
    /// deleted keeps the lease held (the failure names the link), for the
    /// next `gc` to finish both. Returns false then.
    async fn release_lease_and_link(&self, record: &Record, done: &mut Collected) -> bool {
        let Some(bridge) = &record.bridge else {
            return true;
        };
        if !self.remove_link(&host_ifname(&record.id), done).await {
            return false;
        }
        pause_at("unlinked");
        let lease = || match record.address {
            Some(addr) => format!("lease {addr} of {} (bridge {bridge})", record.name),
            None => format!("the lease of {} (bridge {bridge})", record.name),
        };
        if let Some(addr) = record.address {
            // Before the address goes: see netlink::forget_neighbours_on.
            let entries = || format!("the neighbour entries of {addr} (bridge {bridge})");
            let forgotten = netlink::forget_neighbours_on(bridge, addr, record.address6);
            done.attempt(entries, forgotten);
        }
        let released = LeaseDir::new(&self.state_dir, bridge).and_then(|leases| {
            match record.address {
                Some(addr) => leases
                    .release_held_by(addr, &record.id)
                    .map(|released| if released { vec![addr] } else { Vec::new() }),
                // Killed between the lease and the record's update.
                None => leases.release_all_held_by(&record.id),
            }
        });
        if let Some(addresses) = done.attempt(lease, released) {
            let holder = Holder {
                name: record.name.clone(),
                id: record.id.clone(),
                process: record.supervisor,
            };
            done.removed
                .extend(addresses.into_iter().map(|addr| Removed::Lease {
                    bridge: bridge.clone(),
                    swept: Swept::Dead {
                        addr,
                        holder: holder.clone(),
                    },
                }));
        }
        true
    }

    /// Removes the stale `record` and everything it held; the record last,
    /// and only once the rest is gone, so a failed cleanup can be finished
    /// from it.
    pub async fn remove_stale(&self, record: &Record) -> Collected {
        let mut done = self.release_remains(record).await;
        if done.failed.is_empty() {
            self.remove_record(record, &mut done);
        }
        done
    }

    /// Removes the stale `record` itself, under the records lock.
    fn remove_record(&self, record: &Record, done: &mut Collected) {
        let object = || format!("record {} ({})", record.name, record.id);
        let removed = self
            .store
            .lock()
            .and_then(|_lock| self.store.remove(record));
        if done.attempt(object, removed) == Some(true) {
            done.removed.push(Removed::Record {
                name: record.name.clone(),
                id: record.id.clone(),
                pid: record.supervisor.pid,
            });
        }
    }

    /// Removes the `stale` markers (of `what`) found under the lock.
    fn remove_markers(
        &self,
        what: &str,
        stale: Result<Vec<StaleMarker>, state::Error>,
        done: &mut Collected,
    ) {
        let object = || format!("the markers of {what}");
        let removed = stale.and_then(|stale| self.store.remove_markers(stale));
        if let Some(markers) = done.attempt(object, removed) {
            done.removed
                .extend(markers.into_iter().map(Removed::Marker));
        }
    }

    /// Removes the id markers no record explains, and marks the ids of
    /// live records that have none (an earlier version's), so a lookup by
    /// id finds every live container (see `state::markers`). Under the
    /// lock `entries` were read under.
    fn repair_ids(&self, entries: &[Entry], live: &[&Record], done: &mut Collected) {
        let records: Vec<&Record> = entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Record(record) => Some(&**record),
                _ => None,
            })
            .collect();
        self.remove_markers("ids", self.store.stale_ids(&records), done);
        for record in self.store.unmarked(live) {
            let object = || format!("the id marker of record {} ({})", record.name, record.id);
            if done.attempt(object, self.store.mark_id(record)).is_some() {
                done.marked.push((record.name.clone(), record.id.clone()));
            }
        }
    }

    /// Everything of ours that no live supervisor explains: firewall
    /// elements (in one batch), the elements of networks whose bridge is
    /// gone, stale records with their leases and veths,
    /// corrupt and unfinished record files, container veths of `pool`'s
    /// bridge without a live record (its ports, and the host ends of its
    /// routed containers: see `netlink::container_links`), and every lease
    /// whose holder is dead
    /// or unreadable. Returns what it removed, and the live leases it kept
    /// although they are outside `pool`'s subnet: a live holder's lease is
    /// never removed, whatever subnet `gc` was given.
    pub async fn gc(&self, pool: &Pool) -> Result<Collected, Error> {
        // Without the lock and the records, nothing can be told to be
        // nobody's: those two stop it; every later step only adds a failure.
        let lock = self.store.lock()?;
        let entries = self.store.entries()?;
        let live: BTreeSet<&str> = entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Record(record) if !record.is_stale() => Some(record.id.as_str()),
                _ => None,
            })
            .collect();
        let mut done = Collected::default();
        // Veths that could not be deleted: their leases stay held.
        let mut spared: BTreeSet<String> = BTreeSet::new();
        let known = known_ids(&self.state_dir, &entries);
        self.remove_elements_of(
            |owner| !live.contains(owner.id.as_str()) && known.contains(&owner.id),
            &mut done,
        );
        let gone = self
            .firewall
            .remove_gone_networks(firewall::interface_exists);
        let networks = || "the elements of networks whose bridge is gone".to_string();
        if let Some(gone) = done.attempt(networks, gone) {
            done.removed.extend(gone.into_iter().map(Removed::Network));
        }
        for entry in &entries {
            match entry {
                Entry::Record(record) if !live.contains(record.id.as_str()) => {
                    let failures = done.failed.len();
                    remove_cgroup(record, &mut done);
                    if !self.release_lease_and_link(record, &mut done).await {
                        spared.insert(host_ifname(&record.id));
                    }
                    // Kept while what it explains is left.
                    if done.failed.len() == failures {
                        let object = || format!("record {} ({})", record.name, record.id);
                        if done.attempt(object, self.store.remove(record)) == Some(true) {
                            done.removed.push(Removed::Record {
                                name: record.name.clone(),
                                id: record.id.clone(),
                                pid: record.supervisor.pid,
                            });
                        }
                    }
                }
                Entry::Record(_) => {}
                Entry::Corrupt { path, problem } => {
                    let object = || format!("record {}", path.display());
                    if done.attempt(object, self.store.remove_path(path)) == Some(true) {
                        let problem = problem.clone();
                        done.removed.push(Removed::Corrupt {
                            path: path.clone(),
                            problem,
                        });
                    }
                }
                Entry::Temporary { path } => {
                    let object = || format!("record {}", path.display());
                    if done.attempt(object, self.store.remove_path(path)) == Some(true) {
                        done.removed
                            .push(Removed::Unfinished { path: path.clone() });
                    }
                }
            }
        }
        let live_records: Vec<&Record> = entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Record(record) if !record.is_stale() => Some(&**record),
                _ => None,
            })
            .collect();
        let stale = self.store.stale_joins(&live_records);
        self.remove_markers("joined networks", stale, &mut done);
        self.repair_ids(&entries, &live_records, &mut done);
        for id in etc_files::ids(&self.state_dir) {
            if !live.contains(id.as_str()) {
                self.remove_files(&id, &mut done);
            }
        }
        let live_names: BTreeSet<&str> = entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Record(record) if !record.is_stale() => Some(record.name.as_str()),
                _ => None,
            })
            .collect();
        // Its log goes with it (next), as a gone container's always has.
        let exited = self.store.exited().all();
        let all = || "the exited records".to_string();
        for exited in done.attempt(all, exited).unwrap_or_default() {
            if live_names.contains(exited.name.as_str()) {
                continue;
            }
            let object = || format!("exited record {} ({})", exited.name, exited.id);
            if done.attempt(object, self.store.exited().remove(&exited.name)) == Some(true) {
                done.removed.push(Removed::Exited {
                    name: exited.name,
                    id: exited.id,
                    exit_code: exited.exit_code,
                });
            }
        }
        for name in container_log::names(&self.state_dir) {
            if !live_names.contains(name.as_str()) {
                self.remove_log(&name, &mut done);
            }
        }
        let live_links: BTreeSet<String> = live.iter().map(|id| host_ifname(id)).collect();
        let bridge = pool.lease_dir().bridge();
        let explained = |name: &str| !name.starts_with("sv-") || live_links.contains(name);
        let ports = netlink::container_links(&self.nl, bridge, explained).await;
        let links = || format!("the container links of bridge {bridge}");
        for name in done.attempt(links, ports).unwrap_or_default() {
            if name.starts_with("sv-")
                && !live_links.contains(&name)
                && !self.remove_link(&name, &mut done).await
            {
                spared.insert(name);
            }
        }
        drop(lock);
        // A lease's own holder says whether it is live: no lock needed
        // beyond the lease directory's.
        let leases = self.state_dir.join("leases");
        let dirs = file::names(&leases).map_err(state::Error::from);
        let all = || format!("the leases in {}", leases.display());
        for dir in done.attempt(all, dirs).unwrap_or_default() {
            if dir.starts_with('.') || !leases.join(&dir).is_dir() {
                continue;
            }
            let spare = |holder: &Holder| spared.contains(&host_ifname(&holder.id));
            let sweep = if dir == bridge {
                pool.sweep_sparing(spare)
            } else {
                LeaseDir::new(&self.state_dir, &dir)
                    .and_then(|leases| leases.sweep_sparing(None, spare))
            };
            let object = || format!("the leases of bridge {dir}");
            let Some(sweep) = done.attempt(object, sweep) else {
                continue;
            };
            done.removed
                .extend(sweep.removed.into_iter().map(|swept| Removed::Lease {
                    bridge: dir.clone(),
                    swept,
                }));
            done.kept
                .extend(sweep.kept.into_iter().map(|kept| (dir.clone(), kept)));
        }
        Ok(done)
    }

    /// Removes container `id`'s /etc files, if there are any.
    fn remove_files(&self, id: &str, done: &mut Collected) {
        let files = EtcFiles::new(&self.state_dir, id);
        let object = || format!("files {}", files.dir().display());
        if done.attempt(object, files.remove()) == Some(true) {
            done.removed.push(Removed::Files {
                path: files.dir().to_path_buf(),
            });
        }
    }

    /// Removes the log of a container that is gone (ended or crashed): a
    /// log outlives its container until `gc`. Not one a `run -d` has
    /// started but not yet claimed the name for.
    fn remove_log(&self, name: &str, done: &mut Collected) {
        let paths = container_log::Paths::new(&self.state_dir, name);
        let object = || format!("log {}", paths.current.display());
        let removed = paths.remove_unless_written(&self.state_dir);
        if done.attempt(object, removed) == Some(true) {
            done.removed.push(Removed::Log {
                path: paths.current.clone(),
            });
        }
    }

    /// Removes, in one batch, the elements whose owner is `gone`; a refused
    /// batch names every element in it.
    fn remove_elements_of(&self, gone: impl Fn(&Owner) -> bool, done: &mut Collected) {
        let doomed = self.firewall.owned_elements().map(|elements| {
            elements
                .into_iter()
                .filter(|element| element.owner.as_ref().is_some_and(&gone))
                .collect::<Vec<Owned>>()
        });
        let listing = || "the firewall elements".to_string();
        let Some(doomed) = done.attempt(listing, doomed) else {
            return;
        };
        let names = || {
            let names: Vec<String> = doomed.iter().map(|e| format!("element {e}")).collect();
            names.join(", ")
        };
        if done.attempt(names, self.firewall.remove(&doomed)).is_some() {
            done.removed
                .extend(doomed.into_iter().map(Removed::Element));
        }
    }

    /// Deletes link `name` when it exists; false when it could not be told
    /// or deleted (added to `done.failed`).
    async fn remove_link(&self, name: &str, done: &mut Collected) -> bool {
        let removed = match netlink::link_state(&self.nl, name).await {
            Ok(None) => Ok(false),
            Ok(Some(_)) => netlink::remove_link(&self.nl, name).await.map(|()| true),
            Err(err) => Err(err),
        };
        match done.attempt(|| format!("link {name}"), removed) {
            Some(true) => done.removed.push(Removed::Link {
                name: name.to_string(),
            }),
            Some(false) => {}
            None => return false,
        }
        true
    }
}

/// Removes the cgroup of the stale `record`'s container, if it had one:
/// its processes died with their supervisor (PR_SET_PDEATHSIG).
fn remove_cgroup(record: &Record, done: &mut Collected) {
    let Some(limits) = &record.resources else {
        return;
    };
    for path in &limits.cgroup {
        let object = || format!("cgroup {} of {}", path.display(), record.name);
        let removed = cgroup::remove(std::slice::from_ref(path));
        if done.attempt(object, removed) == Some(true) {
            done.removed.push(Removed::Cgroup { path: path.clone() });
        }
    }
}

/// `run`'s claim on its name: a dead supervisor's record of that name is
/// replaced, and what it held given back before the run goes on.
pub async fn claim(state_dir: &Path, record: Record) -> Result<Registration, state::Error> {
    let (registration, stale) = Store::new(state_dir).claim(record)?;
    if let Some(stale) = stale {
        tracing::info!(name = %stale.name, id = %stale.id, "reclaiming the name of a dead supervisor");
        let removed = match Reconciler::new(state_dir) {
            Ok(reconciler) => Ok(reconciler.release_remains(&stale).await),
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
                Ok(reconciler.remove_stale(&record).await)
            }
            // No record left: what else it held is found by its id.
            _ => {
                let mut known = Record::new(&dead.name, &dead.id, dead.process, Vec::new());
                known.bridge = Some(bridge.to_string());
                Ok(reconciler.release_remains(&known).await)
            }
        }
    };
    report(removed.await);
}

/// Whether `owner` is a container of `state_dir`, live or not: its record
/// there, or an id the directory knows (see `known_ids`).
pub fn knows(state_dir: &Path, owner: &Owner) -> bool {
    let recorded = Store::new(state_dir).find(&owner.name);
    matches!(recorded, Ok(Some(record)) if record.id == owner.id)
        || known_ids(state_dir, &[]).contains(&owner.id)
}

/// When `run` finds a port published by `holder`: true when the holder is
/// a dead supervisor and what it held has been given back, so the run can
/// publish again; false when it is alive (or that cannot be told).
pub async fn reclaim_port(state_dir: &Path, holder: &Owner) -> bool {
    let removed = async {
        let reconciler = Reconciler::new(state_dir)?;
        match reconciler.store.find(&holder.name)? {
            Some(record) if record.id == holder.id => match record.is_stale() {
                true => Ok(Some(reconciler.remove_stale(&record).await)),
                false => Ok(None),
            },
            // Another state directory's: its live container, for all
            // this one knows (see known_ids).
            _ if !known_ids(&reconciler.state_dir, &[]).contains(&holder.id) => Ok(None),
            // A run's record outlives its elements: without one, their
            // supervisor died.
            _ => {
                let mut done = Collected::default();
                reconciler.remove_elements_of(|owner| owner.id == holder.id, &mut done);
                Ok(Some(done))
            }
        }
    };
    match removed.await {
        Ok(None) => false,
        Ok(Some(done)) => {
            let reclaimed = done.failed.is_empty();
            if reclaimed {
                tracing::info!(%holder, "reclaimed the port of a dead supervisor");
            }
            report(Ok(done));
            reclaimed
        }
        Err(err) => {
            report(Err(err));
            false
        }
    }
}

/// `run` goes on whatever a cleanup did: what went is logged, each failure
/// is a warning (`gc` finishes the job).
fn report(removed: Result<Collected, Error>) {
    match removed {
        Ok(done) => {
            for what in done.removed {
                tracing::info!("removed {what}");
            }
            for failure in done.failed {
                tracing::warn!(
                    "cleaning up after a dead supervisor: {}; `supervisor gc` retries",
                    Chain(&failure)
                );
            }
        }
        Err(err) => {
            tracing::warn!(
                "cleaning up after a dead supervisor: {}; `supervisor gc` retries",
                Chain(&err)
            )
        }
    }
}
