//! The cookie of a socket's network namespace (SO_NETNS_COOKIE): what
//! names a namespace in a file name (`netlink::lent`) and what an eBPF
//! program's `bpf_get_netns_cookie` compares (`proxy::connect6`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The cookie of the network namespace of the socket `socket`: unique
/// while the system runs, never reused (an nsfs inode number is).
pub fn of_socket(socket: BorrowedFd<'_>) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` and `len` outlive the call and `len` is the size of
    // `cookie`, which the kernel fills with at most that many bytes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(cookie)
    } else {
        Err(io::Error::last_os_error())
    }
}
