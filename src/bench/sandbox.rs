//! A throwaway host for a benchmark: the calling process moves into a new
//! network and mount namespace, with `lo` up and a private tmpfs on /run.
//! Every bridge, link, table, lease and record a benchmark makes lives
//! there and goes when the process exits: the machine is left as it was.
//!
//! Call it first thing, while the process has one thread: namespaces are
//! per thread, and only threads (and processes) started afterwards inherit
//! the new ones.

use std::io;
use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("needs root: it builds its own network and mount namespaces")]
    NotRoot,
    #[error("entering a private network and mount namespace")]
    Unshare(#[source] nix::Error),
    #[error("making mounts private")]
    Private(#[source] nix::Error),
    #[error("mounting a private /run")]
    Run(#[source] nix::Error),
    #[error("bringing lo up")]
    Loopback(#[source] io::Error),
}

/// Moves this process into its throwaway host. Without root: `NotRoot`,
/// having changed nothing.
pub fn enter() -> Result<(), Error> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::NotRoot);
    }
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS).map_err(Error::Unshare)?;
    // Mounts made here must not propagate back to the machine's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(Error::Private)?;
    mount(
        Some("tmpfs"),
        Path::new("/run"),
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=755"),
    )
    .map_err(Error::Run)?;
    loopback_up().map_err(Error::Loopback)
}

/// `lo` up in the current network namespace, with the SIOCSIFFLAGS ioctl:
/// one socket, no netlink machinery.
fn loopback_up() -> io::Result<()> {
    let socket = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    set_up(std::os::fd::AsRawFd::as_raw_fd(&socket), b"lo")
}

fn set_up(fd: std::os::fd::RawFd, name: &[u8]) -> io::Result<()> {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    // SAFETY: fd is an open socket and ifr a valid ifreq naming the
    // interface; SIOCGIFFLAGS/SIOCSIFFLAGS read and write only its flags.
    unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
