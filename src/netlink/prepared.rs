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
//! a quarter of starts 50 ms apart). Only for a namespace the supervisor
//! made: a CNI engine's comes with its own settings, and its interface
//! gets per-interface ones (see `plumb`).

use rtnetlink::LinkUnspec;
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::direct::{Change, Direct};
use super::{Error, sysctl};

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
            sysctl::Setting::peer_ipv6("default", ipv6)
                .iter()
                .try_for_each(|setting| setting.write_under(proc))
        })?;
        Ok(PreparedNetns { inside })
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
