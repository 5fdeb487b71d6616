//! The container's side between clone3 and exec.
//!
//! This runs in a copy of a possibly multi-threaded process: only raw,
//! async-signal-safe syscalls on data prepared by the parent. No allocation,
//! no locks, no logging. Failures are reported to the parent as two integers
//! (stage, errno) on a CLOEXEC pipe, which closes unread when exec succeeds.
//! By default the child does not exec itself: it stays as the container's
//! init (init.rs), whose child execs the command and inherits that pipe.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use libc::c_char;

use super::caps::CapPlan;
use super::mounts::MountPlan;
use super::netns::Received;
use super::seccomp::Filter;

/// How far the child got when it failed, as sent over the report pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    MountPrivate = 1,
    Hostname,
    Loopback,
    Workdir,
    Capabilities,
    NoNewPrivs,
    Exec,
    Mounts,
    Seccomp,
    StartCommand,
    User,
    JoinNetwork,
    Cgroup,
    EnterNetwork,
    Scheduling,
    Ipc,
}

impl Stage {
    pub fn from_u32(v: u32) -> Option<Stage> {
        use Stage::*;
        [
            MountPrivate,
            Hostname,
            Loopback,
            Workdir,
            Capabilities,
            NoNewPrivs,
            Exec,
            Mounts,
            Seccomp,
            StartCommand,
            User,
            JoinNetwork,
            Cgroup,
            EnterNetwork,
            Scheduling,
            Ipc,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Stage::MountPrivate => "making mounts private",
            Stage::Hostname => "setting the hostname",
            Stage::Loopback => "bringing lo up",
            Stage::Workdir => "changing to the working directory",
            Stage::Capabilities => "dropping capabilities",
            Stage::NoNewPrivs => "setting no_new_privs",
            Stage::Exec => "executing the command",
            Stage::Mounts => "mounting",
            Stage::Seccomp => "installing the seccomp filter",
            Stage::StartCommand => "starting the command under the container's init",
            Stage::User => "switching to the user's ids",
            Stage::JoinNetwork => "joining the other container's network namespace",
            Stage::Cgroup => "joining the container's cgroup",
            Stage::EnterNetwork => "entering its network namespace",
            Stage::Scheduling => "making its scheduling ordinary",
            Stage::Ipc => "making its IPC namespace",
        }
    }
}

/// Everything the child needs, prepared by the parent before clone3.
pub struct ChildPlan<'a> {
    /// Files to write "0" to first, joining the container's cgroup.
    pub cgroup_join: &'a [RawFd],
    /// Read end of the release pipe: the child waits for one byte on it
    /// before its setup, and for another before it execs.
    pub release_read: RawFd,
    /// The parent's write end, which the child must close so that a dying
    /// parent reads as EOF.
    pub release_write: RawFd,
    /// Write end of the report pipe (CLOEXEC).
    pub report_write: RawFd,
    pub hostname: &'a [u8],
    pub workdir: &'a CStr,
    /// Paths to try in order, as execvp would search PATH.
    pub candidates: &'a [CString],
    /// NULL-terminated argv and envp, pointing into CStrings the parent keeps.
    pub argv: *const *const c_char,
    pub envp: *const *const c_char,
    pub caps: &'a CapPlan,
    /// (uid, gid) to switch to, with `groups` as supplementary groups.
    pub user: Option<(libc::uid_t, libc::gid_t)>,
    pub groups: &'a [libc::gid_t],
    pub mounts: &'a MountPlan,
    /// Installed last, right before exec.
    pub seccomp: Option<&'a Filter>,
    /// Stay as PID 1 (see init.rs) and run the command as our child.
    pub init: bool,
    /// The top of the stack the init's command runs on until it execs.
    pub command_stack: *mut libc::c_void,
    /// The command takes the terminal on stdin for its own process group.
    pub take_terminal: bool,
    /// Where the supervisor's environment strings are (/proc/self/stat's
    /// env_start, env_end): the init, a copy of it, zeroes them.
    pub environ: Option<(usize, usize)>,
    /// A pidfd whose network namespace the child joins (it was cloned
    /// without one of its own).
    pub join_network: Option<RawFd>,
    /// Cloned without a network namespace, the child enters the one that
    /// comes with its first release byte (see netns.rs).
    pub receive_netns: bool,
    /// With `init`: a pipe (read, write) the init's command reads to its
    /// EOF before it waits for the release, which comes once the init has
    /// closed its copy (see init.rs). -1 each without `init`.
    pub init_closed: (RawFd, RawFd),
}

