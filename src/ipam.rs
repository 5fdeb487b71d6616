//! Address leases shared by concurrent supervisors.
//!
//! Each bridge has a lease directory, `STATE_DIR/leases/BRIDGE/`, holding one
//! small file per leased address, named by the address (`172.16.0.2`):
//!
//! ```text
//! # supervisor lease v1
//! name=web
//! id=3f2a9c0b7d1e
//! pid=4242
//! pid_start=1234567
//! ```
//!
//! `name` and `id` say which container holds the address; `pid` and
//! `pid_start` (field 22 of `/proc/PID/stat`, clock ticks after boot) identify
//! the supervisor process, so a later reclaim can tell a dead holder from a
//! live one even after its pid is reused. Every change happens under an
//! exclusive `flock` on `.lock` in that directory; a lease file is written to a
//! temporary name and renamed into place, so a reader never sees half a record.
//!
//! Addresses are handed out round robin, as docker does: the next one
//! after the last handed out, so a just-freed address (with conntrack
//! entries and neighbour caches still naming its old container) is the
//! last to come back. `.last` in the directory names the last one handed
//! out without being asked for; reading it and probing the addresses after
//! it makes a lease cost the same with 10 or 10,000 leases held. It is
//! only a hint: missing, unreadable or outside the subnet, the search
//! starts at the subnet's first address, and when the addresses after it
//! are crowded one read of the directory finds a free one. Writes to it
//! happen under the lock; a crash mid-write leaves a bad hint, which costs
//! one such read.
//!
//! A lease whose supervisor is dead is stale: a run that wants its address
//! takes it over (and learns whose it was, to clean up the rest), and
//! [`Pool::sweep`] removes it.
//!
//! On a dual-stack bridge the record also holds the container's IPv6
//! address, `addr6=fd53:7570:6572::2`: by default the subnet6 prefix and
//! the IPv4 address's host number, so unique exactly when the IPv4 lease
//! is; `--ip6` pins another. A symbolic link named by the IPv6 address
//! points at the record that holds it (`fd53:7570:6572::2 -> 172.16.0.2`):
//! the one lookup that tells whether an IPv6 address is taken, without
//! reading every record. The link counts only while that record names the
//! address; records without `addr6` (IPv4 only, or older versions) read as
//! before, and older versions skip the links as they skip every name that
//! is not an IPv4 address.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use crate::state::file::{self, DirLock, FileError};
use crate::values::{Address6Error, AddressError, Process, Subnet, Subnet6};

/// Who holds a lease: the container and the supervisor process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub id: String,
    /// The supervisor: with its start time, it names one process for good.
    pub process: Process,
}

impl Holder {
    /// The calling process as the holder for container `name` / `id`.
    pub fn this_process(name: &str, id: &str) -> Result<Holder, Error> {
        let process = Process::current().map_err(FileError::at(Path::new("/proc/self/stat")))?;
        Ok(Holder {
            name: name.to_string(),
            id: id.to_string(),
            process,
        })
    }

    fn to_record(&self) -> Result<String, Error> {
        for (field, value) in [("name", &self.name), ("id", &self.id)] {
            if value.is_empty() || value.contains(['\n', '\r', '\0']) {
                return Err(Error::BadHolder {
                    field,
                    value: value.clone(),
                });
            }
        }
        Ok(format!(
            "# supervisor lease v1\nname={}\nid={}\npid={}\npid_start={}\n",
            self.name, self.id, self.process.pid, self.process.start_time
        ))
    }

    fn from_record(text: &str) -> Option<Holder> {
        let (mut name, mut id, mut pid, mut start_time) = (None, None, None, None);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            match line.split_once('=')? {
                ("name", v) => name = Some(v.to_string()),
                ("id", v) => id = Some(v.to_string()),
                ("pid", v) => pid = v.parse().ok(),
                ("pid_start", v) => start_time = v.parse().ok(),
                // Fields added by later versions are kept for them.
                _ => {}
            }
        }
        Some(Holder {
            name: name?,
            id: id?,
            process: Process {
                pid: pid?,
                start_time: start_time?,
            },
        })
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "container {} (id {}, supervisor pid {})",
            self.name, self.id, self.process.pid
        )
    }
}

/// The IPv6 address a lease record holds, if any.
fn addr6_of_record(text: &str) -> Option<Ipv6Addr> {
    text.lines()
        .find_map(|line| line.strip_prefix("addr6="))
        .and_then(|v| v.parse().ok())
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("address {addr} is in use by {holder}")]
    Taken { addr: Ipv4Addr, holder: Holder },
    #[error("IPv6 address {addr} is in use by {holder}")]
    Taken6 { addr: Ipv6Addr, holder: Holder },
    #[error("IPv6 address {addr} is in use (unreadable lease {path}: `supervisor gc` removes it)")]
    Taken6Unreadable { addr: Ipv6Addr, path: PathBuf },
    #[error(transparent)]
    Address6(#[from] Address6Error),
    #[error("the host number of {addr} does not fit in {subnet6}: give an IPv6 address with --ip6")]
    NotDerivable { addr: Ipv4Addr, subnet6: Subnet6 },
    #[error("address {addr} is in use (unreadable lease {path}: `supervisor gc` removes it)")]
    TakenUnreadable { addr: Ipv4Addr, path: PathBuf },
    #[error("no free address left in {subnet} on bridge {bridge}")]
    Exhausted { subnet: Subnet, bridge: String },
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("lease holder {field} {value:?} is empty or has a line break")]
    BadHolder { field: &'static str, value: String },
    #[error("bridge name {0:?} cannot name a lease directory")]
    BadBridge(String),
    #[error(
        "bridge {bridge} serves a {serves}-mode network (its leases are held), so it cannot \
         serve a {asked}-mode one: give the network another bridge"
    )]
    ModeTaken {
        bridge: String,
        serves: &'static str,
        asked: &'static str,
    },
    #[error(transparent)]
    File(#[from] FileError),
}

/// The hint naming the address last handed out (see the module comment).
const LAST: &str = ".last";
/// Present while the bridge's leases are a routed network's (CNI "mode":
/// "routed"); absent, a bridge-mode one's (`run`'s, CNI's default).
const ROUTED: &str = ".routed";
/// The bytes of `LAST`: the longest IPv4 address and a newline.
const LAST_WIDTH: usize = 16;

/// How many addresses after the hint are probed one by one before a read
/// of the whole directory: enough that a subnet far from full never needs
/// the read, few enough that a crowded one does not probe for long.
const PROBES: usize = 32;

/// The lease files of one bridge, whatever its subnet: all a cleanup needs.
#[derive(Debug, Clone)]
pub struct LeaseDir {
    dir: PathBuf,
    bridge: String,
}

/// The leases of one bridge's subnet, and of its subnet6 when it is dual
/// stack.
#[derive(Debug, Clone)]
pub struct Pool {
    leases: LeaseDir,
    subnet: Subnet,
    subnet6: Option<Subnet6>,
    /// Whether its leases are a routed network's (see `ROUTED`).
    routed: bool,
}

