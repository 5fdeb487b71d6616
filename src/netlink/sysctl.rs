//! The sysctls container networking needs, through /proc/sys. Net sysctls
//! belong to the network namespace of the thread that opens the file.
//!
//! - `net.ipv4.ip_forward=1`: the host routes between the bridge and its
//!   other interfaces (outbound NAT, published ports).
//! - `net.ipv4.conf.BRIDGE.route_localnet=1`, on the bridge only: lets
//!   connections to ports published on 127.0.0.1 be DNATed out of the bridge.
//!   The firewall's raw-priority guard drops 127.0.0.0/8 arriving from
//!   anywhere but `lo` (CVE-2020-8558).
//! - `net.ipv6.conf.IF.disable_ipv6`, `accept_ra`, `autoconf`, `accept_dad`:
//!   IPv6 on one interface, off entirely, or on without taking
//!   configuration from router advertisements (a container's eth0 is
//!   configured by us alone) and without duplicate address detection (its
//!   addresses are ours to give, unique by their leases).
//! - `net.ipv6.conf.all.forwarding=1`: the host routes IPv6 between the
//!   bridge and its other interfaces, when a network is dual stack.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use super::{Error, link, procfs};

/// A sysctl to be set, as a plan holds it and `sysctl -w KEY=VALUE`
/// would set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Dotted, as `sysctl` names it.
    pub key: String,
    /// Its file: not derived from `key`, as a bridge's name may hold dots.
    pub path: String,
    pub value: &'static str,
}

impl Setting {
    /// `net.ipv4.ip_forward=1`.
    pub fn ip_forward() -> Setting {
        Setting {
            key: "net.ipv4.ip_forward".into(),
            path: "/proc/sys/net/ipv4/ip_forward".into(),
            value: "1",
        }
    }

    /// `net.ipv4.conf.BRIDGE.route_localnet=1`.
    pub fn route_localnet(bridge: &str) -> Setting {
        Setting {
            key: format!("net.ipv4.conf.{bridge}.route_localnet"),
            path: format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
            value: "1",
        }
    }

    /// `net.ipv6.conf.all.forwarding=1`.
    pub fn ipv6_forwarding() -> Setting {
        Setting::ipv6_conf("all", "forwarding", true)
    }

    /// `net.ipv6.conf.IFNAME.accept_dad`: 0 makes its addresses usable at
    /// once, the link-local one too.
    pub fn accept_dad(ifname: &str, on: bool) -> Setting {
        Setting::ipv6_conf(ifname, "accept_dad", on)
    }

    /// IPv6 on a container's `ifname`, configured by us alone: on, without
    /// router advertisements, SLAAC or DAD.
    pub fn container_ipv6(ifname: &str) -> Vec<Setting> {
        vec![
            Setting::accept_ra(ifname, false),
            Setting::autoconf(ifname, false),
            Setting::accept_dad(ifname, false),
            Setting::disable_ipv6(ifname, false),
        ]
    }

    /// IPv6 on a container's `ifname` (or `default`, which an interface
    /// takes when it is created): as [`Setting::container_ipv6`] with
    /// `ipv6`, off without.
    pub fn peer_ipv6(ifname: &str, ipv6: bool) -> Vec<Setting> {
        if ipv6 {
            Setting::container_ipv6(ifname)
        } else {
            vec![Setting::disable_ipv6(ifname, true)]
        }
    }

    /// `net.ipv6.conf.IFNAME.disable_ipv6`: 1 turns IPv6 off on the
    /// interface (its addresses go, none is autoconfigured).
    pub fn disable_ipv6(ifname: &str, disabled: bool) -> Setting {
        Setting::ipv6_conf(ifname, "disable_ipv6", disabled)
    }

    /// `net.ipv6.conf.IFNAME.accept_ra`: 0 ignores router advertisements.
    pub fn accept_ra(ifname: &str, accept: bool) -> Setting {
        Setting::ipv6_conf(ifname, "accept_ra", accept)
    }

    /// `net.ipv6.conf.IFNAME.autoconf`: 0 configures no address from a
    /// prefix advertised by a router (SLAAC).
    pub fn autoconf(ifname: &str, on: bool) -> Setting {
        Setting::ipv6_conf(ifname, "autoconf", on)
    }

