//! One client's connection attempt, judged by the client's kernel instead
//! of a clock: a SYN that went nowhere is one the kernel sent again once
//! its retransmission timeout (1 s for a SYN) had passed, and a SYN
//! answered late on a loaded machine is not. So the verdict is the same on
//! an idle machine and on a busy one, and it is what a client pays: a
//! retransmit.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, connect, getsockopt, socket, sockopt,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The first SYN was answered with a SYN-ACK.
    Answered,
    /// The first SYN was answered with a reset or an ICMP error: the client
    /// knows at once.
    Refused,
    /// The client's kernel sent the SYN again: the first went nowhere.
    Lost,
}

/// How long an attempt may go with neither an answer nor a retransmission
/// (which comes after 1 s) before it counts as lost: a hang guard, so a
/// stalled attempt ends the test instead of holding it.
const HANG_GUARD: Duration = Duration::from_secs(10);

/// How long, in ms, one wait for an answer lasts before the socket's
/// retransmissions are read again (a lost SYN ends the attempt at its
/// retransmission, not at the answer to that).
const LOOK_EVERY: u8 = 10;

/// Connects to `addr` from the calling thread's network namespace, and
/// closes the connection at once.
pub fn attempt(addr: SocketAddr) -> Outcome {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, SockType::Stream, flags, None).expect("a TCP socket");
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => return verdict(&fd),
        Err(Errno::EINPROGRESS) => {}
        // No route, or no address to send from: refused before any SYN.
        Err(_) => return Outcome::Refused,
    }
    let guard = Instant::now() + HANG_GUARD;
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
        let ready =
            poll(&mut fds, PollTimeout::from(LOOK_EVERY)).expect("poll a connecting socket");
        if ready > 0 {
            return verdict(&fd);
        }
        if retransmitted(&fd) || Instant::now() >= guard {
            return Outcome::Lost;
        }
    }
}

/// The outcome of an attempt on `fd`, whose connect has completed or
/// failed.
fn verdict(fd: &OwnedFd) -> Outcome {
    if retransmitted(fd) {
        return Outcome::Lost;
    }
    match getsockopt(fd, sockopt::SocketError) {
        Ok(0) => Outcome::Answered,
        _ => Outcome::Refused,
    }
}

/// Whether the kernel has sent the socket's SYN more than once. The
/// counters survive the connection's end (a reset leaves the socket
/// closed, its counters as they were).
fn retransmitted(fd: &OwnedFd) -> bool {
    // SAFETY: tcp_info is plain integers, for which zeroes are valid.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which is
    // that long, and sets `len` to what it wrote.
    let read = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(
        read,
        0,
        "TCP_INFO of a connecting socket: {}",
        std::io::Error::last_os_error()
    );
    // total_retrans counts the retransmissions sent; retransmits, the
    // timer's firings, also those whose SYN could not be sent.
    info.tcpi_total_retrans > 0 || info.tcpi_retransmits > 0
}