/// A leased address, and its IPv6 address on a dual-stack bridge. Release
/// it with [`Lease::release`]; dropping it releases it too, silently.
#[derive(Debug)]
pub struct Lease {
    addr: Ipv4Addr,
    path: PathBuf,
    addr6: Option<Ipv6Addr>,
    /// The link named by `addr6`.
    link6: Option<PathBuf>,
    /// The dead supervisor whose lease this one replaced.
    reclaimed: Option<Holder>,
    released: bool,
}

/// What a sweep removed, and the live leases it left alone although they
/// are outside the subnet it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    pub removed: Vec<Swept>,
    pub kept: Vec<Kept>,
}

/// A lease outside the swept subnet whose supervisor is alive: its
/// container uses it, so it stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub addr: Ipv4Addr,
    pub subnet: Subnet,
    pub holder: Holder,
}

impl fmt::Display for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.holder.process.is_none() {
            return write!(
                f,
                "lease {}: outside {}, but CNI attachment {} {} holds it until its engine's DEL",
                self.addr, self.subnet, self.holder.name, self.holder.id
            );
        }
        write!(
            f,
            "lease {}: outside {}, but its supervisor (pid {}, container {} {}) is alive",
            self.addr, self.subnet, self.holder.process.pid, self.holder.name, self.holder.id
        )
    }
}

/// A lease [`Pool::sweep`] removed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swept {
    /// Its supervisor is dead.
    Dead { addr: Ipv4Addr, holder: Holder },
    /// Not a lease this version can read.
    Unreadable { addr: Ipv4Addr },
    /// For an address that is not a container address of the subnet, and
    /// whose holder is dead or unreadable.
    Foreign { addr: Ipv4Addr },
    /// A temporary whose writer died before renaming it into place.
    Temporary { name: String },
    /// The link of an IPv6 address whose record is gone or names another.
    Stale6 { addr6: Ipv6Addr },
}

/// Why `bridge` cannot name a lease directory, if it cannot: the kernel
/// takes names starting with '.', but as a directory such a name would be
/// hidden (`.lock` and temporaries are dot files).
pub fn lease_dir_problem(bridge: &str) -> Option<&'static str> {
    if bridge.is_empty() || bridge.starts_with('.') || bridge.contains(['/', '\0']) {
        Some("starts with '.' or holds '/': it cannot name its lease directory")
    } else {
        None
    }
}

