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
//!
//! The container's IPC namespace is made there too, once the network
//! namespace is on its way: clone3 spent 60 us of the supervisor's thread
//! on it (its sysctl tables and mqueue instance, perf), which the thread
//! does while that clone3 runs. It goes to the child with the network
//! namespace; a child that gets none (the thread could not make it)
//! unshares one itself.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

/// A network namespace being made; `ready` gives its descriptor.
pub struct NewNetns {
    made: tokio::sync::oneshot::Receiver<io::Result<OwnedFd>>,
    /// What came, once `made` was waited for.
    came: Option<io::Result<OwnedFd>>,
    /// The IPC namespace, made after the network's (see the module).
    ipc: tokio::sync::oneshot::Receiver<io::Result<OwnedFd>>,
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
        let (ipc_tx, ipc) = tokio::sync::oneshot::channel();
        let (set_up, done) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("netns".into())
            .stack_size(STACK)
            .spawn(move || {
                // Its work is short and the supervisor waits for its end:
                // no ordinary task, the container being set up among them,
                // is to put it off (see crate::realtime).
                crate::realtime::enter();
                let made = make(CloneFlags::CLONE_NEWNET, c"/proc/thread-self/ns/net");
                let ok = made.is_ok();
                // Nobody waiting any more (the run failed before it needed
                // the namespace) drops it here, and it needs no set-up.
                if tx.send(made).is_ok() && ok {
                    let _ =
                        ipc_tx.send(make(CloneFlags::CLONE_NEWIPC, c"/proc/thread-self/ns/ipc"));
                    let _ = set_up.send(then());
                }
            })?;
        let netns = NewNetns {
            made,
            came: None,
            ipc,
        };
        Ok((netns, SetUp { done, thread }))
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

