//! A procfs instance of this process's own, for the sysctls written inside
//! a container's network namespace.
//!
//! Every network namespace that opens a file below /proc/sys/net leaves
//! entries of its own in the machine's procfs, all with the same names,
//! and a later lookup of such a name compares against each of them in
//! turn (proc_sys_compare, under the global sysctl_lock; which level of
//! the path walks them, `net` or the family below it, two measurements
//! this project made disagree on, see also sysctl::host_net). With 1,000 containers attached one open
//! of eth0's disable_ipv6 took about 1 ms (3-35 us with few). Through an
//! instance of our own, which has seen no other namespace, it takes about
//! 35 us, plus about 60 us to make the instance, and the machine's list
//! stops growing. Net sysctls still resolve by the namespace of the thread
//! that opens them, not the instance's.
//!
//! The last close of the instance unmounts it and waits for RCU: 0.25-4.2
//! ms. So it is not closed where it is used: [`close_later`] keeps it, and
//! the process takes it back with [`to_close`] once its answer is given or
//! its container started, to close where nobody waits.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Mutex;

/// fsconfig's command that creates the superblock (linux/mount.h).
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
/// fsopen's and fsmount's flag for a close-on-exec descriptor.
const FS_CLOEXEC: libc::c_uint = 1;

/// A new procfs instance, mounted nowhere: its root's descriptor. None
/// where the kernel has no fsopen (before 5.2) or refuses it (no
/// CAP_SYS_ADMIN over this mount namespace, or a user namespace without a
/// fully visible /proc): the caller uses /proc then.
pub fn private() -> Option<OwnedFd> {
    // SAFETY: each syscall gets a NUL-terminated string that outlives it,
    // null pointers where linux/mount.h allows them (FSCONFIG_CMD_CREATE
    // takes no key or value), and a descriptor it returned, owned here
    // from then on; a failure returns -1 and nothing to own.
    unsafe {
        let context = libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FS_CLOEXEC);
        if context < 0 {
            return None;
        }
        let context = OwnedFd::from_raw_fd(context as libc::c_int);
        let created = libc::syscall(
            libc::SYS_fsconfig,
            std::os::fd::AsRawFd::as_raw_fd(&context),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        );
        if created < 0 {
            return None;
        }
        let mount = libc::syscall(
            libc::SYS_fsmount,
            std::os::fd::AsRawFd::as_raw_fd(&context),
            FS_CLOEXEC,
            libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC,
        );
        (mount >= 0).then(|| OwnedFd::from_raw_fd(mount as libc::c_int))
    }
}

/// Instances used and kept for [`to_close`].
static TO_CLOSE: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// Keeps `instance` open until [`to_close`] hands it over (or this process
/// ends).
pub fn close_later(instance: OwnedFd) {
    TO_CLOSE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(instance);
}

/// The instances kept by [`close_later`]: for the caller to close off its
/// answer's or container's path.
pub fn to_close() -> Vec<OwnedFd> {
    std::mem::take(
        &mut *TO_CLOSE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}
