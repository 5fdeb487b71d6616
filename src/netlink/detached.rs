//! Deleting a link without waiting for it. The kernel deletes a veth pair
//! in the requester's own time: 25-35 ms waiting for RCU (measured), which
//! a CNI DEL whose namespace outlives it would otherwise spend. A forked
//! child sends the request and waits instead; the caller goes on (and may
//! exit) at once. The child holds nothing of the caller's: every inherited
//! descriptor is closed first, so an engine reading the caller's stdout
//! sees its end.

use std::io;

use super::link::ifname_problem;

const RTM_DELLINK: u16 = 17;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const IFLA_IFNAME: u16 = 3;

/// The RTM_DELLINK request for `name`, as the kernel reads it.
fn request(name: &str) -> Vec<u8> {
    let attr_len = 4 + name.len() + 1;
    let padded = (attr_len + 3) & !3;
    let mut msg = request_header(0, padded);
    msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    msg.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
    msg.extend_from_slice(name.as_bytes());
    msg.resize(16 + 16 + padded, 0);
    msg
}

/// The RTM_DELLINK request for the link with index `index`: for a link
/// that must go later, once its name may have gone to another (see
/// `nftables::AfterExit`). A host's interface indexes are not reused
/// until its counter wraps, so it never names another link.
pub fn removal_request(index: u32) -> Vec<u8> {
    request_header(index, 0)
}

/// An RTM_DELLINK message up to its attributes (`attrs` bytes more are
/// reserved): the link found by `index`, or by name when it is 0.
fn request_header(index: u32, attrs: usize) -> Vec<u8> {
    let len = 16 + 16 + attrs;
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_DELLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
    // ifinfomsg: family and padding, type, index, flags, change mask.
    msg.extend_from_slice(&[0u8; 4]);
    msg.extend_from_slice(&index.to_ne_bytes());
    msg.extend_from_slice(&[0u8; 8]);
    msg
}

/// Deletes link `name` from a forked child; returns once the child runs.
/// A link that is gone already is no error (the child's answer is not
/// read by anyone). Only for a process with one thread, or whose other
/// threads hold no lock the child could need: the child allocates nothing.
pub fn remove_link_detached(name: &str) -> io::Result<()> {
    if let Some(why) = ifname_problem(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?}: {why}"),
        ));
    }
    let msg = request(name);
    // SAFETY: fork; the child below uses only async-signal-safe syscalls
    // (close_range, socket, sendto, recv, _exit) on memory prepared before
    // the fork, and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        child(&msg);
    }
    Ok(())
}

/// The child: nothing inherited, one request, its answer, exit.
fn child(msg: &[u8]) -> ! {
    // SAFETY: closes descriptors this child owns; `send` below makes only
    // raw syscalls on memory copied at the fork; _exit never returns.
    unsafe {
        libc::close_range(0, libc::c_uint::MAX, 0);
        send(msg);
        libc::_exit(0)
    }
}

/// Deletes link `name` and waits for the kernel's answer, which is not
/// read: for a process nobody waits for (see `cni::forget`). A link that is
/// gone already is no error.
pub fn remove_link_now(name: &str) -> io::Result<()> {
    if let Some(why) = ifname_problem(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?}: {why}"),
        ));
    }
    // SAFETY: raw syscalls on a socket `send` opens and closes itself.
    unsafe { send(&request(name)) };
    Ok(())
}

/// Sends `msg` to the kernel over a netlink route socket of its own and
/// waits for the answer, which it does not read. No allocation: a stack
/// buffer for the answer. A request the kernel refuses (a link gone
/// already) fails no syscall: its error is in the answer.
///
/// # Safety
/// Async-signal-safe syscalls only, so a forked child or a socket's
/// holder (see `nftables::AfterExit`) may call it.
pub unsafe fn send(msg: &[u8]) {
    // SAFETY: the socket is this function's; `msg` and `kernel` outlive
    // the calls that read them.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if fd < 0 {
            return;
        }
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let sent = libc::sendto(
            fd,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        if sent > 0 {
            let mut answer = [0u8; 256];
            libc::recv(fd, answer.as_mut_ptr().cast(), answer.len(), 0);
        }
        libc::close(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_link_and_is_padded_to_four_bytes() {
        let msg = request("sv-0123456789ab");
        assert_eq!(msg.len(), 16 + 16 + 20);
        assert_eq!(
            u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize,
            msg.len()
        );
        assert_eq!(&msg[36..51], b"sv-0123456789ab");
        assert_eq!(msg[51], 0);
        assert!(remove_link_detached("a/b").is_err());
    }

    #[test]
    fn the_request_by_index_names_the_index_and_nothing_else() {
        let msg = removal_request(0x0102_0304);
        assert_eq!(msg.len(), 32);
        assert_eq!(u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]), 32);
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), RTM_DELLINK);
        assert_eq!(&msg[20..24], &0x0102_0304u32.to_ne_bytes());
    }
}
