//! A socket this process has just closed, its port used again: a bind
//! that must succeed, a connect that must be refused. A test beside this
//! one in the same process that forks a command (`in_fresh_netns`'s own
//! `ip link set lo up`, any `Command`) copies every descriptor of ours
//! into its child, which holds them until it execs (the close-on-exec
//! ones) or ends: until then the socket is still open, though no
//! descriptor of ours is. So the test waits for those children first,
//! and then asserts what it did before, once.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// Waits until every child this process has forked so far (from any
/// thread) has exec'd or ended, so no copy of a descriptor closed before
/// the call is left in another process. A child still runs our own
/// executable until it execs. A fork under way at the very moment of the
/// call (between its copy of our descriptors and its child's listing,
/// microseconds of the kernel's) is not seen.
pub fn forked_copies_gone() {
    let ours = executable("self");
    let pending: Vec<String> = children()
        .into_iter()
        .filter(|pid| ours.is_some() && executable(pid) == ours)
        .collect();
    // A hang guard, not a timing claim: a child execs within
    // milliseconds, even on a loaded machine.
    super::eventually(
        "the children forked beside this test exec'd",
        Duration::from_secs(30),
        || {
            pending
                .iter()
                .all(|pid| executable(pid) != ours)
                .then_some(())
        },
    );
}

/// The children of every thread of this process.
fn children() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return vec![];
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|pids| {
            pids.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The executable process `pid` runs, as its device and inode; None once
/// it has ended (a zombie has none).
fn executable(pid: &str) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((meta.dev(), meta.ino()))
}