impl LeaseDir {
    /// The leases of `bridge` under `state_dir`. Touches nothing.
    pub fn new(state_dir: &Path, bridge: &str) -> Result<LeaseDir, Error> {
        if lease_dir_problem(bridge).is_some() {
            return Err(Error::BadBridge(bridge.to_string()));
        }
        Ok(LeaseDir {
            dir: state_dir.join("leases").join(bridge),
            bridge: bridge.to_string(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Every current lease, in address order.
    pub fn leases(&self) -> Result<Vec<(Ipv4Addr, Option<Holder>)>, Error> {
        Ok(self
            .leased_addresses()?
            .into_iter()
            .map(|addr| (addr, self.read(addr)))
            .collect())
    }

    /// The IPv6 address the lease of `addr` holds, if any.
    pub fn addr6_of(&self, addr: Ipv4Addr) -> Option<Ipv6Addr> {
        addr6_of_record(&read_text(self.path_of(addr)).ok()?)
    }

    /// The IPv6 addresses whose link no record holds (what `sweep` removes
    /// as `Swept::Stale6`), read without changing anything.
    pub fn stale_links6(&self) -> Result<Vec<Ipv6Addr>, Error> {
        Ok(file::names(&self.dir)?
            .iter()
            .filter_map(|name| name.parse::<Ipv6Addr>().ok())
            .filter(|addr6| matches!(self.holder_of6(*addr6), Held::Free))
            .collect())
    }

    /// Removes the lease of `addr` if container `id` holds it; true when it did.
    pub fn release_held_by(&self, addr: Ipv4Addr, id: &str) -> Result<bool, Error> {
        let _lock = self.lock()?;
        if self.read(addr).is_some_and(|h| h.id == id) {
            return self.remove_lease(addr);
        }
        Ok(false)
    }

    /// Makes `process` the holder of the lease of `addr` if container `id`
    /// holds it; true when it did. The lease is then given back when that
    /// process ends without releasing it, as a dead supervisor's is.
    pub fn hand_over(&self, addr: Ipv4Addr, id: &str, process: Process) -> Result<bool, Error> {
        let _lock = self.lock()?;
        let Some(mut holder) = self.read(addr).filter(|h| h.id == id) else {
            return Ok(false);
        };
        holder.process = process;
        let mut record = holder.to_record()?;
        // The IPv6 address stays the lease's: its link points here.
        if let Some(addr6) = self.addr6_of(addr) {
            record.push_str(&format!("addr6={addr6}\n"));
        }
        file::write_atomic(&self.dir, &addr.to_string(), record.as_bytes())?;
        Ok(true)
    }

    /// Removes every lease container `id` holds; returns their addresses.
    pub fn release_all_held_by(&self, id: &str) -> Result<Vec<Ipv4Addr>, Error> {
        let _lock = self.lock()?;
        let mut released = Vec::new();
        for addr in self.leased_addresses()? {
            if self.read(addr).is_some_and(|h| h.id == id) && self.remove_lease(addr)? {
                released.push(addr);
            }
        }
        Ok(released)
    }

    /// Removes the lease record of `addr` and the link of its IPv6
    /// address; true when the record was there. Under the lock.
    fn remove_lease(&self, addr: Ipv4Addr) -> Result<bool, Error> {
        if let Some(addr6) = self.addr6_of(addr) {
            let link = self.path_of6(addr6);
            if fs::read_link(&link)
                .is_ok_and(|target| target.as_os_str() == addr.to_string().as_str())
            {
                file::remove(&link)?;
            }
        }
        Ok(file::remove(&self.path_of(addr))?)
    }

    /// [`Pool::sweep`] for a bridge whose subnet may be unknown: each lease
    /// is judged by its holder alone. A live holder's lease stays whatever
    /// `subnet` says: one outside it is kept and reported, for the subnet
    /// given may not be the one its container uses.
    pub fn sweep(&self, subnet: Option<Subnet>) -> Result<Sweep, Error> {
        self.sweep_sparing(subnet, |_| false)
    }

    /// [`LeaseDir::sweep`], keeping the leases of dead holders `spared`
    /// says are not yet to go (one whose veth could not be deleted: see
    /// `reconcile`).
    pub fn sweep_sparing(
        &self,
        subnet: Option<Subnet>,
        spared: impl Fn(&Holder) -> bool,
    ) -> Result<Sweep, Error> {
        let _lock = self.lock()?;
        let mut sweep = Sweep::default();
        for name in file::names(&self.dir)? {
            if file::is_temporary(&name) {
                file::remove(&self.dir.join(&name))?;
                sweep.removed.push(Swept::Temporary { name });
                continue;
            }
            let Ok(addr) = name.parse::<Ipv4Addr>() else {
                continue;
            };
            let foreign = subnet.filter(|s| s.check_container_address(addr).is_err());
            let gone = match (self.holder_of(addr), foreign) {
                (Held::Free, _) => None,
                (Held::Live(holder), Some(subnet)) => {
                    sweep.kept.push(Kept {
                        addr,
                        subnet,
                        holder,
                    });
                    None
                }
                (Held::Live(_), None) => None,
                (Held::Dead(holder), _) if spared(&holder) => None,
                (Held::Dead(_) | Held::Unreadable(_), Some(_)) => Some(Swept::Foreign { addr }),
                (Held::Dead(holder), None) => Some(Swept::Dead { addr, holder }),
                (Held::Unreadable(_), None) => Some(Swept::Unreadable { addr }),
            };
            if let Some(gone) = gone {
                self.remove_lease(addr)?;
                sweep.removed.push(gone);
            }
        }
        // After the records: the links of those just removed went with them.
        for name in file::names(&self.dir)? {
            let Ok(addr6) = name.parse::<Ipv6Addr>() else {
                continue;
            };
            if matches!(self.holder_of6(addr6), Held::Free) && file::remove(&self.path_of6(addr6))?
            {
                sweep.removed.push(Swept::Stale6 { addr6 });
            }
        }
        Ok(sweep)
    }

    fn lock(&self) -> Result<DirLock, Error> {
        Ok(file::lock(&self.dir)?)
    }

    fn path_of(&self, addr: Ipv4Addr) -> PathBuf {
        self.dir.join(addr.to_string())
    }

    fn path_of6(&self, addr6: Ipv6Addr) -> PathBuf {
        self.dir.join(addr6.to_string())
    }

    /// What holds the IPv6 address `addr6`: the record its link points at,
    /// when that record names it; a link left by a record that is gone or
    /// names another address is free.
    fn holder_of6(&self, addr6: Ipv6Addr) -> Held {
        let link = self.path_of6(addr6);
        let target = match fs::read_link(&link) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Held::Free,
            Err(_) => return Held::Unreadable(link),
            Ok(target) => target,
        };
        let Some(addr) = target.to_str().and_then(|t| t.parse::<Ipv4Addr>().ok()) else {
            return Held::Unreadable(link);
        };
        let path = self.path_of(addr);
        match read_text(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Held::Free,
            Err(_) => Held::Unreadable(path),
            Ok(text) if addr6_of_record(&text) != Some(addr6) => Held::Free,
            Ok(text) => match Holder::from_record(&text) {
                Some(holder) if holder.process.is_alive() => Held::Live(holder),
                Some(holder) => Held::Dead(holder),
                None => Held::Unreadable(path),
            },
        }
    }

    /// Points the link of `addr6` at the record of `addr`, replacing a
    /// stale one. Under the lock, once `holder_of6` said it may.
    fn link6(&self, addr6: Ipv6Addr, addr: Ipv4Addr) -> Result<PathBuf, Error> {
        let link = self.path_of6(addr6);
        file::remove(&link)?;
        std::os::unix::fs::symlink(addr.to_string(), &link).map_err(FileError::at(&link))?;
        Ok(link)
    }

    fn read(&self, addr: Ipv4Addr) -> Option<Holder> {
        let text = read_text(self.path_of(addr)).ok()?;
        Holder::from_record(&text)
    }

    fn holder_of(&self, addr: Ipv4Addr) -> Held {
        let path = self.path_of(addr);
        match read_text(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Held::Free,
            Ok(text) => match Holder::from_record(&text) {
                Some(holder) if holder.process.is_alive() => Held::Live(holder),
                Some(holder) => Held::Dead(holder),
                None => Held::Unreadable(path),
            },
            Err(_) => Held::Unreadable(path),
        }
    }

    /// Whether `addr` has a lease file (a record, whoever holds it).
    fn is_leased(&self, addr: Ipv4Addr) -> Result<bool, Error> {
        let path = self.path_of(addr);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(FileError::at(&path)(err).into()),
        }
    }

    /// The address last handed out without being asked for, if the hint
    /// reads as one.
    pub fn last_handed_out(&self) -> Option<Ipv4Addr> {
        read_text(self.dir.join(LAST)).ok()?.trim().parse().ok()
    }

    /// Records `addr` as the last handed out. Under the lock. Written in
    /// place: a torn write is a bad hint, which costs one scan.
    ///
    /// Always `LAST_WIDTH` bytes (the address padded with spaces, which
    /// the reader trims), written over the old ones: truncating the file
    /// first made tmpfs free its page and allocate another on every lease.
    fn set_last_handed_out(&self, addr: Ipv4Addr) -> Result<(), Error> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join(LAST);
        let text = format!("{addr:<width$}\n", width = LAST_WIDTH - 1);
        // Never written through a link planted in its place.
        fs::File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                // Only a longer file (an older or planted one) loses a tail.
                f.set_len(LAST_WIDTH as u64)
            })
            .map_err(FileError::at(&path))?;
        Ok(())
    }

    fn leased_addresses(&self) -> Result<BTreeSet<Ipv4Addr>, Error> {
        // Dot files (the lock, temporaries) and strangers are not leases.
        Ok(file::names(&self.dir)?
            .iter()
            .filter_map(|name| name.parse().ok())
            .collect())
    }
}

impl Pool {
    /// The pool of `subnet` on `bridge`, kept under `state_dir`. Touches nothing.
    pub fn new(state_dir: &Path, bridge: &str, subnet: Subnet) -> Result<Pool, Error> {
        Ok(Pool {
            leases: LeaseDir::new(state_dir, bridge)?,
            subnet,
            subnet6: None,
            routed: false,
        })
    }

    /// The same pool for a routed network (`routed`) or a bridge-mode one
    /// (the default): a lease is refused while the bridge's other leases
    /// are the other mode's (see `Pool::claim_mode`).
    pub fn with_routed(mut self, routed: bool) -> Pool {
        self.routed = routed;
        self
    }

    /// The same pool on a dual-stack bridge: each lease holds an IPv6
    /// address of `subnet6` too.
    pub fn with_subnet6(mut self, subnet6: Option<Subnet6>) -> Pool {
        self.subnet6 = subnet6;
        self
    }

    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    pub fn dir(&self) -> &Path {
        self.leases.dir()
    }

    pub fn lease_dir(&self) -> &LeaseDir {
        &self.leases
    }

    /// Every current lease, in address order.
    pub fn leases(&self) -> Result<Vec<(Ipv4Addr, Option<Holder>)>, Error> {
        self.leases.leases()
    }

