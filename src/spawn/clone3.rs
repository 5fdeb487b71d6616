//! The clone3 system call, which nix does not wrap.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Namespaces every container gets.
pub const NAMESPACES: u64 = (libc::CLONE_NEWNET
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWIPC) as u64;

/// Start the child in the cgroup2 directory `clone_args.cgroup` (5.7+).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Which side of the clone we are on.
pub enum Forked {
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
    Child,
}

/// clone3 with CLONE_PIDFD and `namespaces` (NAMESPACES, or fewer), fork-style
/// (no new stack: the child continues on a copy of ours), in the cgroup2
/// directory `cgroup` when given: it never runs anywhere else.
///
/// # Safety
/// The child is a copy of a possibly multi-threaded process: until it execs
/// it may only call async-signal-safe functions. No allocation, no locks, no
/// logging — anything another thread might have held at clone time.
pub unsafe fn clone3(namespaces: u64, cgroup: Option<RawFd>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    // SAFETY: clone_args is plain old data; zero is "unset" for every field.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = libc::CLONE_PIDFD as u64 | namespaces;
    args.pidfd = &mut pidfd as *mut RawFd as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: args is a valid clone_args of the size we pass; with stack 0 the
    // kernel duplicates the caller like fork, and the caller upholds the
    // child's restrictions (see above).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as libc::pid_t,
            // SAFETY: on success the kernel stored a new pidfd that nobody
            // else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}
