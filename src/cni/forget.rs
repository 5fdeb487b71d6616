//! What a DEL leaves to do once it has answered: its host veth's removal
//! and the forgetting of its connections, then its address given back.
//!
//! Neither is the engine's wait. The kernel takes 25-35 ms over a veth
//! (RCU), and forgetting the connections of a dual-stack attachment takes
//! a dump of the whole conntrack table: the kernel walks every bucket of
//! its hash (262,144 here), about 9 ms (an IPv4-only one's is a flush the
//! kernel filters, see conntrack::forget_addresses_with). The elements are gone before DEL answers, so no new
//! connection is translated to the address; what matters is that neither
//! the old veth (with the MAC derived from the address) nor an entry
//! still leads to the address when another container gets it. So one
//! forked child does both, after the answer is written and stdout and
//! stderr are let go of (an engine reads them to their end), and only then
//! gives the address back; a veth it could not delete keeps its address
//! held. Until then the lease is the child's (which it takes over from
//! `UNTIL_RELEASED` first): should the child die first, or leave it held,
//! the lease is reclaimed as a dead supervisor's (by `gc`, which deletes
//! the veth first, or by a full pool).
//!
//! Every connection the address took part in is forgotten, not only those
//! of its published ports: an attachment's own connection out, masqueraded,
//! has an entry whose reply goes to the address; left, a peer that sends
//! again reaches the address's next holder, and keeps the mapping alive.
//!
//! The same child closes, last, the procfs instances an ADD's or DEL's
//! sysctls went through (see netlink::procfs): an unmount each. Its
//! netfilter sockets it keeps until the close tick that every socket's
//! holder shares (see `nftables::release_on_tick`): the release of one
//! holds nf_tables' commit lock for a grace period, and closed when its
//! work ended, each DEL's fell into the ADDs that followed (a veth's
//! creation takes that lock with RTNL held).
//!
//! The child allocates (it parses the dump), which a fork allows only in a
//! process with one thread: with more, the work is done in place.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::conntrack;
use crate::ipam::{self, LeaseDir};
use crate::milestones::pause_at;
use crate::netlink;
use crate::values::Process;

/// An attachment's host veth to delete and connections to forget, and its
/// address to give back after.
pub struct Leftovers {
    /// Its host veth, when it is still there: the address stays held
    /// unless it goes.
    pub link: Option<String>,
    /// A netfilter socket (a duplicate of the firewall's); None when it
    /// could not be had (DEL reports that), and nothing is forgotten.
    pub socket: Option<OwnedFd>,
    pub address: Ipv4Addr,
    /// Its IPv6 address, on a dual-stack network: the same lease.
    pub address6: Option<Ipv6Addr>,
    pub leases: LeaseDir,
    /// The attachment's id, the lease's holder.
    pub id: String,
    /// The bridge whose neighbour entries for the addresses go before
    /// them (see netlink::forget_neighbours_on).
    pub bridge: String,
}

