//! The container's network namespace, made on a thread of its own while
//! the caller goes on.
//!
//! Creating a network namespace is most of what clone3 costs (0.45 of its
//! 0.7 ms here: registering lo and every per-namespace sysctl table), and
//! clone3 runs on the same thread as everything else before the network is
//! plumbed. Made by `unshare` on a short-lived thread instead, from the
//! start of a run, it is ready by the time it is needed, and the container
//! is cloned without one and enters it at `Container::begin_setup`: the
//! descriptor goes to the child with its first release byte (SCM_RIGHTS),
//! since the child's descriptor table was copied before the namespace
//! existed. The same thread then readies the namespace from inside (the
//! caller's set-up: lo up, and the defaults its interfaces inherit) while
//! the container sets itself up, and hands back what that gave.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A network namespace being made; `ready` gives its descriptor.
pub struct NewNetns {
    made: tokio::sync::oneshot::Receiver<io::Result<OwnedFd>>,
    /// What came, once `made` was waited for.
    came: Option<io::Result<OwnedFd>>,
}

/// What the namespace's thread did in it once its descriptor was on its
/// way (see [`NewNetns::start`]).
pub struct SetUp<T> {
    done: tokio::sync::oneshot::Receiver<T>,
    thread: std::thread::JoinHandle<()>,
}

/// The thread only makes a namespace, opens it and runs the caller's short
/// set-up there (a netlink socket's requests): little stack.
const STACK: usize = 128 * 1024;

impl NewNetns {
    /// Starts making a network namespace, then runs `then` on the same
    /// thread, inside it, once its descriptor is ready for the container:
    /// what the namespace needs before it is used (lo up, defaults its
    /// interfaces inherit) is done while the container sets itself up,
    /// and off the thread that clones it. Needs no runtime.
    pub fn start<T: Send + 'static>(
        then: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<(NewNetns, SetUp<T>)> {
        let (tx, made) = tokio::sync::oneshot::channel();
        let (set_up, done) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("netns".into())
            .stack_size(STACK)
            .spawn(move || {
                // Its work is short and the supervisor waits for its end:
                // no ordinary task, the container being set up among them,
                // is to put it off (see crate::realtime).
                crate::realtime::enter();
                let made = make();
                let ok = made.is_ok();
                // Nobody waiting any more (the run failed before it needed
                // the namespace) drops it here, and it needs no set-up.
                if tx.send(made).is_ok() && ok {
                    let _ = set_up.send(then());
                }
            })?;
        Ok((NewNetns { made, came: None }, SetUp { done, thread }))
    }

    /// Waits until the namespace is made (or could not be), while its
    /// thread may still be readying it; `ready` then has it at once.
    pub async fn made(&mut self) {
        if self.came.is_none() {
            let made = (&mut self.made).await;
            self.came = Some(made.unwrap_or_else(|_| Err(ended_without_one())));
        }
    }

    /// The namespace, once made.
    pub async fn ready(mut self) -> io::Result<OwnedFd> {
        self.made().await;
        self.came.unwrap_or_else(|| Err(ended_without_one()))
    }
}

fn ended_without_one() -> io::Error {
    io::Error::other("the netns thread ended without one")
}

impl<T> SetUp<T> {
    /// What the set-up returned, once the thread has ended; None when it
    /// never ran (the namespace could not be made) or did not finish.
    ///
    /// Ended, not only done: a process that forks while another of its
    /// threads runs pays, at each page either side writes first after
    /// the fork (a copy-on-write fault), for an interrupt to the other
    /// CPU to flush its TLB, which on this VM costs ~20 us a fault and
    /// came to 0.4-0.5 ms of the supervisor's thread per container
    /// (perf). Awaited right after the container's clone, before the
    /// supervisor's thread works on, the thread leaves the address space
    /// to that thread alone.
    pub async fn done(self) -> Option<T> {
        let done = self.done.await.ok();
        // Its last steps after the send are its own exit: short, and a
        // panic there has nothing left to lose.
        let _ = self.thread.join();
        done
    }
}

/// Moves this thread into a new network namespace and opens it. The
/// descriptor keeps the namespace once the thread is gone.
fn make() -> io::Result<OwnedFd> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
    Ok(std::fs::File::open("/proc/thread-self/ns/net")?.into())
}

/// Sends one byte and, with it, `fd` (SCM_RIGHTS) over the unix socket
/// `socket`.
pub(super) fn send_with_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let byte = [1u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut control = ControlBuffer::default();
    // SAFETY: msghdr, iovec and the control buffer are ours and alive for
    // the call; the CMSG_* macros stay inside the control buffer, whose
    // length CMSG_SPACE(sizeof(int)) they were given.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control_len();
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    match sent {
        1 => Ok(()),
        -1 => Err(io::Error::last_os_error()),
        _ => Err(io::Error::other("short send")),
    }
}

/// Room for one descriptor's control message, aligned for cmsghdr.
#[derive(Default)]
#[repr(C)]
pub(super) struct ControlBuffer([u64; 4]);

/// CMSG_SPACE(sizeof(int)): 24 on 64-bit Linux, within ControlBuffer.
pub(super) fn control_len() -> usize {
    // SAFETY: CMSG_SPACE only computes a length.
    unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize }
}