    fn ipv6_conf(ifname: &str, name: &str, on: bool) -> Setting {
        Setting {
            key: format!("net.ipv6.conf.{ifname}.{name}"),
            path: format!("/proc/sys/net/ipv6/conf/{ifname}/{name}"),
            value: if on { "1" } else { "0" },
        }
    }

    /// Writes it unless it already reads so; whether it wrote.
    pub fn apply(&self) -> Result<bool, Error> {
        write_if_differs(&self.path, self.value)
    }

    /// Writes it without reading it first: for an interface just made,
    /// whose value is known (one file opened instead of two).
    pub fn write(&self) -> Result<(), Error> {
        write_value(&self.path, self.value)
    }

    /// As [`Setting::apply`], for a sysctl of this process's own network
    /// namespace (the host's), opened relative to its /proc/sys/net: see
    /// [`host_net`]. Never from a thread that entered another namespace.
    pub fn apply_on_host(&self) -> Result<bool, Error> {
        self.apply_below(self.on_host())
    }

    /// As [`Setting::write`], relative to the host's /proc/sys/net (see
    /// [`Setting::apply_on_host`]).
    pub fn write_on_host(&self) -> Result<(), Error> {
        self.write_below(self.on_host())
    }

    /// As [`Setting::apply`], opened below `proc`, the root of a procfs
    /// instance (see [`with_private_proc`]), or /proc with None.
    pub fn apply_under(&self, proc: Option<BorrowedFd<'_>>) -> Result<bool, Error> {
        self.apply_below(self.under(proc))
    }

    /// As [`Setting::write`], below `proc` (see [`Setting::apply_under`]).
    pub fn write_under(&self, proc: Option<BorrowedFd<'_>>) -> Result<(), Error> {
        self.write_below(self.under(proc))
    }

    /// What it holds now, with its file opened below `proc` (see
    /// [`Setting::apply_under`]) in the calling thread's namespace, to be
    /// [`Previous::lend`]ed this setting's value and restored from any
    /// thread; None when it already reads so. The file stays that
    /// namespace's whatever thread writes it later (the kernel binds a
    /// sysctl file to its namespace when it is opened).
    pub fn hold_under(&self, proc: Option<BorrowedFd<'_>>) -> Result<Option<Previous>, Error> {
        let file = self.open_rdwr(proc)?;
        let mut held = [0u8; 32];
        let read = file
            .read_at(&mut held, 0)
            .map_err(sysctl_error(&self.path))?;
        let held = String::from_utf8_lossy(&held[..read])
            .trim_end()
            .to_string();
        if held == self.value {
            return Ok(None);
        }
        Ok(Some(Previous {
            file,
            path: self.path.clone(),
            value: held,
            lent: self.value,
        }))
    }

    /// What a lender that died recorded it held (see `lent`), with its
    /// file opened as [`Setting::hold_under`] opens it, to be restored.
    pub fn recorded_under(
        &self,
        proc: Option<BorrowedFd<'_>>,
        value: String,
    ) -> Result<Previous, Error> {
        Ok(Previous {
            file: self.open_rdwr(proc)?,
            path: self.path.clone(),
            value,
            lent: self.value,
        })
    }

    fn open_rdwr(&self, proc: Option<BorrowedFd<'_>>) -> Result<fs::File, Error> {
        self.opener(self.under(proc))(OFlag::O_RDWR).map_err(sysctl_error(&self.path))
    }

    /// The last part of its key: `disable_ipv6`.
    pub fn name(&self) -> &str {
        self.key.rsplit('.').next().unwrap_or(&self.key)
    }

    fn apply_below(&self, below: Option<(BorrowedFd<'_>, &str)>) -> Result<bool, Error> {
        apply_via(self.opener(below), &self.path, self.value)
    }

    fn write_below(&self, below: Option<(BorrowedFd<'_>, &str)>) -> Result<(), Error> {
        write_via(self.opener(below), &self.path, self.value)
    }

    /// Opens it as `relative` below the directory, or by its full path.
    fn opener<'a>(
        &'a self,
        below: Option<(BorrowedFd<'a>, &'a str)>,
    ) -> impl Fn(OFlag) -> io::Result<fs::File> + 'a {
        move |flags| match below {
            Some((dir, relative)) => open_at(dir, relative, flags),
            None => open_path(&self.path, flags),
        }
    }