/// The failure report's length: stage, errno, detail, each a native u32.
pub const REPORT_LEN: usize = 12;

const CAP_V3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Runs the child to exec; never returns.
pub fn run(plan: &ChildPlan) -> ! {
    let report = plan.report_write;
    // SAFETY: every call below is an async-signal-safe syscall wrapper on
    // memory the parent prepared before clone3 and keeps alive (our copy of
    // it, in fact); nothing allocates or takes a lock.
    unsafe {
        // Until its exec this is a copy of the supervisor, and from
        // drop_capabilities on it has the container's capabilities while its
        // pid is recorded: an exec into the container could open /proc/1/exe
        // (the host's supervisor binary: runc's CVE-2019-5736) or read our
        // memory (the host's environment) before the release. Not dumpable,
        // that needs CAP_SYS_PTRACE; the exec makes the command dumpable
        // again, and the init's command shares this mm until its own exec.
        // A failure here is as one of drop_capabilities.
        check(
            report,
            Stage::Capabilities,
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0),
        );
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        join_cgroup(report, plan.cgroup_join);
        // Its set-up is on the container's path, as the supervisor's thread
        // is (see crate::realtime); it is ordinary again before anything of
        // the container's own runs (below), and clones nothing until then.
        // After joining its cgroup, which may refuse a real-time task (and
        // then refuses this too: it stays ordinary).
        crate::realtime::enter_alone();
        libc::close(plan.release_write);
        // Its IPC namespace, here rather than in clone3: there it cost the
        // supervisor's thread 60 us on the way to the plumbing (its sysctl
        // tables and mqueue instance, perf), which this set-up, done while
        // that thread plumbs, had time for.
        check(report, Stage::Ipc, libc::unshare(libc::CLONE_NEWIPC));
        check(
            report,
            Stage::MountPrivate,
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
        );
        // What needs no network namespace runs at once, while the parent
        // still prepares the network and the namespace is being made: the
        // files the mounts bind exist before clone3.
        if let Err(failed) = plan.mounts.apply_before_network() {
            fail_at(report, Stage::Mounts, failed.errno, failed.step as u32);
        }
        check(
            report,
            Stage::Hostname,
            libc::sethostname(plan.hostname.as_ptr().cast(), plan.hostname.len()),
        );
        // Two bytes come on the release channel: the first once the network
        // namespace is there to enter (with it, when it was made apart), so
        // the setup below runs while the parent plumbs the network; the
        // second once the network is complete, to exec.
        if plan.receive_netns {
            enter_received_netns(report, plan.release_read);
        } else {
            wait_for_release(plan.release_read);
        }
        // Before the rest of the mounts: /sys shows the network namespace
        // of the process that mounts it.
        if let Some(pidfd) = plan.join_network {
            check(
                report,
                Stage::JoinNetwork,
                libc::setns(pidfd, libc::CLONE_NEWNET),
            );
        }
        if let Err(failed) = plan.mounts.apply_in_network() {
            fail_at(report, Stage::Mounts, failed.errno, failed.step as u32);
        }
        // A namespace made apart has lo up already (its thread brings it
        // up, off this path, before any plumbing takes RTNL); a joined one
        // is its owner's. Only one clone3 made needs it here.
        if !plan.receive_netns && plan.join_network.is_none() {
            check(report, Stage::Loopback, loopback_up());
        }
        check(report, Stage::Workdir, libc::chdir(plan.workdir.as_ptr()));
        drop_capabilities(report, plan.caps, plan.user, plan.groups);
        check(
            report,
            Stage::NoNewPrivs,
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
        );
        // Everything up to the exec that does not need the network runs
        // before the second byte, while the parent still plumbs it: what is
        // left after the release is the wait's read and the exec (or, with
        // the init, starting the command). Installing the filter alone
        // costs 0.2 ms (the kernel checks and compiles it).
        //
        // The init blocks every signal from here on, so none sent before
        // it waits for them is lost (PID 1 discards what it does not block).
        // Without it, what arrives until the exec meets the defaults, which
        // PID 1 ignores, as it would after.
        reset_signals(plan.init);
        // Its own process group, as docker's: signals aimed at the
        // supervisor's group reach the container only through forwarding.
        libc::setpgid(0, 0);
        // Before the filter, which may refuse sched_setscheduler: neither
        // the init nor the command is ever real-time (nor, cloned by an
        // ordinary init, anything the command starts).
        check(report, Stage::Scheduling, crate::realtime::leave());
        check(
            report,
            Stage::Seccomp,
            super::seccomp::install_terminal_guard(),
        );
        if let Some(filter) = plan.seccomp {
            check(report, Stage::Seccomp, filter.install());
        }
        // Inherited descriptors (mnl sockets are opened without CLOEXEC) must
        // not leak in; CLOEXEC rather than close keeps the report pipe usable
        // until exec, and the release channel until it is read.
        libc::close_range(
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        );
        // The init starts its command now, which waits for the release in
        // its place (see init.rs).
        if plan.init {
            super::init::run(plan)
        }
        // Waiting needs none of what was dropped. A parent that dies now
        // (PR_SET_PDEATHSIG is gone once the user's ids are set) reads as
        // EOF here.
        wait_for_release(plan.release_read);
        libc::close(plan.release_read);
        let errno = exec_candidates(plan);
        fail(report, Stage::Exec, errno)
    }
}