/// What came with a byte on the release channel.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Received {
    /// A descriptor, new in this process (CLOEXEC).
    Fd(libc::c_int),
    /// A byte alone.
    Byte,
    /// Nothing: the other end is closed.
    Eof,
}

/// Reads one byte from the unix socket `socket` and the descriptor sent
/// with it, as the child does: raw syscalls on stack memory only, no
/// allocation. Err(errno) when recvmsg failed.
///
/// # Safety
/// Async-signal-safe; `socket` must be a descriptor of this process.
pub(super) unsafe fn receive_fd(socket: libc::c_int) -> Result<Received, libc::c_int> {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let mut control = ControlBuffer([0; 4]);
    // SAFETY: as send_with_fd, on this stack frame's buffers.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control_len();
        let n = loop {
            let n = libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || super::child::errno() != libc::EINTR {
                break n;
            }
        };
        if n < 0 {
            return Err(super::child::errno());
        }
        if n == 0 {
            return Ok(Received::Eof);
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Ok(Received::Byte);
        }
        Ok(Received::Fd(std::ptr::read_unaligned(
            libc::CMSG_DATA(cmsg).cast::<libc::c_int>(),
        )))
    }
}

/// A connected pair of unix stream sockets (CLOEXEC): the release channel,
/// which carries the network namespace with its first byte.
pub(super) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two new descriptors into `fds`.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_sent_with_a_byte_arrives_as_a_new_cloexec_descriptor() {
        let (a, b) = socket_pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        send_with_fd(a.as_fd(), file.as_fd()).unwrap();
        // SAFETY: b is ours.
        let Ok(Received::Fd(got)) = (unsafe { receive_fd(b.as_raw_fd()) }) else {
            panic!("no descriptor");
        };
        // SAFETY: the descriptor was just received; we own it.
        let got = unsafe { OwnedFd::from_raw_fd(got) };
        assert_ne!(got.as_raw_fd(), file.as_raw_fd());
        let flags = nix::fcntl::fcntl(got.as_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        let target = std::fs::read_link(format!("/proc/self/fd/{}", got.as_raw_fd())).unwrap();
        assert_eq!(target, std::path::Path::new("/dev/null"));
    }

    /// The container, once cloned, would otherwise preempt the thread
    /// for its whole set-up while the supervisor waits for the thread's
    /// last step (see crate::realtime).
    #[test]
    fn the_namespaces_thread_does_its_set_up_real_time() {
        if !crate::scratch::root("the_namespaces_thread_does_its_set_up_real_time") {
            return;
        }
        let (netns, set_up) = NewNetns::start(crate::realtime::is_real_time).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let real_time = runtime.block_on(async {
            netns.ready().await.unwrap();
            set_up.done().await
        });
        assert_eq!(real_time, Some(true));
        assert!(!crate::realtime::is_real_time());
    }

    /// The supervisor works on once `done` returns: a thread of ours still
    /// running then would make its copy-on-write faults interrupt that
    /// thread's CPU (see `SetUp::done`).
    #[test]
    fn the_set_up_is_done_only_once_the_namespaces_thread_has_ended() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        if !crate::scratch::root("the_set_up_is_done_only_once_the_namespaces_thread_has_ended") {
            return;
        }
        /// Dropped with the thread's locals, after its set-up was sent.
        struct SlowExit(Arc<AtomicBool>);
        impl Drop for SlowExit {
            fn drop(&mut self) {
                std::thread::sleep(std::time::Duration::from_millis(50));
                self.0.store(true, Ordering::SeqCst);
            }
        }
        thread_local! {
            static AT_EXIT: std::cell::RefCell<Option<SlowExit>> = const { std::cell::RefCell::new(None) };
        }
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        let (netns, set_up) = NewNetns::start(move || {
            AT_EXIT.with(|slot| *slot.borrow_mut() = Some(SlowExit(flag)));
        })
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            netns.ready().await.unwrap();
            assert_eq!(set_up.done().await, Some(()));
        });
        assert!(ended.load(Ordering::SeqCst), "the thread was still running");
    }

    /// The container is cloned once its namespace is made, while the
    /// thread still readies it (see `supervisor::lifecycle`).
    #[test]
    fn a_namespace_is_made_before_its_set_up_is_done() {
        if !crate::scratch::root("a_namespace_is_made_before_its_set_up_is_done") {
            return;
        }
        let (go_on, wait) = std::sync::mpsc::channel::<()>();
        let (mut netns, set_up) = NewNetns::start(move || wait.recv().is_ok()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let made = tokio::time::timeout(std::time::Duration::from_secs(5), netns.made());
            made.await.expect("made while its set-up still waits");
            let fd = netns.ready().await.unwrap();
            let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
            assert!(link.to_string_lossy().starts_with("net:["), "{link:?}");
            go_on.send(()).unwrap();
            assert_eq!(set_up.done().await, Some(true));
        });
    }

    #[test]
    fn a_plain_byte_and_a_closed_end_are_told_apart() {
        let (a, b) = socket_pair().unwrap();
        nix::unistd::write(&a, &[1]).unwrap();
        // SAFETY: b is ours.
        assert_eq!(unsafe { receive_fd(b.as_raw_fd()) }, Ok(Received::Byte));
        drop(a);
        // SAFETY: b is ours.
        assert_eq!(unsafe { receive_fd(b.as_raw_fd()) }, Ok(Received::Eof));
    }
}