/// What one or more DELs (a GC's) leave to do after answering.
#[derive(Default)]
pub struct Background {
    /// Host veths to delete that hold no address of ours (a chained
    /// attachment's).
    pub links: Vec<String>,
    pub leftovers: Vec<Leftovers>,
    /// Netfilter sockets that deleted elements: the last close waits for
    /// the kernel's deferred frees (see `Firewall::close`). Every leftover's
    /// socket is a duplicate of one of these: its close is not the last.
    pub sockets: Vec<OwnedFd>,
    /// Procfs instances the sysctls went through: the last close unmounts
    /// one (see netlink::procfs), so it is the child's, once this process
    /// has closed its own copy (see `start`).
    pub procfs: Vec<OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("deleting link {link}, which keeps {address} held")]
    Link {
        link: String,
        address: Ipv4Addr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Conntrack(#[from] conntrack::Error),
    #[error(transparent)]
    Lease(#[from] ipam::Error),
}

impl Background {
    pub fn extend(&mut self, other: Background) {
        self.links.extend(other.links);
        self.leftovers.extend(other.leftovers);
        self.sockets.extend(other.sockets);
        self.procfs.extend(other.procfs);
    }

    fn is_empty(&self) -> bool {
        self.links.is_empty()
            && self.leftovers.is_empty()
            && self.sockets.is_empty()
            && self.procfs.is_empty()
    }

    /// Runs the work in a child and returns once it is started (or done,
    /// when this process cannot fork): for after the answer, as it lets
    /// go of stdin, stdout and stderr first.
    pub fn start(self) {
        if self.is_empty() {
            return;
        }
        // Before stderr goes: tests read it to tell which calls fork.
        tracing::debug!(
            "after the answer: {} links, {} leftovers, {} sockets, {} procfs instances",
            self.links.len() + self.leftovers.iter().filter(|l| l.link.is_some()).count(),
            self.leftovers.len(),
            self.sockets.len(),
            self.procfs.len()
        );
        release_stdio();
        // Not the engine's wait's bounded work any more (see cni::run):
        // done in place, it takes as long as the conntrack table's walk.
        let in_place = |work: Background| {
            let _ = crate::realtime::leave();
            work.run(false);
        };
        if !single_threaded() {
            in_place(self);
            return;
        }
        // Its write end closes in this process after its copies of the
        // procfs instances, and at once in the child: the child reads its
        // end, and once at its end, its own closes are the last.
        let Ok((parent_gone, parent_alive)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        else {
            in_place(self);
            return;
        };
        // SAFETY: fork in a process with one thread (checked above): the
        // child has every lock free and may allocate; it never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            in_place(self);
            return;
        }
        if pid == 0 {
            drop(parent_alive);
            child(self, parent_gone);
        }
        drop(parent_gone);
        // The child holds the leases now (see `child`), and its copies of
        // the rest are what count; ours go before the pipe's write end.
        drop(self);
        drop(parent_alive);
    }

    /// Makes this process the holder of every leftover's lease: should it
    /// die before giving one back, the lease is reclaimed as a dead
    /// supervisor's (an attachment's is held until released otherwise).
    /// Done by the child itself, first: the parent, which once did it,
    /// could find the child gone already and leave the lease held for
    /// good, and it spent a lease's rewrite of DEL's time on it.
    fn hold_leases(&self) {
        let Ok(process) = Process::of(std::process::id()) else {
            return;
        };
        for leftover in &self.leftovers {
            let handed = leftover
                .leases
                .hand_over(leftover.address, &leftover.id, process);
            if let Err(err) = handed {
                tracing::warn!("handing {} over: {err}", leftover.address);
            }
        }
    }

    /// The links first, so no one gets an address while its old owner's
    /// veth is still on the bridge; then each attachment's connections,
    /// and its address, unless its veth could not be deleted.
    ///
    /// In the child (`in_child`), the walk of the connections goes at the
    /// least priority: see `yield_to_others`. In place, the engine waits
    /// for this process's end, so it does not.
    ///
    /// Returns what is left to close: the procfs instances, then the
    /// netfilter sockets.
    fn run(self, in_child: bool) -> (Vec<OwnedFd>, Vec<OwnedFd>) {
        for link in &self.links {
            let _ = netlink::remove_link_now(link);
        }
        let mut left = BTreeSet::new();
        for leftover in &self.leftovers {
            if let Some(link) = &leftover.link
                && let Err(source) = netlink::remove_link_now(link)
            {
                tracing::warn!(
                    "after DEL: {}",
                    crate::error_chain::Chain(&Error::Link {
                        link: link.clone(),
                        address: leftover.address,
                        source,
                    })
                );
                left.insert(leftover.address);
            }
        }
        pause_at("unlinked");
        if in_child && !self.leftovers.is_empty() {
            yield_to_others();
        }
        for leftover in self.leftovers {
            if left.contains(&leftover.address) {
                continue;
            }
            if let Err(err) = forget_then_release(leftover) {
                tracing::warn!("after DEL: {}", crate::error_chain::Chain(&err));
            }
        }
        (self.procfs, self.sockets)
    }
}

fn forget_then_release(work: Leftovers) -> Result<(), Error> {
    let addresses: Vec<IpAddr> = std::iter::once(work.address.into())
        .chain(work.address6.map(IpAddr::from))
        .collect();
    if let Some(socket) = work.socket {
        conntrack::forget_addresses_with(socket, &addresses)?;
    }
    forget_neighbours(&work.bridge, work.address, work.address6);
    work.leases.release_held_by(work.address, &work.id)?;
    Ok(())
}

/// Takes out the host's neighbour entries for an attachment's addresses,
/// before they are given back. A failure is only told: an entry left
/// points at the MAC the address's next holder gets, and that holder's
/// plumbing sets it again.
fn forget_neighbours(bridge: &str, address: Ipv4Addr, address6: Option<Ipv6Addr>) {
    if let Err(err) = netlink::forget_neighbours_on(bridge, address, address6) {
        tracing::warn!(
            "taking out the neighbour entries of {address}: {}",
            crate::error_chain::Chain(&err)
        );
    }
}

/// The child. At the ordinary priority: a link's removal holds the RTNL
/// lock, which the engine's next ADD waits for (at SCHED_IDLE the child
/// held it for as long as the busy machine left it waiting: ADD's median
/// tripled). On failure a lease stays with the child, so it is reclaimed
/// once the child is gone.
fn child(work: Background, parent_gone: OwnedFd) -> ! {
    work.hold_leases();
    pause_at("forgetting");
    let (procfs, sockets) = work.run(true);
    if !procfs.is_empty() {
        // Until end of file: the parent has closed its copies.
        let _ = nix::unistd::read(&parent_gone, &mut [0u8; 1]);
        drop(procfs);
    }
    crate::nftables::release_on_tick(sockets);
    // SAFETY: ends this process without running the parent's exit handlers
    // or destructors, which are the parent's to run.
    unsafe { libc::_exit(0) }
}

/// Lowers this process's priority to the least (nice 19) for the
/// conntrack walk (a dump, see `forget`'s opening comment): about 9 ms of
/// CPU over 262,144 buckets, which holds no lock anyone else waits for
/// (unlike the links' removal before it, under RTNL, left at the ordinary
/// priority), and which back to back ran beside the engine's next ADD on
/// a machine with two CPUs. Only between its chunks: each runs with
/// bottom halves off, which no priority preempts.
fn yield_to_others() {
    // SAFETY: setpriority on this process only; a failure leaves the
    // priority as it was, which is only slower for others.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
}

/// Points stdin, stdout and stderr at /dev/null: the engine has its answer
/// and reads them until every process holding them has let go.
fn release_stdio() {
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, which this process
        // no longer writes anything the engine reads.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}

/// Whether this process has one thread: /proc/self/task lists each.
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::{Holder, Pool};
    use crate::scratch::Scratch;

    /// A lease of `pool` held until released, as an attachment's.
    fn leased(pool: &Pool, id: &str) -> Ipv4Addr {
        let holder = Holder {
            name: format!("{id}:eth0"),
            id: id.to_string(),
            process: Process::UNTIL_RELEASED,
        };
        let lease = pool.lease(None, None, &holder).unwrap();
        let addr = lease.addr();
        lease.keep();
        addr
    }

    fn leftover(pool: &Pool, address: Ipv4Addr, id: &str, link: Option<&str>) -> Leftovers {
        Leftovers {
            link: link.map(str::to_string),
            socket: None,
            address,
            address6: None,
            leases: pool.lease_dir().clone(),
            id: id.to_string(),
            bridge: "sv-no-such".to_string(),
        }
    }

    #[test]
    fn an_address_whose_veth_could_not_be_deleted_stays_held_and_the_others_go() {
        let dir = Scratch::new("forget-kept");
        let pool = Pool::new(dir.path(), "sv0", "172.16.0.0/24".parse().unwrap()).unwrap();
        let stuck = leased(&pool, "stuck");
        let gone = leased(&pool, "gone");
        let work = Background {
            // Refused before any request: a link that cannot be deleted.
            leftovers: vec![
                leftover(&pool, stuck, "stuck", Some("no/such")),
                leftover(&pool, gone, "gone", None),
            ],
            ..Background::default()
        };
        let (procfs, sockets) = work.run(false);
        assert!(procfs.is_empty() && sockets.is_empty());
        let left: Vec<Ipv4Addr> = pool.leases().unwrap().into_iter().map(|(a, _)| a).collect();
        assert_eq!(left, [stuck]);
    }
}
