//! The container's view of kernel interfaces and of its own /etc files,
//! prepared as a list of mount steps by the parent and executed by the child
//! in its private mount namespace (after /proc is mounted, before the
//! capabilities are dropped).
//!
//! As docker does (moby's `oci/defaults.go`, `ReadonlyPaths` and
//! `MaskedPaths`): the parts of /proc that reach the host's kernel are
//! read-only, those that leak host information are masked; /sys is a fresh
//! read-only sysfs, mounted from inside the container's network namespace
//! so /sys/class/net lists its own interfaces, with the host's cgroup tree
//! read-only under it. Without this, root in the container writes
//! /proc/sys/kernel/core_pattern, which the host's kernel runs as root.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// /proc entries made read-only: bound over themselves, remounted read-only.
pub const READ_ONLY: [&CStr; 5] = [
    c"/proc/bus",
    c"/proc/fs",
    c"/proc/irq",
    c"/proc/sys",
    c"/proc/sysrq-trigger",
];

/// Entries masked: /dev/null over a file, an empty read-only tmpfs over a
/// directory. Those under /sys are masked after the fresh sysfs is mounted.
pub const MASKED: [&CStr; 12] = [
    c"/proc/asound",
    c"/proc/acpi",
    c"/proc/interrupts",
    c"/proc/kcore",
    c"/proc/keys",
    c"/proc/latency_stats",
    c"/proc/timer_list",
    c"/proc/timer_stats",
    c"/proc/sched_debug",
    c"/proc/scsi",
    c"/sys/firmware",
    c"/sys/devices/virtual/powercap",
];

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// Which mount failed, for the parent's error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// Index into the plan's steps.
    pub step: usize,
    pub errno: libc::c_int,
}

/// One mount the child performs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    ReadOnly(CString),
    /// A file, or a directory when the parent could not tell.
    Mask(CString),
    /// A directory, as the parent saw it: an empty read-only tmpfs.
    MaskDir(CString),
    /// A fresh read-only sysfs on /sys with the host's cgroup tree,
    /// read-only, on /sys/fs/cgroup.
    Sysfs,
    /// A file of ours bound over a path of the host's tree (/etc/hosts…),
    /// in the container's mount namespace only.
    Bind {
        source: CString,
        target: CString,
    },
}

/// Every mount step, in order. Built before clone3; `apply` allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct MountPlan {
    steps: Vec<Step>,
}

impl MountPlan {
    /// docker's protections for /proc and /sys.
    pub fn protect_kernel(&mut self) {
        fn masked(prefix: &'static [u8]) -> impl Iterator<Item = Step> {
            MASKED
                .iter()
                .filter(move |p| p.to_bytes().starts_with(prefix))
                .map(|p| {
                    // Told apart here: a failed bind costs the child 0.1 ms.
                    let path = (*p).to_owned();
                    let is_dir =
                        std::str::from_utf8(p.to_bytes()).is_ok_and(|s| Path::new(s).is_dir());
                    if is_dir {
                        Step::MaskDir(path)
                    } else {
                        Step::Mask(path)
                    }
                })
        }
        self.steps
            .extend(READ_ONLY.iter().map(|p| Step::ReadOnly((*p).to_owned())));
        self.steps.extend(masked(b"/proc/"));
        self.steps.push(Step::Sysfs);
        self.steps.extend(masked(b"/sys/"));
    }

    /// Binds `source` over `target` in the container. Fails on a NUL byte.
    pub fn bind(&mut self, source: &Path, target: &Path) -> Result<(), String> {
        let c =
            |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| p.display().to_string());
        self.steps.push(Step::Bind {
            source: c(source)?,
            target: c(target)?,
        });
        Ok(())
    }

    /// What step `index` does, for an error message.
    pub fn describe(&self, index: usize) -> String {
        match self.steps.get(index) {
            Some(Step::ReadOnly(p)) => format!("making {} read-only", p.to_string_lossy()),
            Some(Step::Mask(p) | Step::MaskDir(p)) => format!("masking {}", p.to_string_lossy()),
            Some(Step::Sysfs) => "mounting a read-only /sys with a read-only cgroup tree".into(),
            Some(Step::Bind { source, target }) => format!(
                "binding {} over {}",
                source.to_string_lossy(),
                target.to_string_lossy()
            ),
            None => "mounting".into(),
        }
    }

    /// Runs every step in the child. Paths missing on this kernel are
    /// skipped, as runc does.
    ///
    /// # Safety
    /// Only raw mount syscalls on the plan's own CStrings: safe between
    /// clone3 and exec, in a private mount namespace.
    pub unsafe fn apply(&self) -> Result<(), Failed> {
        for (step, s) in self.steps.iter().enumerate() {
            // SAFETY: see the function's contract.
            let ret = unsafe {
                match s {
                    Step::ReadOnly(path) => read_only(path),
                    Step::Mask(path) => mask(path),
                    Step::MaskDir(path) => empty_tmpfs(path),
                    Step::Sysfs => sysfs(),
                    Step::Bind { source, target } => mount(source, target, None, libc::MS_BIND),
                }
            };
            if ret < 0 {
                let errno = errno();
                if errno != libc::ENOENT {
                    return Err(Failed { step, errno });
                }
            }
        }
        Ok(())
    }
}

