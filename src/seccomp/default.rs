//! docker's default seccomp profile, as our data: the same syscalls under
//! the same conditions as moby's `profiles/seccomp/default.json` (the
//! version whose newest entries are `futex_waitv`, `memfd_secret`,
//! `process_mrelease` and `set_mempolicy_home_node`). Everything else fails
//! with EPERM, as docker's `defaultErrnoRet`.
//!
//! What it refuses, and why (docker's reasons): namespace creation
//! (`unshare`, `clone` with namespace flags, `setns`), `mount` and the new
//! mount API, `bpf`, `perf_event_open`, `keyctl`/`add_key`/`request_key`
//! (the kernel keyring is not namespaced), `kexec_load`, module loading,
//! `reboot`, clock setting, `ptrace` before kernel 4.8, `userfaultfd`,
//! `acct`, `swapon`, `syslog`, `personality` other than the usual ones…
//! unless the container has the capability that is the reason for the
//! refusal (none of them in our default set). `clone3` fails with ENOSYS
//! so that libc falls back to `clone`, whose flags the filter can see.

use super::{Action, Arg, Condition, Op, Profile, Rule};

/// Allowed for every container.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset",
    "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat",
    "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown",
    "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
    "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_time64", "futex_waitv",
    "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
    "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
    "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid",
    "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
    "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect",
    "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl",
    "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
    "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
    "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32",
    "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list",
    "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32",
    "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd",
    "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat",
    "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
    "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
    "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev",
];

/// Allowed only with a capability: (capability, syscalls).
#[rustfmt::skip]
const WITH_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
            "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree",
            "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname",
            "setns", "syslog", "umount", "umount2", "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Allowed only on some architectures (Go names, as docker's).
#[rustfmt::skip]
const ARCH_SPECIFIC: &[(&[&str], &[&str])] = &[
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (
        &["arm", "arm64"],
        &[
            "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
            "cacheflush", "set_tls",
        ],
    ),
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (
        &["s390", "s390x"],
        &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
    ),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// personality(2) values allowed: PER_LINUX, PER_LINUX32, UNAME26,
/// UNAME26|PER_LINUX32, and 0xffffffff (the query).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Every namespace flag of clone(2): CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|
/// NEWUSER|NEWPID|NEWNET (0x7e020000).
const CLONE_NAMESPACES: u64 = 0x7e02_0000;

/// AF_VSOCK: docker refuses sockets of this family.
const AF_VSOCK: u64 = 40;

/// The architectures filtered beside the native one (docker's archMap).
fn arches() -> Vec<String> {
    let sub: &[&str] = if cfg!(target_arch = "x86_64") {
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        &[]
    };
    sub.iter().map(|s| s.to_string()).collect()
}

fn condition(arches: &[&str], caps: &[&str]) -> Condition {
    Condition {
        arches: arches.iter().map(|s| s.to_string()).collect(),
        caps: caps.iter().map(|s| s.to_string()).collect(),
        min_kernel: None,
    }
}

fn arg(index: u32, op: Op, value: u64) -> Arg {
    Arg {
        index,
        value,
        value_two: 0,
        op,
    }
}

/// docker's default profile.
pub fn default_profile() -> Profile {
    let mut rules = vec![Rule::allow(ALLOWED)];
    let mut ptrace = Rule::allow(&["process_vm_readv", "process_vm_writev", "ptrace"]);
    // Before 4.8 ptrace could bypass seccomp.
    ptrace.includes.min_kernel = Some((4, 8));
    rules.push(ptrace);
    let mut socket = Rule::allow(&["socket"]);
    socket.args = vec![arg(0, Op::Ne, AF_VSOCK)];
    rules.push(socket);
    for value in PERSONALITIES {
        let mut personality = Rule::allow(&["personality"]);
        personality.args = vec![arg(0, Op::Eq, value)];
        rules.push(personality);
    }
    for (arches, names) in ARCH_SPECIFIC {
        let mut rule = Rule::allow(names);
        rule.includes = condition(arches, &[]);
        rules.push(rule);
    }
    for (cap, names) in WITH_CAPABILITY {
        let mut rule = Rule::allow(names);
        rule.includes = condition(&[], &[cap]);
        rules.push(rule);
    }
    // Without CAP_SYS_ADMIN: clone without namespace flags (s390 passes the
    // flags second), and clone3 "not implemented" so libc uses clone.
    let mut clone = Rule::allow(&["clone"]);
    clone.args = vec![arg(0, Op::MaskedEq, CLONE_NAMESPACES)];
    clone.excludes = condition(&["s390", "s390x"], &["CAP_SYS_ADMIN"]);
    rules.push(clone);
    let mut clone_s390 = Rule::allow(&["clone"]);
    clone_s390.args = vec![arg(1, Op::MaskedEq, CLONE_NAMESPACES)];
    clone_s390.includes = condition(&["s390", "s390x"], &[]);
    clone_s390.excludes = condition(&[], &["CAP_SYS_ADMIN"]);
    rules.push(clone_s390);
    rules.push(Rule {
        names: vec!["clone3".into()],
        action: Action::Errno,
        errno: Some(libc::ENOSYS as u16),
        args: vec![],
        includes: Condition::default(),
        excludes: condition(&[], &["CAP_SYS_ADMIN"]),
    });
    Profile {
        default_action: Action::Errno,
        default_errno: Some(libc::EPERM as u16),
        arches: arches(),
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dangerous_syscalls_are_not_allowed_unconditionally() {
        for name in [
            "unshare",
            "setns",
            "mount",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "init_module",
            "reboot",
            "ptrace",
            "clone3",
            "userfaultfd",
            "open_by_handle_at",
        ] {
            assert!(!ALLOWED.contains(&name), "{name}");
        }
    }

    #[test]
    fn the_allow_list_has_no_duplicates() {
        let mut names = ALLOWED.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALLOWED.len());
    }
}