    /// Leases `want` when given (it must be a container address of the
    /// subnet and free), else the lowest free address. An address held by a
    /// dead supervisor counts as free when it is the one in the way: the
    /// pinned one, or the only one left; the lease then names that
    /// supervisor in [`Lease::reclaimed`].
    ///
    /// On a dual-stack bridge the lease holds an IPv6 address too: `want6`
    /// (a container address of the subnet6, free), else the one derived
    /// from the IPv4 address, which an address pinned by another
    /// container makes the IPv4 address unusable here (skipped, or the
    /// error when pinned).
    pub fn lease(
        &self,
        want: Option<Ipv4Addr>,
        want6: Option<Ipv6Addr>,
        holder: &Holder,
    ) -> Result<Lease, Error> {
        if let Some(addr) = want {
            self.subnet.check_container_address(addr)?;
        }
        if let (Some(subnet6), Some(addr6)) = (self.subnet6, want6) {
            subnet6.check_container_address(addr6)?;
        }
        let mut record = holder.to_record()?;
        let _lock = self.leases.lock()?;
        self.claim_mode()?;
        let (addr, mut reclaimed) = match want {
            Some(addr) => match self.leases.holder_of(addr) {
                Held::Free => (addr, None),
                Held::Dead(dead) => (addr, Some(dead)),
                Held::Live(holder) => return Err(Error::Taken { addr, holder }),
                Held::Unreadable(path) => return Err(Error::TakenUnreadable { addr, path }),
            },
            None => self.next_free(want6.is_none())?,
        };
        let addr6 = match self.subnet6 {
            Some(subnet6) => {
                let addr6 = match want6 {
                    Some(addr6) => addr6,
                    None => subnet6
                        .derive(self.subnet, addr)
                        .ok_or(Error::NotDerivable { addr, subnet6 })?,
                };
                match self.leases.holder_of6(addr6) {
                    Held::Free => {}
                    Held::Dead(dead) => {
                        reclaimed.get_or_insert(dead);
                    }
                    Held::Live(holder) => {
                        return Err(Error::Taken6 {
                            addr: addr6,
                            holder,
                        });
                    }
                    Held::Unreadable(path) => {
                        return Err(Error::Taken6Unreadable { addr: addr6, path });
                    }
                }
                record.push_str(&format!("addr6={addr6}\n"));
                Some(addr6)
            }
            None => None,
        };
        let path = file::write_atomic(self.dir(), &addr.to_string(), record.as_bytes())?;
        let link6 = match addr6 {
            Some(addr6) => Some(self.leases.link6(addr6, addr)?),
            None => None,
        };
        if want.is_none() {
            // The lease stands without it: a hint not written only makes
            // the next search start elsewhere.
            if let Err(err) = self.leases.set_last_handed_out(addr) {
                tracing::warn!("lease {addr}: {}", crate::error_chain::Chain(&err));
            }
        }
        Ok(Lease {
            addr,
            path,
            addr6,
            link6,
            reclaimed,
            released: false,
        })
    }

    /// Refuses a lease of one mode (routed or bridge) while the bridge
    /// holds leases of the other; with none held, marks the directory as
    /// this mode's. Under the directory's lock, the one every lease is
    /// taken under, so two first attachments of different modes (a `run`
    /// and a routed ADD, which no CNI lock orders) cannot both win: that is
    /// why the mark is here and not in the firewall's elements. One stat
    /// when the mode is the bridge's already.
    fn claim_mode(&self) -> Result<(), Error> {
        let mark = self.dir().join(ROUTED);
        let marked = match std::fs::symlink_metadata(&mark) {
            Ok(_) => true,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
            Err(err) => return Err(FileError::at(&mark)(err).into()),
        };
        if marked == self.routed {
            return Ok(());
        }
        let mode = |routed: bool| if routed { "routed" } else { "bridge" };
        if !self.leases.leased_addresses()?.is_empty() {
            return Err(Error::ModeTaken {
                bridge: self.leases.bridge.clone(),
                serves: mode(marked),
                asked: mode(self.routed),
            });
        }
        if self.routed {
            file::write_atomic(self.dir(), ROUTED, b"")?;
        } else {
            file::remove(&mark)?;
        }
        Ok(())
    }

    /// Removes every lease that no live supervisor holds: unreadable ones,
    /// dead supervisors' (reported as foreign when outside the container
    /// addresses of the subnet), and temporaries left behind. A live
    /// supervisor's lease is never removed, even outside the subnet.
    pub fn sweep(&self) -> Result<Sweep, Error> {
        self.sweep_sparing(|_| false)
    }

    /// [`Pool::sweep`], keeping the dead holders' leases `spared` names
    /// (see [`LeaseDir::sweep_sparing`]).
    pub fn sweep_sparing(&self, spared: impl Fn(&Holder) -> bool) -> Result<Sweep, Error> {
        self.leases.sweep_sparing(Some(self.subnet), spared)
    }

    /// The first address without a lease after the one last handed out
    /// (round robin, wrapping at the subnet's end); when every one has a
    /// lease, the first held by a dead supervisor, in the same order. With
    /// `derive6` on a dual-stack bridge, an address whose derived IPv6
    /// address another container pinned is skipped.
    fn next_free(&self, derive6: bool) -> Result<(Ipv4Addr, Option<Holder>), Error> {
        let usable = |addr: &Ipv4Addr| match self.subnet6.filter(|_| derive6) {
            Some(subnet6) => subnet6.derive(self.subnet, *addr).is_some_and(|addr6| {
                matches!(self.leases.holder_of6(addr6), Held::Free | Held::Dead(_))
            }),
            None => true,
        };
        let order = self
            .subnet
            .container_addresses_after(self.leases.last_handed_out());
        for addr in order.clone().take(PROBES) {
            if !self.leases.is_leased(addr)? && usable(&addr) {
                return Ok((addr, None));
            }
        }
        // Crowded after the hint: one read of the directory says which are free.
        let leased = self.leases.leased_addresses()?;
        if let Some(addr) = order
            .clone()
            .find(|addr| !leased.contains(addr) && usable(addr))
        {
            return Ok((addr, None));
        }
        order
            .filter(|addr| leased.contains(addr) && usable(addr))
            .find_map(|addr| match self.leases.holder_of(addr) {
                Held::Dead(holder) => Some((addr, Some(holder))),
                _ => None,
            })
            .ok_or_else(|| Error::Exhausted {
                subnet: self.subnet,
                bridge: self.leases.bridge.clone(),
            })
    }
}

/// What holds an address.
enum Held {
    Free,
    Live(Holder),
    Dead(Holder),
    Unreadable(PathBuf),
}

impl Lease {
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Its IPv6 address, on a dual-stack bridge.
    pub fn addr6(&self) -> Option<Ipv6Addr> {
        self.addr6
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dead supervisor whose lease this one replaced, if any: the rest
    /// of what it left is for the caller to clean up.
    pub fn reclaimed(&self) -> Option<&Holder> {
        self.reclaimed.as_ref()
    }

    /// Leaves the lease in place for good: its holder is no process of
    /// ours (see `Process::UNTIL_RELEASED`) and releases it explicitly.
    pub fn keep(mut self) {
        self.released = true;
    }

    /// Gives the addresses back. Nobody else writes a held lease, nor
    /// replaces the link of an address a live record names, so removing
    /// them needs no lock. The link goes first: without its record it
    /// would only be stale, but a record without its link would leave
    /// its IPv6 address looking free.
    pub fn release(mut self) -> Result<(), Error> {
        self.released = true;
        if let Some(link) = &self.link6 {
            file::remove(link)?;
        }
        file::remove(&self.path)?;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            if let Some(link) = &self.link6 {
                let _ = fs::remove_file(link);
            }
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl fmt::Display for Swept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Swept::Dead { addr, holder } => write!(
                f,
                "lease {addr}: its supervisor (pid {}, container {} {}) is gone",
                holder.process.pid, holder.name, holder.id
            ),
            Swept::Unreadable { addr } => write!(f, "lease {addr}: unreadable"),
            Swept::Foreign { addr } => write!(f, "lease {addr}: not a container address here"),
            Swept::Temporary { name } => write!(f, "lease file {name}: unfinished"),
            Swept::Stale6 { addr6 } => {
                write!(f, "lease {addr6}: no record holds this IPv6 address")
            }
        }
    }
}

