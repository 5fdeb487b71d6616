//! DEL's forgetting of an attachment's connections, off DEL's path.
//!
//! Forgetting them takes a dump of the whole conntrack table: the kernel
//! walks every bucket of its hash (262,144 here), about 9 ms, most of a
//! DEL. The engine need not wait for it: the elements are gone first, so
//! no new connection is translated to the address; what matters is that no
//! entry still points at the address when another container gets it. So a
//! forked child forgets them and only then gives the address back. Until
//! then the lease is the child's (handed over from `UNTIL_RELEASED`): should
//! the child die first, the lease is reclaimed as a dead supervisor's.
//!
//! The child allocates (it parses the dump), which a fork allows only in a
//! process with one thread: with more, the work is done in place.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::conntrack;
use crate::ipam::{self, LeaseDir};
use crate::milestones::pause_at;
use crate::values::{Process, Protocol};

/// What is left of a DEL once its elements are gone.
pub struct Leftovers {
    /// A netfilter socket (a duplicate of the firewall's).
    pub socket: OwnedFd,
    /// The host ports the attachment published, TCP and UDP.
    pub ports: Vec<(Protocol, u16)>,
    pub address: Ipv4Addr,
    pub leases: LeaseDir,
    /// The attachment's id, the lease's holder.
    pub id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Conntrack(#[from] conntrack::Error),
    #[error(transparent)]
    Lease(#[from] ipam::Error),
    #[error("reading the forgetting process {pid}")]
    Child {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// Forgets the connections of `work`, then gives its address back: in a
/// child, returning once it runs, or here when it cannot fork.
pub fn in_background(work: Leftovers) -> Result<(), Error> {
    if !single_threaded() {
        return in_place(work);
    }
    // SAFETY: fork in a process with one thread (checked above): the child
    // has every lock free and may allocate; it never returns (see `child`).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return in_place(work);
    }
    if pid == 0 {
        child(work);
    }
    let pid = pid as u32;
    let process = Process::of(pid).map_err(|source| Error::Child { pid, source })?;
    // Released already when the child was quicker: then nothing is held.
    work.leases.hand_over(work.address, &work.id, process)?;
    Ok(())
}

fn in_place(work: Leftovers) -> Result<(), Error> {
    conntrack::forget_with(work.socket, &work.ports, Some(work.address))?;
    work.leases.release_held_by(work.address, &work.id)?;
    Ok(())
}

/// The child: nothing of the engine's (stdout, stderr, the locks) held, the
/// connections forgotten, the address given back, exit. On failure the
/// lease stays with the child, so it is reclaimed once the child is gone.
fn child(work: Leftovers) -> ! {
    let keep = work.socket.as_raw_fd() as libc::c_uint;
    // SAFETY: closes descriptors this child inherited, except the socket
    // it goes on with; nothing else of this process uses them.
    unsafe {
        if keep > 0 {
            libc::close_range(0, keep - 1, 0);
        }
        libc::close_range(keep + 1, libc::c_uint::MAX, 0);
    }
    // The engine's next ADD or DEL comes first: the dump is no one's wait.
    // SAFETY: changes this process's own scheduling policy; the parameter
    // lives for the call.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
    pause_at("forgetting");
    let done = in_place(work).is_ok();
    // SAFETY: ends this process without running the parent's exit handlers
    // or destructors, which are the parent's to run.
    unsafe { libc::_exit(i32::from(!done)) }
}

/// Whether this process has one thread: /proc/self/task lists each.
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}
