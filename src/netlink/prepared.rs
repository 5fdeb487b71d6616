//! A container's new network namespace made ready for its plumbing by the
//! thread that made it, from inside, before anything else uses it: lo up,
//! and the IPv6 settings of `net.ipv6.conf.default`, which an interface
//! takes when it is created, so the peer is born with them and the
//! plumbing writes no sysctl of its own.
//!
//! Off the container's path twice over: it runs on that thread while the
//! container sets itself up and the supervisor prepares the host's side,
//! and it takes RTNL (lo up) before any plumbing does. A `default` write
//! takes no RTNL at all, where a per-interface one may wait for the
//! teardown of a namespace that is dying meanwhile (measured: over 1 ms in
//! a quarter of starts 50 ms apart).
//!
//! A CNI engine's namespace comes with settings of its own, which must be
//! left as they were: there the same defaults are only lent
//! ([`LentDefaults`]), set just before the peer is created and put back
//! just after. Written per interface instead, eth0's `disable_ipv6` was
//! most of CNI ADD's p90 (a spin for RTNL while the previous DEL's veth
//! went: 0.4-1 ms in 15% of ADDs, 3.7-15.8 ms in 5%). An interface the
//! engine made in that namespace meanwhile would be born with them too.
//! Lenders in one namespace take turns, whatever their state directory,
//! and a lend is written down first, so one killed meanwhile is undone by
//! the next (see `lent`).

use rtnetlink::LinkUnspec;
use rtnetlink::packet_route::RouteNetlinkMessage;

use std::os::fd::BorrowedFd;
use std::path::Path;

use super::direct::{Change, Direct};
use super::lent::Lock;
use super::{Error, sysctl};
use sysctl::{Previous, Setting};

/// The calling thread's network namespace, readied for a container's
/// plumbing (see the module), and a netlink socket in it for the plumbing
/// to use: it holds the namespace until the plumbing is done.
pub struct PreparedNetns {
    pub(super) inside: Direct,
}

impl std::fmt::Debug for PreparedNetns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedNetns").finish_non_exhaustive()
    }
}

impl PreparedNetns {
    /// Brings lo up in the calling thread's network namespace and sets the
    /// IPv6 defaults of a container's interface: on, without router
    /// advertisements, SLAAC or DAD, with `ipv6`; off without. Must run on
    /// a thread of its own in a namespace nothing else uses yet.
    pub fn here(ipv6: bool) -> Result<PreparedNetns, Error> {
        let inside = loopback_up()?;
        // Written, not read first (one file opened each, not two): what
        // `default` held in a namespace this new does not matter, and a
        // `default` write takes no RTNL, changed or not.
        sysctl::with_private_proc(|proc| {
            peer_defaults(ipv6)
                .iter()
                .try_for_each(|setting| setting.write_under(proc))
        })?;
        Ok(PreparedNetns { inside })
    }
}

/// The `net.ipv6.conf.default` settings a container's interface is to be
/// born with: IPv6 on, without router advertisements, SLAAC or DAD, with
/// `ipv6`; off without.
fn peer_defaults(ipv6: bool) -> Vec<Setting> {
    Setting::peer_ipv6("default", ipv6)
}

/// The IPv6 defaults of an engine's namespace, set as a container's
/// interface is to be born with them (see the module), with what they
/// held, to be given back once it exists; and the namespace's lock,
/// held meanwhile (see `lent`).
#[derive(Debug)]
#[must_use = "the engine's defaults must be given back"]
pub(crate) struct LentDefaults {
    held: Vec<Previous>,
    lock: Lock,
}

impl LentDefaults {
    /// Sets them in the calling thread's namespace `netns` (whose cookie
    /// is `cookie`), through the procfs instance `proc` (see
    /// `sysctl::with_private_proc`), once its lock is taken and what they
    /// held is written down under `dir` (see `lent`). Those already right
    /// are neither written nor given back. On failure, those set already
    /// are given back.
    pub(crate) fn here(
        ipv6: bool,
        proc: Option<BorrowedFd<'_>>,
        netns: BorrowedFd<'_>,
        cookie: u64,
        dir: &Path,
    ) -> Result<LentDefaults, Error> {
        let lock = Lock::take(dir, netns, cookie, proc)?;
        let settings = peer_defaults(ipv6);
        let mut held = Vec::new();
        for setting in &settings {
            if let Some(previous) = setting.hold_under(proc)? {
                held.push((setting, previous));
            }
        }
        if !held.is_empty() {
            lock.write_down(&held)?;
        }
        let mut lent = LentDefaults {
            held: Vec::new(),
            lock,
        };
        for (_, previous) in held {
            let lend = previous.lend();
            lent.held.push(previous);
            if let Err(err) = lend {
                // The first failure is the one to tell.
                let _ = lent.give_back();
                return Err(err);
            }
        }
        Ok(lent)
    }

    /// Puts every one back, the last set first, from any thread, then
    /// removes the record and frees the lock; the first failure. A record
    /// whose values did not all go back stays, for the next lender.
    pub(crate) fn give_back(self) -> Result<(), Error> {
        let restored = self
            .held
            .into_iter()
            .rev()
            .map(Previous::restore)
            .fold(Ok(()), Result::and);
        restored?;
        self.lock.done()
    }
}

/// Brings lo up in the calling thread's network namespace: what a
/// container with a namespace of its own and no other network has.
pub fn loopback_up_here() -> Result<(), Error> {
    loopback_up().map(drop)
}

/// lo up, over a netlink socket opened here, which it returns.
fn loopback_up() -> Result<Direct, Error> {
    let mut inside = Direct::open().map_err(Error::NetnsSocket)?;
    let what = "lo in the container";
    let index = inside
        .index_of("lo")
        .map_err(Error::direct("finding", what))?;
    let up = RouteNetlinkMessage::NewLink(LinkUnspec::new_with_index(index).up().build());
    let mut outcomes = inside
        .pipeline(vec![(up, Some(Change::Modify))])
        .map_err(Error::direct("bringing up", what))?;
    outcomes
        .pop()
        .unwrap_or(Ok(None))
        .map_err(Error::direct("bringing up", what))?;
    Ok(inside)
}