/// A lease file's text: a regular file's alone (see `file::read_regular`),
/// so a FIFO or device among the leases cannot hang or flood a run.
fn read_text(path: impl AsRef<Path>) -> std::io::Result<String> {
    String::from_utf8(file::read_regular(path.as_ref())?)
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(text: &str) -> Subnet {
        text.parse().unwrap()
    }

    /// A live holder: this test process.
    fn holder(name: &str) -> Holder {
        Holder::this_process(name, &format!("{name}-id")).unwrap()
    }

    /// A holder whose supervisor is gone: this process's pid with another
    /// start time, as after a reuse.
    fn dead_holder(name: &str) -> Holder {
        let mut holder = holder(name);
        holder.process.start_time += 1;
        holder
    }

    /// Writes a lease file as a supervisor that died since would have.
    fn plant(pool: &Pool, addr: Ipv4Addr, holder: &Holder) {
        fs::create_dir_all(pool.dir()).unwrap();
        fs::write(
            pool.dir().join(addr.to_string()),
            holder.to_record().unwrap(),
        )
        .unwrap();
    }

    fn temp_dir(test: &str) -> PathBuf {
        crate::scratch::unique_path(&format!("ipam-{test}"))
    }

    #[test]
    fn holder_record_round_trips_and_refuses_line_breaks() {
        let h = holder("web");
        assert_eq!(Holder::from_record(&h.to_record().unwrap()), Some(h));
        let mut bad = holder("web");
        bad.name = "a\nb".into();
        assert!(matches!(
            bad.to_record(),
            Err(Error::BadHolder { field: "name", .. })
        ));
        assert_eq!(Holder::from_record("name=x\n"), None);
    }

    #[test]
    fn own_start_time_is_readable() {
        let h = Holder::this_process("c", "id").unwrap();
        assert_eq!(h.process.pid, std::process::id());
        assert!(h.process.start_time > 0);
    }

    #[test]
    fn a_bridge_serves_one_mode_while_it_holds_leases_then_either() {
        let dir = temp_dir("modes");
        let bridge = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let routed = bridge.clone().with_routed(true);
        let a = bridge.lease(None, None, &holder("a")).unwrap();
        let err = routed.lease(None, None, &holder("r")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bridge sv0 serves a bridge-mode network (its leases are held), so it cannot \
             serve a routed-mode one: give the network another bridge"
        );
        a.release().unwrap();
        let r = routed.lease(None, None, &holder("r")).unwrap();
        assert!(bridge.dir().join(ROUTED).exists());
        let err = bridge.lease(None, None, &holder("b")).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ModeTaken {
                    serves: "routed",
                    asked: "bridge",
                    ..
                }
            ),
            "{err}"
        );
        // Another routed lease passes the mark; once none is held, the
        // bridge mode takes the directory back.
        routed
            .lease(None, None, &holder("r2"))
            .unwrap()
            .release()
            .unwrap();
        r.release().unwrap();
        bridge
            .lease(None, None, &holder("b"))
            .unwrap()
            .release()
            .unwrap();
        assert!(!bridge.dir().join(ROUTED).exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn addresses_go_round_robin_and_a_just_freed_one_is_not_handed_out_next() {
        let dir = temp_dir("round-robin");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let a = pool.lease(None, None, &holder("a")).unwrap();
        let b = pool.lease(None, None, &holder("b")).unwrap();
        assert_eq!(a.addr(), Ipv4Addr::new(172, 16, 0, 2));
        assert_eq!(b.addr(), Ipv4Addr::new(172, 16, 0, 3));
        a.release().unwrap();
        let c = pool.lease(None, None, &holder("c")).unwrap();
        assert_eq!(c.addr(), Ipv4Addr::new(172, 16, 0, 4));
        c.release().unwrap();
        let d = pool.lease(None, None, &holder("d")).unwrap();
        assert_eq!(d.addr(), Ipv4Addr::new(172, 16, 0, 5));
        let leases = pool.leases().unwrap();
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[1].1.as_ref().unwrap().name, "d");
        drop((b, d));
        assert!(pool.leases().unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_hint_link_is_not_written_through_nor_a_fifo_lease_read() {
        let dir = temp_dir("planted");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let leases = dir.join("leases/sv0");
        fs::create_dir_all(&leases).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, leases.join(LAST)).unwrap();
        let fifo = leases.join("172.16.0.2");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let lease = pool.lease(None, None, &holder("a")).unwrap();
            // Every lease read, as `ps`, `gc` and a dry run read them.
            let _ = tx.send((lease.addr(), pool.leases().unwrap().len()));
        });
        let (leased, listed) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the lease or the listing never ended: it read the FIFO");
        assert_eq!((leased, listed), (Ipv4Addr::new(172, 16, 0, 3), 2));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_search_wraps_past_the_subnets_end_to_its_first_free_address() {
        let dir = temp_dir("wrap");
        let pool = Pool::new(&dir, "sv0", subnet("10.9.0.0/29")).unwrap();
        let held = pool.lease(None, None, &holder("a")).unwrap();
        assert_eq!(held.addr(), Ipv4Addr::new(10, 9, 0, 2));
        // As if .3 to .5 had been handed out (and given back) since.
        fs::write(dir.join("leases/sv0/.last"), "10.9.0.5\n").unwrap();
        // .6 is the last container address (.7 is the broadcast) ...
        let last = pool.lease(None, None, &holder("b")).unwrap();
        assert_eq!(last.addr(), Ipv4Addr::new(10, 9, 0, 6));
        // ... then back to the start, past .2, which is held.
        let next = pool.lease(None, None, &holder("c")).unwrap();
        assert_eq!(next.addr(), Ipv4Addr::new(10, 9, 0, 3));
        drop((held, last, next));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_or_foreign_hint_only_restarts_the_search_at_the_first_address() {
        let dir = temp_dir("bad-hint");
        let pool = Pool::new(&dir, "sv0", subnet("10.9.0.0/24")).unwrap();
        for (hint, want) in [
            ("garbage\0", [10, 9, 0, 2]),
            ("10.9.0.", [10, 9, 0, 2]),
            ("192.168.1.9", [10, 9, 0, 2]),
            ("10.9.0.255", [10, 9, 0, 2]),
            ("10.9.0.1", [10, 9, 0, 2]),
            ("10.9.0.40", [10, 9, 0, 41]),
        ] {
            fs::create_dir_all(dir.join("leases/sv0")).unwrap();
            fs::write(dir.join("leases/sv0/.last"), hint).unwrap();
            let lease = pool.lease(None, None, &holder("a")).unwrap();
            assert_eq!(lease.addr(), Ipv4Addr::from(want), "hint {hint:?}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_hint_written_over_a_longer_file_reads_as_the_new_address_alone() {
        let dir = temp_dir("long-hint");
        let pool = Pool::new(&dir, "sv0", subnet("10.9.0.0/24")).unwrap();
        fs::create_dir_all(dir.join("leases/sv0")).unwrap();
        // Longer than any hint is: an older layout's, or planted.
        let long = "10.9.0.200\nand more than any hint holds\n";
        fs::write(dir.join("leases/sv0/.last"), long).unwrap();
        let lease = pool.lease(None, None, &holder("a")).unwrap();
        assert_eq!(lease.addr(), Ipv4Addr::new(10, 9, 0, 2));
        let leases = LeaseDir::new(&dir, "sv0").unwrap();
        assert_eq!(leases.last_handed_out(), Some(Ipv4Addr::new(10, 9, 0, 2)));
        drop(lease);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_crowded_run_after_the_hint_still_finds_the_one_free_address() {
        let dir = temp_dir("crowded");
        let pool = Pool::new(&dir, "sv0", subnet("10.9.0.0/24")).unwrap();
        // Everything but .200 is held: far more than the probes after the hint.
        for last in 2..=254u8 {
            if last != 200 {
                plant(&pool, Ipv4Addr::new(10, 9, 0, last), &holder("x"));
            }
        }
        let lease = pool.lease(None, None, &holder("y")).unwrap();
        assert_eq!(lease.addr(), Ipv4Addr::new(10, 9, 0, 200));
        assert!(matches!(
            pool.lease(None, None, &holder("z")),
            Err(Error::Exhausted { .. })
        ));
        drop(lease);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pinned_address_is_honoured_and_does_not_move_the_round_robin() {
        let dir = temp_dir("pin-order");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let a = pool.lease(None, None, &holder("a")).unwrap();
        let pinned = pool
            .lease(Some(Ipv4Addr::new(172, 16, 0, 3)), None, &holder("p"))
            .unwrap();
        let far = pool
            .lease(Some(Ipv4Addr::new(172, 16, 0, 90)), None, &holder("f"))
            .unwrap();
        assert_eq!(pinned.addr(), Ipv4Addr::new(172, 16, 0, 3));
        // After .2 comes .3, pinned: skipped; .90 did not become the hint.
        let b = pool.lease(None, None, &holder("b")).unwrap();
        assert_eq!(b.addr(), Ipv4Addr::new(172, 16, 0, 4));
        pinned.release().unwrap();
        drop((a, far, b));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_allocators_churning_at_once_never_hold_the_same_address() {
        let dir = temp_dir("churn");
        let pool = Pool::new(&dir, "sv0", subnet("10.9.0.0/27")).unwrap();
        let held = std::sync::Mutex::new(BTreeSet::new());
        std::thread::scope(|s| {
            for t in 0..2 {
                let (pool, held) = (&pool, &held);
                s.spawn(move || {
                    let mut mine = std::collections::VecDeque::new();
                    for i in 0..300 {
                        let lease = pool
                            .lease(None, None, &holder(&format!("t{t}-{i}")))
                            .unwrap();
                        assert!(
                            held.lock().unwrap().insert(lease.addr()),
                            "{}",
                            lease.addr()
                        );
                        mine.push_back(lease);
                        if mine.len() > 6 {
                            let old = mine.pop_front().unwrap();
                            held.lock().unwrap().remove(&old.addr());
                            old.release().unwrap();
                        }
                    }
                    // Out of the set before the files go, as above.
                    let mut set = held.lock().unwrap();
                    for lease in mine {
                        set.remove(&lease.addr());
                        lease.release().unwrap();
                    }
                });
            }
        });
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lease_handed_over_to_a_process_is_reclaimed_once_that_process_is_dead() {
        let dir = temp_dir("hand_over");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let mut until_released = holder("cni");
        until_released.process = Process::UNTIL_RELEASED;
        let lease = pool.lease(None, None, &until_released).unwrap();
        let addr = lease.addr();
        lease.keep();
        let dead = dead_holder("x").process;
        let leases = pool.lease_dir();
        assert!(!leases.hand_over(addr, "other-id", dead).unwrap());
        assert_eq!(pool.leases().unwrap()[0].1, Some(until_released.clone()));
        // Held until released: no later lease takes it.
        let only = Pool::new(&dir, "sv0", subnet("172.16.0.0/30")).unwrap();
        assert!(only.lease(Some(addr), None, &holder("y")).is_err());
        assert!(leases.hand_over(addr, "cni-id", dead).unwrap());
        let taken = only.lease(Some(addr), None, &holder("y")).unwrap();
        assert_eq!(taken.reclaimed().map(|h| h.name.as_str()), Some("cni"));
        drop(taken);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_kept_lease_of_a_cni_attachment_names_the_attachment_not_a_supervisor() {
        let kept = |process| Kept {
            addr: Ipv4Addr::new(172, 16, 0, 50),
            subnet: subnet("10.1.0.0/24"),
            holder: Holder {
                name: "c1:eth0".to_string(),
                id: "0123456789ab".to_string(),
                process,
            },
        };
        assert_eq!(
            kept(Process::UNTIL_RELEASED).to_string(),
            "lease 172.16.0.50: outside 10.1.0.0/24, but CNI attachment c1:eth0 0123456789ab \
             holds it until its engine's DEL"
        );
        let running = Process {
            pid: 42,
            start_time: 7,
        };
        assert_eq!(
            kept(running).to_string(),
            "lease 172.16.0.50: outside 10.1.0.0/24, but its supervisor (pid 42, container \
             c1:eth0 0123456789ab) is alive"
        );
    }

    #[test]
    fn pinning_a_taken_address_fails_naming_its_holder() {
        let dir = temp_dir("pin");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let want = Ipv4Addr::new(172, 16, 0, 30);
        let held = pool.lease(Some(want), None, &holder("web")).unwrap();
        assert_eq!(held.addr(), want);
        let err = pool.lease(Some(want), None, &holder("other")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("address 172.16.0.30 is in use by container web (id web-id"),
            "{err}"
        );
        // The lowest free address skips nothing but the pinned one.
        assert_eq!(
            pool.lease(None, None, &holder("x")).unwrap().addr(),
            Ipv4Addr::new(172, 16, 0, 2)
        );
        held.release().unwrap();
        pool.lease(Some(want), None, &holder("other"))
            .unwrap()
            .release()
            .unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pinning_outside_the_subnet_changes_nothing() {
        let dir = temp_dir("outside");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let err = pool
            .lease(Some(Ipv4Addr::new(10, 0, 0, 2)), None, &holder("a"))
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Address(AddressError::OutsideSubnet { .. })
        ));
        assert!(!dir.exists());
    }

    #[test]
    fn a_full_subnet_is_reported() {
        let dir = temp_dir("full");
        let pool = Pool::new(&dir, "sv0", subnet("10.9.0.0/30")).unwrap();
        let _only = pool.lease(None, None, &holder("a")).unwrap();
        let err = pool.lease(None, None, &holder("b")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no free address left in 10.9.0.0/30 on bridge sv0"
        );
        drop(_only);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fifty_concurrent_leases_get_fifty_distinct_addresses() {
        let dir = temp_dir("fifty");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let leases: Vec<Lease> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..50)
                .map(|i| {
                    let pool = &pool;
                    s.spawn(move || pool.lease(None, None, &holder(&format!("c{i}"))).unwrap())
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let distinct: BTreeSet<_> = leases.iter().map(Lease::addr).collect();
        assert_eq!(distinct.len(), 50);
        assert_eq!(*distinct.last().unwrap(), Ipv4Addr::new(172, 16, 0, 51));
        for lease in leases {
            lease.release().unwrap();
        }
        assert!(pool.leases().unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pinned_address_of_a_dead_supervisor_is_taken_over_naming_it() {
        let dir = temp_dir("takeover");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let want = Ipv4Addr::new(172, 16, 0, 30);
        plant(&pool, want, &dead_holder("old"));
        let lease = pool.lease(Some(want), None, &holder("new")).unwrap();
        assert_eq!(lease.addr(), want);
        assert_eq!(lease.reclaimed().map(|h| h.name.as_str()), Some("old"));
        assert_eq!(pool.leases().unwrap()[0].1.as_ref().unwrap().name, "new");
        lease.release().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dead_supervisors_address_is_reused_only_when_none_is_free() {
        let dir = temp_dir("reuse");
        let pool = Pool::new(&dir, "sv0", subnet("10.9.0.0/29")).unwrap();
        let first = Ipv4Addr::new(10, 9, 0, 2);
        plant(&pool, first, &dead_holder("old"));
        let mut held: Vec<Lease> = (0..4)
            .map(|i| pool.lease(None, None, &holder(&format!("c{i}"))).unwrap())
            .collect();
        assert!(
            held.iter()
                .all(|l| l.addr() != first && l.reclaimed().is_none())
        );
        let last = pool.lease(None, None, &holder("last")).unwrap();
        assert_eq!(last.addr(), first);
        assert!(last.reclaimed().is_some());
        held.push(last);
        assert!(matches!(
            pool.lease(None, None, &holder("more")),
            Err(Error::Exhausted { .. })
        ));
        drop(held);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sweep_removes_dead_unreadable_foreign_and_unfinished_leases_only() {
        let dir = temp_dir("sweep");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let live = pool.lease(None, None, &holder("live")).unwrap();
        let dead = Ipv4Addr::new(172, 16, 0, 9);
        plant(&pool, dead, &dead_holder("dead"));
        fs::write(dir.join("leases/sv0/172.16.0.10"), "garbage\0\n").unwrap();
        plant(&pool, Ipv4Addr::new(10, 0, 0, 5), &dead_holder("foreign"));
        fs::write(dir.join("leases/sv0/.172.16.0.11.tmp"), "half").unwrap();
        fs::write(dir.join("leases/sv0/README"), "a stranger").unwrap();
        let swept: Vec<String> = pool
            .sweep()
            .unwrap()
            .removed
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(swept.len(), 4, "{swept:?}");
        assert!(
            swept
                .iter()
                .any(|s| s.starts_with("lease 172.16.0.9: its supervisor (pid ")
                    && s.ends_with(", container dead dead-id) is gone")),
            "{swept:?}"
        );
        for expected in [
            "lease 172.16.0.10: unreadable",
            "lease 10.0.0.5: not a container address here",
            "lease file .172.16.0.11.tmp: unfinished",
        ] {
            assert!(swept.contains(&expected.to_string()), "{swept:?}");
        }
        let left: Vec<_> = pool.leases().unwrap().into_iter().map(|(a, _)| a).collect();
        assert_eq!(left, [live.addr()]);
        assert!(dir.join("leases/sv0/README").exists());
        assert_eq!(pool.sweep().unwrap(), Sweep::default());
        live.release().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_sweep_keeps_the_dead_holders_leases_it_is_told_to_spare() {
        let dir = temp_dir("sweep-spared");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let kept = Ipv4Addr::new(172, 16, 0, 9);
        plant(&pool, kept, &dead_holder("veth-left"));
        let gone = Ipv4Addr::new(172, 16, 0, 10);
        plant(&pool, gone, &dead_holder("dead"));
        let sweep = pool
            .sweep_sparing(|holder| holder.name == "veth-left")
            .unwrap();
        assert_eq!(sweep.removed.len(), 1, "{:?}", sweep.removed);
        let left: Vec<_> = pool.leases().unwrap().into_iter().map(|(a, _)| a).collect();
        assert_eq!(left, [kept]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sweeping_another_subnet_keeps_and_reports_live_leases() {
        let dir = temp_dir("sweep-other");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let live = pool.lease(None, None, &holder("web")).unwrap();
        let dead = Ipv4Addr::new(172, 16, 0, 9);
        plant(&pool, dead, &dead_holder("old"));
        let other = Pool::new(&dir, "sv0", subnet("10.1.0.0/24")).unwrap();
        let sweep = other.sweep().unwrap();
        assert_eq!(sweep.removed, [Swept::Foreign { addr: dead }]);
        assert_eq!(sweep.kept.len(), 1);
        assert_eq!(sweep.kept[0].addr, live.addr());
        let kept = sweep.kept[0].to_string();
        assert!(
            kept.starts_with("lease 172.16.0.2: outside 10.1.0.0/24, but its supervisor (pid ")
                && kept.ends_with(", container web web-id) is alive"),
            "{kept}"
        );
        // Still held: pinning it fails, naming its holder.
        assert!(matches!(
            pool.lease(Some(live.addr()), None, &holder("second")),
            Err(Error::Taken { .. })
        ));
        live.release().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn release_held_by_removes_only_that_containers_leases() {
        let dir = temp_dir("held-by");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let a = Ipv4Addr::new(172, 16, 0, 5);
        plant(&pool, a, &dead_holder("x"));
        plant(&pool, Ipv4Addr::new(172, 16, 0, 6), &dead_holder("x"));
        plant(&pool, Ipv4Addr::new(172, 16, 0, 7), &dead_holder("y"));
        assert!(!pool.lease_dir().release_held_by(a, "y-id").unwrap());
        assert!(pool.lease_dir().release_held_by(a, "x-id").unwrap());
        assert_eq!(
            pool.lease_dir().release_all_held_by("x-id").unwrap(),
            [Ipv4Addr::new(172, 16, 0, 6)]
        );
        assert_eq!(pool.leases().unwrap().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The lease directory's names, the lock aside.
    fn names(dir: &Path) -> Vec<String> {
        let mut names = file::names(&dir.join("leases/sv0")).unwrap();
        names.retain(|n| n != ".lock" && n != ".last");
        names
    }

    fn dual_stack(dir: &Path) -> Pool {
        Pool::new(dir, "sv0", subnet("172.16.0.0/24"))
            .unwrap()
            .with_subnet6(Some("fd53:7570:6572::/64".parse().unwrap()))
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn a_dual_stack_lease_handed_over_keeps_its_ipv6_address_and_its_release_removes_the_link() {
        let dir = temp_dir("v6-hand-over");
        let pool = dual_stack(&dir);
        let a = pool.lease(None, None, &holder("a")).unwrap();
        let (addr, addr6) = (a.addr(), a.addr6());
        a.keep();
        let dir6 = pool.lease_dir();
        assert!(
            dir6.hand_over(addr, "a-id", Process::UNTIL_RELEASED)
                .unwrap()
        );
        assert_eq!(dir6.addr6_of(addr), addr6);
        assert!(dir6.release_held_by(addr, "a-id").unwrap());
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dual_stack_lease_holds_the_derived_ipv6_address_in_the_same_record() {
        let dir = temp_dir("v6-derived");
        let pool = dual_stack(&dir);
        let a = pool.lease(None, None, &holder("a")).unwrap();
        assert_eq!(a.addr(), Ipv4Addr::new(172, 16, 0, 2));
        assert_eq!(a.addr6(), Some(v6("fd53:7570:6572::2")));
        let record = read_text(a.path()).unwrap();
        assert!(record.ends_with("addr6=fd53:7570:6572::2\n"), "{record}");
        assert_eq!(Holder::from_record(&record).unwrap().name, "a");
        assert_eq!(pool.lease_dir().addr6_of(a.addr()), a.addr6());
        // The link is no lease: listing skips it.
        assert_eq!(pool.leases().unwrap().len(), 1);
        a.release().unwrap();
        assert!(names(&dir).is_empty());
        // IPv4 only: no addr6, no link.
        let plain = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let b = plain.lease(None, None, &holder("b")).unwrap();
        assert_eq!(b.addr6(), None);
        assert_eq!(names(&dir), [b.addr().to_string()]);
        drop(b);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pinned_ipv6_address_is_refused_to_another_and_its_ipv4_twin_is_skipped() {
        let dir = temp_dir("v6-pinned");
        let pool = dual_stack(&dir);
        let pinned = pool
            .lease(None, Some(v6("fd53:7570:6572::3")), &holder("web"))
            .unwrap();
        assert_eq!(pinned.addr(), Ipv4Addr::new(172, 16, 0, 2));
        assert_eq!(pinned.addr6(), Some(v6("fd53:7570:6572::3")));
        let err = pool
            .lease(None, Some(v6("fd53:7570:6572::3")), &holder("other"))
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "IPv6 address fd53:7570:6572::3 is in use by container web (id web-id"
            ),
            "{err}"
        );
        // 172.16.0.3 would derive the pinned address: the next one is taken.
        let next = pool.lease(None, None, &holder("next")).unwrap();
        assert_eq!(next.addr(), Ipv4Addr::new(172, 16, 0, 4));
        assert_eq!(next.addr6(), Some(v6("fd53:7570:6572::4")));
        let err = pool
            .lease(Some(Ipv4Addr::new(172, 16, 0, 3)), None, &holder("twin"))
            .unwrap_err();
        assert!(matches!(err, Error::Taken6 { .. }), "{err}");
        // Outside subnet6 or its gateway: refused before anything is written.
        assert!(matches!(
            pool.lease(None, Some(v6("fd00::5")), &holder("x")),
            Err(Error::Address6(Address6Error::OutsideSubnet { .. }))
        ));
        assert!(matches!(
            pool.lease(None, Some(v6("fd53:7570:6572::1")), &holder("x")),
            Err(Error::Address6(Address6Error::Reserved { .. }))
        ));
        pinned.release().unwrap();
        let twin = pool
            .lease(Some(Ipv4Addr::new(172, 16, 0, 3)), None, &holder("twin"))
            .unwrap();
        assert_eq!(twin.addr6(), Some(v6("fd53:7570:6572::3")));
        drop((next, twin));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dead_holders_ipv6_address_is_taken_over_and_swept_links_go() {
        let dir = temp_dir("v6-dead");
        let pool = dual_stack(&dir);
        let old = pool
            .lease(None, Some(v6("fd53:7570:6572::99")), &holder("old"))
            .unwrap();
        // Its supervisor dies: the record says so, the files stay.
        let path = old.path().to_path_buf();
        old.keep();
        let record = read_text(&path).unwrap();
        let mut dead = dead_holder("old").to_record().unwrap();
        dead.push_str("addr6=fd53:7570:6572::99\n");
        assert!(record.ends_with("addr6=fd53:7570:6572::99\n"));
        fs::write(&path, dead).unwrap();
        let new = pool
            .lease(None, Some(v6("fd53:7570:6572::99")), &holder("new"))
            .unwrap();
        assert_eq!(new.reclaimed().map(|h| h.name.as_str()), Some("old"));
        assert_eq!(new.addr(), Ipv4Addr::new(172, 16, 0, 3));
        // The old record is swept; the link, now the new lease's, stays.
        let swept: Vec<String> = pool
            .sweep()
            .unwrap()
            .removed
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert!(dir.join("leases/sv0/fd53:7570:6572::99").is_symlink());
        // A link whose record is gone is stale: swept.
        new.keep();
        fs::remove_file(dir.join("leases/sv0/172.16.0.3")).unwrap();
        assert_eq!(
            pool.sweep().unwrap().removed,
            [Swept::Stale6 {
                addr6: v6("fd53:7570:6572::99")
            }]
        );
        assert!(names(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn releasing_a_containers_leases_by_id_takes_their_ipv6_links_too() {
        let dir = temp_dir("v6-held-by");
        let pool = dual_stack(&dir);
        pool.lease(None, None, &holder("x")).unwrap().keep();
        pool.lease(None, Some(v6("fd53:7570:6572::77")), &holder("x"))
            .unwrap()
            .keep();
        assert_eq!(names(&dir).len(), 4);
        assert_eq!(
            pool.lease_dir().release_all_held_by("x-id").unwrap().len(),
            2
        );
        assert!(names(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_without_an_ipv6_address_still_read_on_a_dual_stack_bridge() {
        let dir = temp_dir("v6-old");
        let pool = dual_stack(&dir);
        // As an IPv4-only run, or an older version, writes it.
        plant(&pool, Ipv4Addr::new(172, 16, 0, 2), &holder("old"));
        assert_eq!(
            pool.lease_dir().addr6_of(Ipv4Addr::new(172, 16, 0, 2)),
            None
        );
        let new = pool.lease(None, None, &holder("new")).unwrap();
        assert_eq!(new.addr(), Ipv4Addr::new(172, 16, 0, 3));
        assert_eq!(new.addr6(), Some(v6("fd53:7570:6572::3")));
        let leases = pool.leases().unwrap();
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[0].1.as_ref().unwrap().name, "old");
        assert_eq!(pool.sweep().unwrap(), Sweep::default());
        drop(new);
        fs::remove_dir_all(&dir).unwrap();
    }
}