unsafe fn mount(
    source: &CStr,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
) -> libc::c_int {
    // SAFETY: NUL-terminated strings alive for the call; no data argument.
    unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.map_or(std::ptr::null(), CStr::as_ptr),
            flags,
            std::ptr::null(),
        )
    }
}

/// Bind over itself, then remount the bind read-only (a bind mount takes
/// its flags only on remount).
unsafe fn read_only(path: &CStr) -> libc::c_int {
    // SAFETY: see mount().
    unsafe {
        let ret = mount(path, path, None, libc::MS_BIND | libc::MS_REC);
        if ret < 0 {
            return ret;
        }
        mount(
            path,
            path,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
        )
    }
}

/// /dev/null over a file; over a directory that bind fails with ENOTDIR and
/// an empty read-only tmpfs goes there instead (no stat needed).
unsafe fn mask(path: &CStr) -> libc::c_int {
    // SAFETY: see mount().
    unsafe {
        let ret = mount(c"/dev/null", path, None, libc::MS_BIND);
        if ret == 0 || errno() != libc::ENOTDIR {
            return ret;
        }
        empty_tmpfs(path)
    }
}

unsafe fn empty_tmpfs(path: &CStr) -> libc::c_int {
    // SAFETY: see mount().
    unsafe {
        mount(
            c"tmpfs",
            path,
            Some(c"tmpfs"),
            libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
        )
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// A fresh sysfs, read-only, on /sys; the host's cgroup tree (every
/// hierarchy under it, on a hybrid host) cloned before /sys is covered,
/// made read-only recursively, and moved onto the new /sys/fs/cgroup. The
/// new sysfs belongs to the caller's network namespace: the container's.
unsafe fn sysfs() -> libc::c_int {
    // SAFETY: open_tree/mount_setattr/move_mount on NUL-terminated paths and
    // a stack MountAttr; the tree fd is closed on every path.
    unsafe {
        let tree = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/sys/fs/cgroup".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint,
        ) as libc::c_int;
        if tree >= 0 {
            let attr = MountAttr {
                attr_set: MOUNT_ATTR_RDONLY
                    | MOUNT_ATTR_NOSUID
                    | MOUNT_ATTR_NODEV
                    | MOUNT_ATTR_NOEXEC,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            let ret = libc::syscall(
                libc::SYS_mount_setattr,
                tree,
                c"".as_ptr(),
                (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
                &attr,
                std::mem::size_of::<MountAttr>(),
            );
            if ret < 0 {
                return close_keeping_errno(tree);
            }
        }
        let ret = mount(
            c"sysfs",
            c"/sys",
            Some(c"sysfs"),
            libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
        );
        if ret < 0 || tree < 0 {
            return if tree >= 0 {
                close_keeping_errno(tree)
            } else {
                ret
            };
        }
        let ret = libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            libc::AT_FDCWD,
            c"/sys/fs/cgroup".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        );
        if ret < 0 {
            return close_keeping_errno(tree);
        }
        libc::close(tree);
        0
    }
}

unsafe fn close_keeping_errno(fd: libc::c_int) -> libc::c_int {
    let saved = errno();
    // SAFETY: closing our own descriptor; errno restored for the caller.
    unsafe {
        libc::close(fd);
        *libc::__errno_location() = saved;
    }
    -1
}

fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_is_protected_before_sys_is_replaced_and_sys_masks_come_after() {
        let mut plan = MountPlan::default();
        plan.protect_kernel();
        let sysfs = plan.steps.iter().position(|s| *s == Step::Sysfs).unwrap();
        for (i, step) in plan.steps.iter().enumerate() {
            if let Step::ReadOnly(p) | Step::Mask(p) | Step::MaskDir(p) = step {
                let under_sys = p.to_bytes().starts_with(b"/sys/");
                assert_eq!(under_sys, i > sysfs, "{p:?}");
            }
        }
        assert!(plan.describe(0).contains("/proc/bus"));
    }

    #[test]
    fn a_bind_with_a_nul_byte_is_refused() {
        let mut plan = MountPlan::default();
        let bad = Path::new(std::ffi::OsStr::from_bytes(b"/a\0b"));
        assert!(plan.bind(bad, Path::new("/etc/hosts")).is_err());
        plan.bind(Path::new("/run/x/hosts"), Path::new("/etc/hosts"))
            .unwrap();
        assert_eq!(plan.describe(0), "binding /run/x/hosts over /etc/hosts");
    }
}
