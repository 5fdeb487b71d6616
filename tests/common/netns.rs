//! Library-level privileged tests of the network: the test runs on a thread
//! moved into a fresh network namespace (its "host", see `in_fresh_netns`)
//! with a current_thread runtime there. Containers' namespaces are made by
//! short-lived threads and held by fd.

use std::fs::File;
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

use nix::sched::{CloneFlags, unshare};

use super::{in_fresh_netns, success_stdout};

/// [`in_fresh_netns`] with a current_thread tokio runtime on that thread,
/// running `test_body`. False when privileged tests are skipped.
pub fn async_in_fresh_netns<F, Fut>(test: &str, test_body: F) -> bool
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    in_fresh_netns(test, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(test_body());
    })
    .is_some()
}

/// A new network namespace, alive while the returned fd is open.
pub fn new_netns() -> OwnedFd {
    std::thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET) for a container");
        OwnedFd::from(File::open("/proc/thread-self/ns/net").expect("open own netns"))
    })
    .join()
    .expect("netns thread")
}

/// A path naming the namespace behind `fd`, for `nsenter --net=PATH`.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd())
}

/// The calling thread's network namespace as a path.
pub fn this_thread_netns() -> String {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::gettid() };
    format!("/proc/{}/task/{tid}/ns/net", std::process::id())
}

/// Runs `script` with sh inside the namespace at `netns_path`; returns stdout,
/// panics when it fails.
pub fn sh_in(netns_path: &str, script: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={netns_path}"))
        .args(["--", "sh", "-c", script])
        .output()
        .expect("run nsenter");
    success_stdout(script, out)
}