    /// The IPC namespace made after the network's; None when it could not
    /// be (the child then makes its own).
    pub async fn ipc(&mut self) -> Option<OwnedFd> {
        (&mut self.ipc).await.ok()?.ok()
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

/// Moves this thread into a new namespace of the kind `flags` names and
/// opens it at `path` (this thread's). The descriptor keeps the namespace
/// once the thread is gone.
fn make(flags: CloneFlags, path: &std::ffi::CStr) -> io::Result<OwnedFd> {
    nix::sched::unshare(flags)?;
    let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    Ok(fd)
}

/// The most descriptors a byte on the release channel carries: the
/// network namespace and the IPC one.
pub(super) const MAX_FDS: usize = 2;

/// Sends one byte and, with it, `fds` (SCM_RIGHTS, at most [`MAX_FDS`])
/// over the unix socket `socket`.
pub(super) fn send_with_fds(socket: BorrowedFd<'_>, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let fds = &fds[..fds.len().min(MAX_FDS)];
    let byte = [1u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut control = ControlBuffer::default();
    // SAFETY: msghdr, iovec and the control buffer are ours and alive for
    // the call; the CMSG_* macros and the descriptors written after
    // CMSG_DATA stay inside the control buffer, whose length, the
    // CMSG_SPACE of at most MAX_FDS descriptors, they were given.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control_len(fds.len());
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(payload_len(fds.len())) as _;
        let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
        for (i, fd) in fds.iter().enumerate() {
            std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
        }
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    match sent {
        1 => Ok(()),
        -1 => Err(io::Error::last_os_error()),
        _ => Err(io::Error::other("short send")),
    }
}

/// Room for the control message of [`MAX_FDS`] descriptors, aligned for
/// cmsghdr.
#[derive(Default)]
#[repr(C)]
pub(super) struct ControlBuffer([u64; 4]);

/// The bytes of `count` descriptors.
fn payload_len(count: usize) -> u32 {
    (count * std::mem::size_of::<libc::c_int>()) as u32
}

/// CMSG_SPACE of `count` descriptors: 24 on 64-bit Linux for two, within
/// ControlBuffer.
pub(super) fn control_len(count: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a length.
    unsafe { libc::CMSG_SPACE(payload_len(count)) as usize }
}

/// What came with a byte on the release channel.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Received {
    /// One or two descriptors, new in this process (CLOEXEC): the first,
    /// and the second or -1.
    Fds(libc::c_int, libc::c_int),
    /// A byte alone.
    Byte,
    /// Nothing: the other end is closed.
    Eof,
}

/// Reads one byte from the unix socket `socket` and the descriptors sent
/// with it, as the child does: raw syscalls on stack memory only, no
/// allocation. Err(errno) when recvmsg failed.
///
/// # Safety
/// Async-signal-safe; `socket` must be a descriptor of this process.
pub(super) unsafe fn receive_fds(socket: libc::c_int) -> Result<Received, libc::c_int> {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let mut control = ControlBuffer([0; 4]);
    // SAFETY: as send_with_fds, on this stack frame's buffers; the
    // descriptors read are those cmsg_len says the kernel wrote.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control_len(MAX_FDS);
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
        let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
        let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
            / std::mem::size_of::<libc::c_int>();
        let second = match count {
            2.. => std::ptr::read_unaligned(data.add(1)),
            _ => -1,
        };
        Ok(Received::Fds(std::ptr::read_unaligned(data), second))
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
        send_with_fds(a.as_fd(), &[file.as_fd()]).unwrap();
        // SAFETY: b is ours.
        let Ok(Received::Fds(got, -1)) = (unsafe { receive_fds(b.as_raw_fd()) }) else {
            panic!("no descriptor, or two");
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
    fn two_descriptors_sent_with_a_byte_arrive_in_their_order() {
        let (a, b) = socket_pair().unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let zero = std::fs::File::open("/dev/zero").unwrap();
        send_with_fds(a.as_fd(), &[null.as_fd(), zero.as_fd()]).unwrap();
        // SAFETY: b is ours.
        let Ok(Received::Fds(first, second)) = (unsafe { receive_fds(b.as_raw_fd()) }) else {
            panic!("no descriptors");
        };
        // SAFETY: both were just received; we own them.
        let (first, second) =
            unsafe { (OwnedFd::from_raw_fd(first), OwnedFd::from_raw_fd(second)) };
        let target =
            |fd: &OwnedFd| std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(target(&first), std::path::Path::new("/dev/null"));
        assert_eq!(target(&second), std::path::Path::new("/dev/zero"));
    }

    /// clone3 no longer makes it when the network namespace is made
    /// apart: the container gets this one (see the module).
    #[test]
    fn an_ipc_namespace_of_its_own_comes_after_the_network_namespace() {
        if !crate::scratch::root("an_ipc_namespace_of_its_own_comes_after_the_network_namespace") {
            return;
        }
        let (mut netns, set_up) = NewNetns::start(|| ()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ipc = runtime.block_on(async {
            let ipc = netns.ipc().await.expect("an IPC namespace");
            netns.ready().await.unwrap();
            set_up.done().await;
            ipc
        });
        let ns = |path: String| std::fs::read_link(path).unwrap();
        let made = ns(format!("/proc/self/fd/{}", ipc.as_raw_fd()));
        assert!(made.to_string_lossy().starts_with("ipc:["), "{made:?}");
        assert_ne!(made, ns("/proc/self/ns/ipc".to_string()));
    }

    #[test]
    fn a_plain_byte_and_a_closed_end_are_told_apart() {
        let (a, b) = socket_pair().unwrap();
        nix::unistd::write(&a, &[1]).unwrap();
        // SAFETY: b is ours.
        assert_eq!(unsafe { receive_fds(b.as_raw_fd()) }, Ok(Received::Byte));
        drop(a);
        // SAFETY: b is ours.
        assert_eq!(unsafe { receive_fds(b.as_raw_fd()) }, Ok(Received::Eof));
    }
}
