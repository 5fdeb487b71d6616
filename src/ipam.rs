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

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::fcntl::{Flock, FlockArg};

/// An IPv4 subnet for containers: the network address and prefix length.
/// The first address is the gateway (the bridge's address); the network and
/// broadcast addresses are never leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix_len: u8,
}

/// Why a `--subnet` value is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubnetError {
    #[error("invalid subnet {0:?}: expected an IPv4 network like 172.16.0.0/24")]
    Syntax(String),
    #[error(
        "invalid subnet {text:?}: prefix /{prefix_len} leaves no container addresses (use /1 to /30)"
    )]
    PrefixLength { text: String, prefix_len: u8 },
    #[error("invalid subnet {text:?}: host bits set, did you mean {network}/{prefix_len}?")]
    HostBits {
        text: String,
        network: Ipv4Addr,
        prefix_len: u8,
    },
}

/// Why an address cannot be pinned with `--ip`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("{0:?} is not an IPv4 address (like 172.16.0.30)")]
    Syntax(String),
    #[error("address {addr} is outside the subnet {subnet}")]
    OutsideSubnet { addr: Ipv4Addr, subnet: Subnet },
    #[error("address {addr} is the {role} address of {subnet}, not a container address")]
    Reserved {
        addr: Ipv4Addr,
        role: &'static str,
        subnet: Subnet,
    },
}

impl Subnet {
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<Subnet, SubnetError> {
        let text = format!("{network}/{prefix_len}");
        if !(1..=30).contains(&prefix_len) {
            return Err(SubnetError::PrefixLength { text, prefix_len });
        }
        let masked = Ipv4Addr::from(network.to_bits() & mask(prefix_len));
        if masked != network {
            return Err(SubnetError::HostBits {
                text,
                network: masked,
                prefix_len,
            });
        }
        Ok(Subnet {
            network,
            prefix_len,
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The bridge's address: the subnet's first address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network.to_bits() + 1)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network.to_bits() | !mask(self.prefix_len))
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        addr.to_bits() & mask(self.prefix_len) == self.network.to_bits()
    }

    /// True when the two prefixes share at least one address.
    pub fn overlaps(&self, network: Ipv4Addr, prefix_len: u8) -> bool {
        let shorter = self.prefix_len.min(prefix_len);
        (self.network.to_bits() ^ network.to_bits()) & mask(shorter) == 0
    }

    /// Checks that `addr` may be given to a container.
    pub fn check_container_address(&self, addr: Ipv4Addr) -> Result<(), AddressError> {
        let reserved = |role| AddressError::Reserved {
            addr,
            role,
            subnet: *self,
        };
        if !self.contains(addr) {
            Err(AddressError::OutsideSubnet {
                addr,
                subnet: *self,
            })
        } else if addr == self.network {
            Err(reserved("network"))
        } else if addr == self.gateway() {
            Err(reserved("gateway"))
        } else if addr == self.broadcast() {
            Err(reserved("broadcast"))
        } else {
            Ok(())
        }
    }

    /// Parses a `--ip` value and checks it belongs to this subnet.
    pub fn parse_container_address(&self, text: &str) -> Result<Ipv4Addr, AddressError> {
        let addr: Ipv4Addr = text
            .parse()
            .map_err(|_| AddressError::Syntax(text.to_string()))?;
        self.check_container_address(addr)?;
        Ok(addr)
    }

    /// Container addresses in increasing order: after the gateway, before the
    /// broadcast address.
    fn container_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        (self.gateway().to_bits() + 1..self.broadcast().to_bits()).map(Ipv4Addr::from)
    }
}

fn mask(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(text: &str) -> Result<Subnet, SubnetError> {
        let syntax = || SubnetError::Syntax(text.to_string());
        let (addr, len) = text.split_once('/').ok_or_else(syntax)?;
        let network: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        // Only plain decimal: `u8::from_str` would also take "+24".
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix_len: u8 = len.parse().map_err(|_| syntax())?;
        Subnet::new(network, prefix_len).map_err(|err| match err {
            SubnetError::PrefixLength { prefix_len, .. } => SubnetError::PrefixLength {
                text: text.to_string(),
                prefix_len,
            },
            SubnetError::HostBits {
                network,
                prefix_len,
                ..
            } => SubnetError::HostBits {
                text: text.to_string(),
                network,
                prefix_len,
            },
            other => other,
        })
    }
}

