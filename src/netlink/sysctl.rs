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
use std::os::fd::{AsFd, BorrowedFd};

use nix::sched::CloneFlags;

use super::{Error, link};

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
    let err = |source: io::Error| Error::Sysctl {
        path: path.to_string(),
        source,
    };
    let current = fs::read_to_string(path).map_err(err)?;
    if current.trim_end() == value {
        return Ok(false);
    }
    write_value(path, value)?;
    Ok(true)
}

/// Writes `value` to the sysctl file `path`.
fn write_value(path: &str, value: &str) -> Result<(), Error> {
    // One write() with the whole value: procfs parses each write on its own.
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| Error::Sysctl {
            path: path.to_string(),
            source,
        })
}
