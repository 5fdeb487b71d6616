//! Netlink sockets inside another network namespace, and what kind of
//! namespace a descriptor is.
//!
//! A socket belongs to the namespace of the thread that creates it, for its
//! whole life, and so does a /proc/sys/net file. So a short-lived std thread
//! joins the target namespace, creates the socket and hands the fd back; or,
//! where a thread's start would be most of the cost (plumbing), [`within`]
//! takes the calling thread there for one synchronous call and back, so no
//! other task ever runs on a thread in the wrong namespace. The socket holds
//! a reference on the namespace: it must be closed when the work is done, or
//! the namespace (and the veth in it) outlives the container.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sched::CloneFlags;
use rtnetlink::sys::{AsyncSocket, TokioSocket, protocols::NETLINK_ROUTE};

use super::Error;

/// A rtnetlink socket opened in another network namespace, registered with
/// the tokio runtime that asked for it.
pub struct NetnsSocket(TokioSocket);

/// A rtnetlink socket (CLOEXEC) in the network namespace `netns`.
/// The runtime keeps running while a helper thread makes it. Must be called
/// on a tokio runtime.
pub async fn socket_in(netns: BorrowedFd<'_>) -> Result<NetnsSocket, Error> {
    // The thread gets its own reference, closed as soon as it has joined.
    let netns = netns.try_clone_to_owned().map_err(Error::NetnsSocket)?;
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|err| Error::NetnsSocket(io::Error::other(err)))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns-socket".into())
        .spawn(move || {
            // Entering the runtime only lets the socket register with its
            // reactor; nothing runs on this thread.
            let _runtime = runtime.enter();
            let _ = tx.send(open_in(netns));
        })
        .map_err(Error::NetnsSocket)?;
    rx.await
        .map_err(|_| Error::NetnsSocket(io::Error::other("socket thread ended without an answer")))?
        .map(NetnsSocket)
        .map_err(Error::NetnsSocket)
}

fn open_in(netns: OwnedFd) -> io::Result<TokioSocket> {
    nix::sched::setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)?;
    drop(netns);
    // Opened with SOCK_CLOEXEC, non-blocking. Bound now rather than by
    // the kernel at the first send: left to that autobind, address dumps
    // in a container's namespace failed with EBUSY about one time in four
    // while several processes did them at once (kernel 6.18; measured with
    // concurrent `supervisor inspect`, none failed once bound here).
    let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
    socket.socket_mut().bind_auto()?;
    Ok(socket)
}

/// The calling thread's network namespace, to come back to from
/// [`within`].
fn current() -> io::Result<OwnedFd> {
    #[cfg(test)]
    tests::HOMES_OPENED.set(tests::HOMES_OPENED.get() + 1);
    Ok(OwnedFd::from(std::fs::File::open(
        "/proc/thread-self/ns/net",
    )?))
}

/// Runs `work` with the calling thread in the network namespace `netns`,
/// then brings the thread back to its own, on every way out of `work`,
/// unwinding included. Its own is opened here, by the only path that
/// comes back to it (CNI's, about 20 us), not with every connection.
///
/// `work` is synchronous: no other task runs on this thread meanwhile, so a
/// runtime thread may do it. A thread that cannot come back (the kernel
/// refusing to enter a namespace it was in a moment ago) would go on doing
/// everyone's work in the container's namespace: the process aborts then.
pub(crate) fn within<T>(netns: BorrowedFd<'_>, work: impl FnOnce() -> T) -> io::Result<T> {
    struct Back<'a>(BorrowedFd<'a>);
    impl Drop for Back<'_> {
        fn drop(&mut self) {
            if let Err(errno) = nix::sched::setns(self.0, CloneFlags::CLONE_NEWNET) {
                crate::error_chain::eprint_line(format_args!(
                    "supervisor: cannot return to its own network namespace: {errno}"
                ));
                std::process::abort();
            }
        }
    }
    let home = current()?;
    nix::sched::setns(netns, CloneFlags::CLONE_NEWNET)?;
    let _back = Back(home.as_fd());
    Ok(work())
}

/// Runs `work` with a rtnetlink handle on `socket`, then closes the socket:
/// when this returns, nothing of the connection is left open.
pub(crate) async fn with_connection<F, Fut, T>(socket: NetnsSocket, work: F) -> Result<T, Error>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let (connection, handle, unsolicited) = rtnetlink::from_socket(socket.0);
    // Without a receiver for unsolicited messages and with every handle
    // gone, the connection future completes and drops the socket.
    drop(unsolicited);
    let (result, ()) = tokio::join!(work(handle), connection);
    result
}

/// The kind of namespace `fd` is (`CLONE_NEWNET`, ...), or None when it is
/// no namespace at all.
pub fn namespace_type(fd: BorrowedFd<'_>) -> Option<libc::c_int> {
    // NS_GET_NSTYPE, _IO(0xb7, 0x3) in linux/nsfs.h; libc does not name it.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: the descriptor is open for the call's length and the request
    // takes no argument; on a file that is not a namespace it fails.
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    (kind >= 0).then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::os::unix::fs::MetadataExt;

    thread_local! {
        /// How many times the calling thread opened its own namespace.
        pub(super) static HOMES_OPENED: Cell<u32> = const { Cell::new(0) };
    }

    /// The calling thread's network namespace's inode.
    fn inode() -> u64 {
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    }

    #[test]
    fn a_connection_opens_its_namespace_only_when_it_enters_another_and_comes_back() {
        let test = "a_connection_opens_its_namespace_only_when_it_enters_another_and_comes_back";
        crate::scratch::in_own_netns(test, move || {
            let home = inode();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _nl = runtime.block_on(async { super::super::Netlink::connect().unwrap() });
            assert_eq!(HOMES_OPENED.get(), 0);
            let other = crate::scratch::in_own_netns(test, || current().unwrap()).unwrap();
            let inside = within(other.as_fd(), inode).unwrap();
            assert_eq!(HOMES_OPENED.get(), 1);
            assert_ne!(inside, home);
            assert_eq!(inode(), home);
        });
    }

    #[test]
    fn a_network_namespace_is_told_from_other_namespaces_and_plain_files() {
        let kind = |path: &str| {
            let file = std::fs::File::open(path).unwrap();
            namespace_type(file.as_fd())
        };
        assert_eq!(kind("/proc/self/ns/net"), Some(libc::CLONE_NEWNET));
        assert_eq!(kind("/proc/self/ns/mnt"), Some(libc::CLONE_NEWNS));
        assert_eq!(kind("/proc/self/stat"), None);
    }
}