    fn under<'a>(&self, proc: Option<BorrowedFd<'a>>) -> Option<(BorrowedFd<'a>, &str)> {
        Some((proc?, self.path.strip_prefix("/proc/")?))
    }

    fn on_host(&self) -> Option<(BorrowedFd<'static>, &str)> {
        let relative = self.path.strip_prefix("/proc/sys/net/")?;
        Some((host_net()?, relative))
    }
}

/// What a sysctl held before a [`Setting`] is lent to it, with its file,
/// open in the namespace it belongs to.
#[derive(Debug)]
pub struct Previous {
    file: fs::File,
    path: String,
    value: String,
    /// The setting's value, which [`Previous::lend`] writes.
    lent: &'static str,
}

impl Previous {
    /// Writes the setting's value in place of what it held.
    pub fn lend(&self) -> Result<(), Error> {
        write_at_start(&self.file, &self.path, self.lent)
    }

    /// Writes the value back.
    pub fn restore(self) -> Result<(), Error> {
        write_at_start(&self.file, &self.path, &self.value)
    }

    /// What it held.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// `value` written to the sysctl `file` from its start: procfs ignores a
/// number written at a later position (sysctl_writes_strict).
fn write_at_start(file: &fs::File, path: &str, value: &str) -> Result<(), Error> {
    unspinning(path, || {
        file.write_all_at(value.as_bytes(), 0)
            .map_err(sysctl_error(path))
    })
}

/// /proc/sys/net, opened once (by the first host-side caller) and kept.
/// The kernel looks a sysctl up in the opening thread's namespace, below
/// this directory too: a thread in another namespace (a test's) still
/// gets its own namespace's, even once the first caller's is gone.
///
/// Every network namespace that had a /proc/sys/net file opened has its
/// own `net` entry under /proc/sys, and they all share one dentry hash
/// chain, told apart one by one (proc_sys_compare, under the global
/// sysctl_lock). Each container's namespace gets one from its interface's
/// sysctl, so with 1,000 containers attached every open from /proc/sys
/// walked 1,000 entries: 0.25-0.4 ms (perf, CNI ADD at 1,000 attached).
/// Below this directory the host's entries have a parent of their own.
fn host_net() -> Option<BorrowedFd<'static>> {
    static DIR: OnceLock<Option<OwnedFd>> = OnceLock::new();
    DIR.get_or_init(|| {
        nix::fcntl::open(
            "/proc/sys/net",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
    })
    .as_ref()
    .map(AsFd::as_fd)
}

/// The file `relative` under the directory `dir`.
fn open_at(dir: BorrowedFd<'_>, relative: &str, flags: OFlag) -> io::Result<fs::File> {
    nix::fcntl::openat(dir, relative, flags | OFlag::O_CLOEXEC, Mode::empty())
        .map(fs::File::from)
        .map_err(io::Error::from)
}

/// Runs `work` with the root of a procfs instance of its own, or None
/// (then /proc) where one cannot be made: for the sysctls of a container's
/// namespace, which through /proc cost about 1 ms each with 1,000
/// containers attached (see netlink::procfs). The instance is kept for
/// closing later (`procfs::to_close`).
pub fn with_private_proc<T>(work: impl FnOnce(Option<BorrowedFd<'_>>) -> T) -> T {
    let instance = procfs::private();
    let result = work(instance.as_ref().map(AsFd::as_fd));
    if let Some(instance) = instance {
        procfs::close_later(instance);
    }
    result
}

/// `net.ipv4.ip_forward=1`.
pub fn enable_ip_forward() -> Result<bool, Error> {
    Setting::ip_forward().apply()
}

/// `net.ipv4.conf.BRIDGE.route_localnet=1`.
pub fn enable_route_localnet(bridge: &str) -> Result<bool, Error> {
    link::check_ifname(bridge)?;
    Setting::route_localnet(bridge).apply()
}

/// Applies `settings` in order in the network namespace `netns`: a
/// short-lived thread joins it (net sysctls belong to the namespace of the
/// thread that opens the file) while the runtime goes on. Must be called on
/// a tokio runtime.
pub async fn apply_in(netns: BorrowedFd<'_>, settings: Vec<Setting>) -> Result<(), Error> {
    let netns = netns.try_clone_to_owned().map_err(Error::EnterNetns)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns-sysctl".into())
        .spawn(move || {
            let result = nix::sched::setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|errno| Error::EnterNetns(errno.into()))
                .and_then(|()| {
                    drop(netns);
                    settings.iter().try_for_each(|s| s.apply().map(drop))
                });
            let _ = tx.send(result);
        })
        .map_err(Error::EnterNetns)?;
    rx.await
        .map_err(|_| Error::EnterNetns(io::Error::other("sysctl thread ended without an answer")))?
}

/// Writes `value` to the sysctl file `path` unless it already reads so.
/// Returns whether it wrote.
pub fn write_if_differs(path: &str, value: &str) -> Result<bool, Error> {
    apply_via(|flags| open_path(path, flags), path, value)
}

/// Writes `value` to the sysctl file `path`.
fn write_value(path: &str, value: &str) -> Result<(), Error> {
    write_via(|flags| open_path(path, flags), path, value)
}

/// The sysctl `path` opened by `open`: written with `value` unless it
/// already reads so; whether it wrote.
fn apply_via(
    open: impl Fn(OFlag) -> io::Result<fs::File>,
    path: &str,
    value: &str,
) -> Result<bool, Error> {
    let mut current = String::new();
    open(OFlag::O_RDONLY)
        .and_then(|mut f| io::Read::read_to_string(&mut f, &mut current))
        .map_err(sysctl_error(path))?;
    if current.trim_end() == value {
        return Ok(false);
    }
    write_via(open, path, value)?;
    Ok(true)
}

/// The sysctl `path` opened by `open` and written with `value`.
fn write_via(
    open: impl Fn(OFlag) -> io::Result<fs::File>,
    path: &str,
    value: &str,
) -> Result<(), Error> {
    // One write() with the whole value: procfs parses each write on its own.
    unspinning(path, || {
        open(OFlag::O_WRONLY)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(sysctl_error(path))
    })
}

/// Runs `write`, the write of the sysctl `path`, with the calling thread
/// ordinary unless `path` is a `conf/default` entry: the kernel's handler
/// of many others (`forwarding`, `disable_ipv6` of an interface or `all`)
/// takes RTNL with a trylock and restarts the write while it is held, a
/// spin that, real-time, keeps an ordinary holder off its CPU (see
/// crate::realtime). A `default` entry takes no lock, and a real-time
/// thread (the netns thread's set-up) writes it as it is.
fn unspinning<T>(path: &str, write: impl FnOnce() -> T) -> T {
    let write = || {
        #[cfg(test)]
        tests::WRITTEN_REAL_TIME.set(Some(crate::realtime::is_real_time()));
        write()
    };
    if path.contains("/conf/default/") {
        write()
    } else {
        crate::realtime::ordinary_for(write)
    }
}

fn sysctl_error(path: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Sysctl {
        path: path.to_string(),
        source,
    }
}

fn open_path(path: &str, flags: OFlag) -> io::Result<fs::File> {
    nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty())
        .map(fs::File::from)
        .map_err(io::Error::from)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Whether the calling thread was real-time at its last sysctl
        /// write.
        pub(in crate::netlink) static WRITTEN_REAL_TIME: Cell<Option<bool>> =
            const { Cell::new(None) };
    }

    /// Writes `setting` on a real-time thread of its own, in a network
    /// namespace of its own: whether the thread was real-time at the
    /// write, and is after it. None, said loudly, without root.
    fn written_real_time(setting: Setting) -> Option<(bool, bool)> {
        crate::scratch::in_own_netns("written_real_time", move || {
            assert!(crate::realtime::enter());
            setting.write().unwrap();
            let seen = (
                WRITTEN_REAL_TIME.get().unwrap(),
                crate::realtime::is_real_time(),
            );
            crate::realtime::leave();
            seen
        })
    }

    #[test]
    fn a_real_time_thread_writes_a_sysctl_that_may_spin_for_rtnl_ordinary() {
        let seen = written_real_time(Setting::ip_forward());
        assert!(seen.is_none_or(|seen| seen == (false, true)), "{seen:?}");
        let seen = written_real_time(Setting::disable_ipv6("lo", false));
        assert!(seen.is_none_or(|seen| seen == (false, true)), "{seen:?}");
    }

    #[test]
    fn a_real_time_thread_writes_a_default_sysctl_as_it_is() {
        let seen = written_real_time(Setting::accept_ra("default", false));
        assert!(seen.is_none_or(|seen| seen == (true, true)), "{seen:?}");
    }
}