/// Waits for the first release byte and enters the network namespace
/// that comes with it; exits quietly on EOF, as `wait_for_release`.
unsafe fn enter_received_netns(report: RawFd, release: RawFd) {
    // SAFETY: receive_fd, setns, close and _exit are raw syscalls on stack
    // data and descriptors of ours; check/fail are async-signal-safe.
    unsafe {
        match super::netns::receive_fd(release) {
            Ok(Received::Fd(netns)) => {
                check(
                    report,
                    Stage::EnterNetwork,
                    libc::setns(netns, libc::CLONE_NEWNET),
                );
                libc::close(netns);
            }
            // The parent released us without the namespace: never run in
            // the supervisor's.
            Ok(Received::Byte) => fail(report, Stage::EnterNetwork, libc::EBADF),
            Ok(Received::Eof) | Err(_) => libc::_exit(125),
        }
    }
}

/// Joins a cgroup by writing "0" (the writer itself, whatever its pid
/// namespace) to each of `files`; reports and exits on failure.
pub(super) unsafe fn join_cgroup(report: RawFd, files: &[RawFd]) {
    for &file in files {
        // SAFETY: write of a static byte; check is async-signal-safe.
        unsafe {
            let written = libc::write(file, c"0".as_ptr().cast(), 1);
            check(report, Stage::Cgroup, written as libc::c_int);
        }
    }
}

/// Blocks until the parent writes one byte; exits quietly on EOF (the parent
/// gave up or died before releasing us).
pub(super) unsafe fn wait_for_release(fd: RawFd) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte into a stack variable.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            return;
        }
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(125) }
    }
}

/// The Rust runtime and the supervisor change signal dispositions and the
/// mask; both survive exec, so put them back to the defaults a program
/// expects: every disposition default, and no signal blocked unless
/// `block_all` (then the caller unblocks them before exec).
pub(super) unsafe fn reset_signals(block_all: bool) {
    // SAFETY: zeroed sigaction is SIG_DFL with an empty mask; sigaction and
    // sigprocmask are async-signal-safe. Signals glibc reserves (32, 33)
    // return EINVAL, which is fine.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() + 1 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let mut mask: libc::sigset_t = std::mem::zeroed();
        if block_all {
            libc::sigfillset(&mut mask);
        } else {
            libc::sigemptyset(&mut mask);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
    }
}

/// `ip link set lo up` with two ioctls on a stack ifreq.
unsafe fn loopback_up() -> libc::c_int {
    // SAFETY: socket/ioctl/close on a stack-allocated, zeroed ifreq.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return -1;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as c_char;
        }
        let mut ret = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if ret == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            ret = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let saved = errno();
        libc::close(sock);
        *libc::__errno_location() = saved;
        ret
    }
}