/// Who holds a lease: the container and the supervisor process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub id: String,
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`: with `pid`, names one process for good.
    pub pid_start: u64,
}

impl Holder {
    /// The calling process as the holder for container `name` / `id`.
    pub fn this_process(name: &str, id: &str) -> Result<Holder, Error> {
        let pid = std::process::id();
        let pid_start = process_start_time(pid).map_err(|source| Error::Io {
            path: PathBuf::from(format!("/proc/{pid}/stat")),
            source,
        })?;
        Ok(Holder {
            name: name.to_string(),
            id: id.to_string(),
            pid,
            pid_start,
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
            self.name, self.id, self.pid, self.pid_start
        ))
    }

    fn from_record(text: &str) -> Option<Holder> {
        let (mut name, mut id, mut pid, mut pid_start) = (None, None, None, None);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            match line.split_once('=')? {
                ("name", v) => name = Some(v.to_string()),
                ("id", v) => id = Some(v.to_string()),
                ("pid", v) => pid = v.parse().ok(),
                ("pid_start", v) => pid_start = v.parse().ok(),
                // Fields added by later versions are kept for them.
                _ => {}
            }
        }
        Some(Holder {
            name: name?,
            id: id?,
            pid: pid?,
            pid_start: pid_start?,
        })
    }
}

/// The start time of process `pid`: field 22 of `/proc/PID/stat`.
pub fn process_start_time(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its closing parenthesis, which starts field 3.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(22 - 3))
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected /proc/PID/stat format",
            )
        })
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("address {addr} is in use by container {} (id {}, supervisor pid {})", holder.name, holder.id, holder.pid)]
    Taken { addr: Ipv4Addr, holder: Holder },
    #[error("address {addr} is in use (unreadable lease {path})")]
    TakenUnreadable { addr: Ipv4Addr, path: PathBuf },
    #[error("no free address left in {subnet} on bridge {bridge}")]
    Exhausted { subnet: Subnet, bridge: String },
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("lease holder {field} {value:?} is empty or has a line break")]
    BadHolder { field: &'static str, value: String },
    #[error("bridge name {0:?} cannot name a lease directory")]
    BadBridge(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// The leases of one bridge's subnet.
#[derive(Debug, Clone)]
pub struct Pool {
    dir: PathBuf,
    bridge: String,
    subnet: Subnet,
}

/// A leased address. Release it with [`Lease::release`]; dropping it
/// releases it too, silently.
#[derive(Debug)]
pub struct Lease {
    addr: Ipv4Addr,
    path: PathBuf,
    released: bool,
}

impl Pool {
    /// The pool of `subnet` on `bridge`, kept under `state_dir`. Touches nothing.
    pub fn new(state_dir: &Path, bridge: &str, subnet: Subnet) -> Result<Pool, Error> {
        if bridge.is_empty() || bridge.starts_with('.') || bridge.contains(['/', '\0']) {
            return Err(Error::BadBridge(bridge.to_string()));
        }
        Ok(Pool {
            dir: state_dir.join("leases").join(bridge),
            bridge: bridge.to_string(),
            subnet,
        })
    }

    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Leases `want` when given (it must be a container address of the
    /// subnet and free), else the lowest free address.
    pub fn lease(&self, want: Option<Ipv4Addr>, holder: &Holder) -> Result<Lease, Error> {
        if let Some(addr) = want {
            self.subnet.check_container_address(addr)?;
        }
        let record = holder.to_record()?;
        let _lock = self.lock()?;
        let addr = match want {
            Some(addr) => {
                if let Some(err) = self.taken(addr) {
                    return Err(err);
                }
                addr
            }
            None => self.lowest_free()?,
        };
        let path = self.dir.join(addr.to_string());
        let tmp = self.dir.join(format!(".{addr}.tmp"));
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        write_file(&tmp, record.as_bytes()).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(Lease {
            addr,
            path,
            released: false,
        })
    }

    /// Every current lease, in address order.
    pub fn leases(&self) -> Result<Vec<(Ipv4Addr, Option<Holder>)>, Error> {
        let mut out = Vec::new();
        for addr in self.leased_addresses()? {
            let text = fs::read_to_string(self.dir.join(addr.to_string())).ok();
            out.push((addr, text.as_deref().and_then(Holder::from_record)));
        }
        Ok(out)
    }

    fn lock(&self) -> Result<Flock<File>, Error> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let path = self.dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Error::Io {
            path,
            source: errno.into(),
        })
    }

    /// The error for a held address, None when it is free.
    fn taken(&self, addr: Ipv4Addr) -> Option<Error> {
        let path = self.dir.join(addr.to_string());
        match fs::read_to_string(&path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Ok(text) => Some(match Holder::from_record(&text) {
                Some(holder) => Error::Taken { addr, holder },
                None => Error::TakenUnreadable { addr, path },
            }),
            Err(_) => Some(Error::TakenUnreadable { addr, path }),
        }
    }

    fn lowest_free(&self) -> Result<Ipv4Addr, Error> {
        let leased = self.leased_addresses()?;
        self.subnet
            .container_addresses()
            .find(|addr| !leased.contains(addr))
            .ok_or_else(|| Error::Exhausted {
                subnet: self.subnet,
                bridge: self.bridge.clone(),
            })
    }

    fn leased_addresses(&self) -> Result<BTreeSet<Ipv4Addr>, Error> {
        let entries = match fs::read_dir(&self.dir) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            other => other.map_err(|source| Error::Io {
                path: self.dir.clone(),
                source,
            })?,
        };
        let mut leased = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: self.dir.clone(),
                source,
            })?;
            // Dot files (the lock, temporaries) and strangers are not leases.
            if let Some(addr) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                leased.insert(addr);
            }
        }
        Ok(leased)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)
}

impl Lease {
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the address back. Nobody else writes a held lease, so removing
    /// the file needs no lock.
    pub fn release(mut self) -> Result<(), Error> {
        self.released = true;
        match fs::remove_file(&self.path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(Error::Io {
                path: self.path.clone(),
                source: err,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(text: &str) -> Subnet {
        text.parse().unwrap()
    }

    fn holder(name: &str) -> Holder {
        Holder {
            name: name.to_string(),
            id: format!("{name}-id"),
            pid: std::process::id(),
            pid_start: 42,
        }
    }

    fn temp_dir(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("supervisor-ipam-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn subnet_gives_gateway_broadcast_and_containment() {
        let s = subnet("172.16.0.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(172, 16, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(172, 16, 0, 255));
        assert!(s.contains(Ipv4Addr::new(172, 16, 0, 200)));
        assert!(!s.contains(Ipv4Addr::new(172, 16, 1, 1)));
        assert_eq!(s.to_string(), "172.16.0.0/24");
        let first: Vec<_> = s.container_addresses().take(2).collect();
        assert_eq!(
            first,
            [Ipv4Addr::new(172, 16, 0, 2), Ipv4Addr::new(172, 16, 0, 3)]
        );
        assert_eq!(s.container_addresses().count(), 253);
    }

    #[test]
    fn bad_subnets_are_refused_with_the_reason() {
        assert!(matches!(
            "172.16.0.0".parse::<Subnet>(),
            Err(SubnetError::Syntax(_))
        ));
        assert!(matches!(
            "172.16.0.0/+24".parse::<Subnet>(),
            Err(SubnetError::Syntax(_))
        ));
        assert!(matches!(
            "300.16.0.0/24".parse::<Subnet>(),
            Err(SubnetError::Syntax(_))
        ));
        assert!(matches!(
            "172.16.0.0/31".parse::<Subnet>(),
            Err(SubnetError::PrefixLength { prefix_len: 31, .. })
        ));
        assert!(matches!(
            "0.0.0.0/0".parse::<Subnet>(),
            Err(SubnetError::PrefixLength { .. })
        ));
        let err = "172.16.0.1/24".parse::<Subnet>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid subnet \"172.16.0.1/24\": host bits set, did you mean 172.16.0.0/24?"
        );
    }

    #[test]
    fn overlap_is_any_shared_address() {
        let s = subnet("172.16.0.0/24");
        assert!(s.overlaps(Ipv4Addr::new(172, 16, 0, 0), 16));
        assert!(s.overlaps(Ipv4Addr::new(172, 16, 0, 128), 25));
        assert!(!s.overlaps(Ipv4Addr::new(172, 16, 1, 0), 24));
        assert!(s.overlaps(Ipv4Addr::UNSPECIFIED, 0));
    }

    #[test]
    fn container_addresses_exclude_network_gateway_and_broadcast() {
        let s = subnet("10.9.0.0/30");
        assert_eq!(
            s.container_addresses().collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 9, 0, 2)]
        );
        for (text, role) in [
            ("10.9.0.0", "network"),
            ("10.9.0.1", "gateway"),
            ("10.9.0.3", "broadcast"),
        ] {
            let err = s.parse_container_address(text).unwrap_err();
            assert!(
                matches!(err, AddressError::Reserved { role: r, .. } if r == role),
                "{err}"
            );
        }
        assert!(matches!(
            s.parse_container_address("10.9.1.2"),
            Err(AddressError::OutsideSubnet { .. })
        ));
        assert!(matches!(
            s.parse_container_address("10.9.0.x"),
            Err(AddressError::Syntax(_))
        ));
        assert_eq!(
            s.parse_container_address("10.9.0.2"),
            Ok(Ipv4Addr::new(10, 9, 0, 2))
        );
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
        assert_eq!(h.pid, std::process::id());
        assert!(h.pid_start > 0);
    }

    #[test]
    fn lowest_free_address_is_leased_and_reused_after_release() {
        let dir = temp_dir("lowest");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let a = pool.lease(None, &holder("a")).unwrap();
        let b = pool.lease(None, &holder("b")).unwrap();
        assert_eq!(a.addr(), Ipv4Addr::new(172, 16, 0, 2));
        assert_eq!(b.addr(), Ipv4Addr::new(172, 16, 0, 3));
        a.release().unwrap();
        let c = pool.lease(None, &holder("c")).unwrap();
        assert_eq!(c.addr(), Ipv4Addr::new(172, 16, 0, 2));
        let leases = pool.leases().unwrap();
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[0].1.as_ref().unwrap().name, "c");
        drop((b, c));
        assert!(pool.leases().unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pinning_a_taken_address_fails_naming_its_holder() {
        let dir = temp_dir("pin");
        let pool = Pool::new(&dir, "sv0", subnet("172.16.0.0/24")).unwrap();
        let want = Ipv4Addr::new(172, 16, 0, 30);
        let held = pool.lease(Some(want), &holder("web")).unwrap();
        assert_eq!(held.addr(), want);
        let err = pool.lease(Some(want), &holder("other")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("address 172.16.0.30 is in use by container web (id web-id"),
            "{err}"
        );
        // The lowest free address skips nothing but the pinned one.
        assert_eq!(
            pool.lease(None, &holder("x")).unwrap().addr(),
            Ipv4Addr::new(172, 16, 0, 2)
        );
        held.release().unwrap();
        pool.lease(Some(want), &holder("other"))
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
            .lease(Some(Ipv4Addr::new(10, 0, 0, 2)), &holder("a"))
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
        let _only = pool.lease(None, &holder("a")).unwrap();
        let err = pool.lease(None, &holder("b")).unwrap_err();
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
                    s.spawn(move || pool.lease(None, &holder(&format!("c{i}"))).unwrap())
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
}
