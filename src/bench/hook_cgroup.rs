//! `bench --ipv6`: the cgroup2 directory the dual-stack runs attach their
//! `[::1]` connect hook to (`--loopback6-cgroup`). `run`'s default is the
//! cgroup2 root, where the hook would rewrite the connects of every process
//! of the machine: the bench must never attach there. A directory of its
//! own, empty of processes, costs the hook's set-up exactly as a user pays
//! it (the verifier's work and the link) and rewrites nobody's connects.
//! Made under the cgroup2 mount, removed on drop: at the end and on any
//! error.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the hook goes: `--loopback6-cgroup`'s value.
#[derive(Debug)]
pub enum HookCgroup {
    /// A directory of the bench's own, removed on drop.
    Own(PathBuf),
    /// No cgroup2 to make one in: the runs keep the relay (`none`), and why.
    None(String),
}

impl HookCgroup {
    /// A fresh directory under the cgroup2 mount, named for this process
    /// and the time (concurrent benches in pid namespaces of their own
    /// repeat pids but share the hierarchy); `None` with the reason when
    /// there is no cgroup2 or it refuses a directory.
    pub fn make() -> HookCgroup {
        let mount = match supervisor::cgroup::cgroup2_mount() {
            Ok(Some(mount)) => mount,
            Ok(None) => return HookCgroup::None("no cgroup2 hierarchy is mounted".into()),
            Err(e) => return HookCgroup::None(format!("reading /proc/self/mountinfo: {e}")),
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = mount.join(format!("supervisor-bench-{}-{nanos}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => HookCgroup::Own(dir),
            Err(e) => HookCgroup::None(format!("creating {}: {e}", dir.display())),
        }
    }

    /// `--loopback6-cgroup`'s value.
    pub fn argument(&self) -> String {
        match self {
            HookCgroup::Own(dir) => dir.display().to_string(),
            HookCgroup::None(_) => "none".into(),
        }
    }

    /// What the report says of it.
    pub fn note(&self) -> String {
        match self {
            HookCgroup::Own(dir) => format!(
                "dual stack: the [::1] connect hook attached to {} (the bench's own cgroup2 \
                 directory, no process in it), its set-up measured as users pay it",
                dir.display()
            ),
            HookCgroup::None(why) => format!(
                "dual stack: --loopback6-cgroup none ({why}): the [::1] connect hook's set-up \
                 is not in these figures"
            ),
        }
    }
}

impl Drop for HookCgroup {
    fn drop(&mut self) {
        if let HookCgroup::Own(dir) = self {
            // Empty of processes, so rmdir succeeds; a link still attached
            // (a straggling supervisor) is detached by the kernel with it.
            if let Err(e) = std::fs::remove_dir(&*dir) {
                eprintln!("supervisor bench: removing {}: {e}", dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_directory_the_runs_keep_the_relay_and_the_note_says_why() {
        let none = HookCgroup::None("no cgroup2 hierarchy is mounted".into());
        assert_eq!(none.argument(), "none");
        assert!(
            none.note()
                .contains("none (no cgroup2 hierarchy is mounted)")
        );
    }

    /// Root only: a real directory, under the cgroup2 mount and never the
    /// mount itself, gone after the drop.
    #[test]
    fn its_own_directory_is_below_the_cgroup2_root_and_removed_on_drop() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "needs root under CI");
            return;
        }
        let Ok(Some(root)) = supervisor::cgroup::cgroup2_mount() else {
            assert!(std::env::var_os("CI").is_none(), "no cgroup2 under CI");
            return;
        };
        let cgroup = HookCgroup::make();
        let HookCgroup::Own(dir) = &cgroup else {
            panic!("{cgroup:?}");
        };
        let dir = dir.clone();
        assert_eq!(dir.parent(), Some(root.as_path()));
        assert_eq!(cgroup.argument(), dir.display().to_string());
        assert!(dir.join("cgroup.procs").exists());
        drop(cgroup);
        assert!(!dir.exists());
    }
}