/// Bounding set first (it needs CAP_SETPCAP, which capset may drop), then
/// the user's ids (while CAP_SETUID/SETGID are still effective, whatever
/// --cap-drop says), then the permitted/effective/inheritable sets (none
/// for a user other than root, as docker's), then ambient cleared.
pub(super) unsafe fn drop_capabilities(
    report: RawFd,
    caps: &CapPlan,
    user: Option<(libc::uid_t, libc::gid_t)>,
    groups: &[libc::gid_t],
) {
    // SAFETY: prctl and capset on stack data; see run().
    unsafe {
        for &cap in caps.bounding_drops() {
            let ret = libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
            // EINVAL: the kernel does not know this capability; nothing to drop.
            if ret != 0 && errno() != libc::EINVAL {
                fail(report, Stage::Capabilities, errno());
            }
        }
        let mut kept = caps.kept_words();
        if let Some((uid, gid)) = user {
            // Raw syscalls, not glibc's wrappers: those change every thread
            // of the process (setxid), and the thread list the child
            // inherited through clone3 names the parent's threads, which
            // the child does not have: it waited for them forever.
            check(
                report,
                Stage::User,
                set_ids(
                    libc::SYS_setgroups,
                    [groups.len() as _, groups.as_ptr() as _, 0],
                ),
            );
            check(
                report,
                Stage::User,
                set_ids(libc::SYS_setresgid, [gid as _; 3]),
            );
            // The kernel clears permitted and effective here when uid != 0.
            check(
                report,
                Stage::User,
                set_ids(libc::SYS_setresuid, [uid as _; 3]),
            );
            if uid != 0 {
                kept = [0, 0];
            }
        }
        let [lo, hi] = kept;
        let header = CapHeader {
            version: CAP_V3,
            pid: 0,
        };
        let data = [
            CapData {
                effective: lo,
                permitted: lo,
                inheritable: lo,
            },
            CapData {
                effective: hi,
                permitted: hi,
                inheritable: hi,
            },
        ];
        check(
            report,
            Stage::Capabilities,
            libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int,
        );
        check(
            report,
            Stage::Capabilities,
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ),
        );
    }
}

/// execvp's search without its allocation: returns the errno to report.
pub(super) unsafe fn exec_candidates(plan: &ChildPlan) -> libc::c_int {
    // SAFETY: see exec_paths.
    unsafe { exec_paths(plan.candidates, plan.argv, plan.envp) }
}

/// Tries each of `candidates` in order; returns the errno to report.
///
/// # Safety
/// `argv` and `envp` are NULL-terminated arrays of NUL-terminated strings.
pub(super) unsafe fn exec_paths(
    candidates: &[CString],
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> libc::c_int {
    let mut denied = false;
    for path in candidates {
        // SAFETY: path, argv and envp are NUL-terminated and alive.
        unsafe { libc::execve(path.as_ptr(), argv, envp) };
        match errno() {
            libc::EACCES => denied = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            other => return other,
        }
    }
    if denied { libc::EACCES } else { libc::ENOENT }
}

/// Reports and exits when a setup syscall failed.
pub(super) unsafe fn check(report: RawFd, stage: Stage, ret: libc::c_int) {
    if ret < 0 {
        // SAFETY: see fail().
        unsafe { fail(report, stage, errno()) }
    }
}

pub(super) unsafe fn fail(report: RawFd, stage: Stage, errno: libc::c_int) -> ! {
    // SAFETY: see fail_at().
    unsafe { fail_at(report, stage, errno, 0) }
}

/// Reports (stage, errno, detail: which step of the stage) and exits.
unsafe fn fail_at(report: RawFd, stage: Stage, errno: libc::c_int, detail: u32) -> ! {
    let mut msg = [0u8; REPORT_LEN];
    msg[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    msg[4..8].copy_from_slice(&errno.to_ne_bytes());
    msg[8..].copy_from_slice(&detail.to_ne_bytes());
    // SAFETY: write from and _exit with stack data only. A short write is
    // impossible for 12 bytes on a pipe (PIPE_BUF atomicity).
    unsafe {
        libc::write(report, msg.as_ptr().cast(), msg.len());
        libc::_exit(if stage == Stage::Exec && errno == libc::ENOENT {
            127
        } else if stage == Stage::Exec {
            126
        } else {
            125
        })
    }
}

pub(super) fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// One of the id-changing syscalls for this thread alone, as -1/errno
/// like the wrappers (see `drop_capabilities` for why not those).
///
/// # Safety
/// `args` must be what syscall `number` expects (a pointer argument
/// pointing to live memory).
unsafe fn set_ids(number: libc::c_long, args: [libc::c_long; 3]) -> libc::c_int {
    // SAFETY: the caller passes the arguments `number` takes.
    unsafe { libc::syscall(number, args[0], args[1], args[2]) as libc::c_int }
}
