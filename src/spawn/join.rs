//! One more command inside a running container (`exec`): this process joins
//! the container's namespaces through a pidfd of its PID 1, then forks the
//! command, which enters the pid namespace (setns of a pid namespace only
//! applies to children) and confines itself as the container's own command
//! did: capabilities, user, no_new_privs, seccomp.
//!
//! setns(CLONE_NEWNS) sets the caller's root and cwd to the namespace's
//! root, which after the container's pivot_root is its root: no chroot is
//! needed. The caller must be single-threaded (the kernel refuses
//! CLONE_NEWNS to a process sharing its fs_struct with other threads): this
//! runs before any runtime starts and the process only waits afterwards,
//! passing the signals it gets on to the command.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use libc::c_char;

use super::caps::CapPlan;
use super::child::{self, REPORT_LEN, Stage};
use super::seccomp::Filter;
use super::{ExitStatus, Ids, Pidfd, SpawnError, cstring, null_terminated};

/// The namespaces `exec` joins: the container's (see clone3::NAMESPACES).
const JOINED: libc::c_int = super::clone3::NAMESPACES as libc::c_int;

/// What to run inside and how, resolved by the caller.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    pub env: Vec<(String, String)>,
    pub command: Vec<OsString>,
    pub workdir: PathBuf,
    pub capabilities: Vec<::caps::Capability>,
    pub user: Option<Ids>,
    pub seccomp: Option<Arc<Filter>>,
    /// The command takes the terminal on stdin for its own process group.
    pub terminal: bool,
    /// Keep stdin; otherwise it is /dev/null.
    pub interactive: bool,
    /// The files of the container's cgroup a process joins it through
    /// (`tasks` on v1, `cgroup.procs` on v2), open for writing and kept
    /// open by the caller: the command joins before anything else.
    pub cgroup_procs: Vec<RawFd>,
}

/// Joins the namespaces of `container` (its PID 1's pidfd) and runs
/// `config`'s command there; returns how it ended.
pub fn run_inside(container: &Pidfd, config: &JoinConfig) -> Result<ExitStatus, SpawnError> {
    let prepare = |what| move |source| SpawnError::Prepare { what, source };
    let (candidates, argv, envp) = super::command_strings(&config.command, &config.env)?;
    let argv_ptrs = null_terminated(&argv);
    let envp_ptrs = null_terminated(&envp);
    let workdir = cstring(
        config.workdir.as_os_str().as_bytes(),
        "the working directory",
    )?;
    let caps = CapPlan::new(&config.capabilities);
    let user = config.user.as_ref().map(|u| (u.uid, u.gid));
    let groups = config.user.as_ref().map_or(vec![], |u| u.groups.clone());
    let stdin = match config.interactive {
        true => None,
        false => Some(
            std::fs::File::open("/dev/null")
                .map(OwnedFd::from)
                .map_err(prepare("opening /dev/null"))?,
        ),
    };
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| prepare("the report pipe")(e.into()))?;
    join(container).map_err(prepare("joining the container's namespaces (setns)"))?;
    let plan = Plan {
        report: report_write.as_raw_fd(),
        cgroup_procs: &config.cgroup_procs,
        stdin: stdin.as_ref().map(|fd| fd.as_raw_fd()),
        terminal: config.terminal,
        workdir: &workdir,
        caps: &caps,
        user,
        groups: &groups,
        seccomp: config.seccomp.as_deref(),
        candidates: &candidates,
        argv: argv_ptrs.as_ptr(),
        envp: envp_ptrs.as_ptr(),
    };
    // The terminal comes back to us when the command ends; asking for it
    // from the background raises SIGTTOU.
    // SAFETY: signal() with SIG_IGN changes only our disposition.
    unsafe { libc::signal(libc::SIGTTOU, libc::SIG_IGN) };
    // Held pending from before the fork, so none sent meanwhile is lost,
    // and forwarded once the command runs (the child unblocks them).
    let forwarded = block_forwarded().map_err(prepare("blocking the signals exec forwards"))?;
    // SAFETY: the child runs only `command`, on data built above.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError::Clone(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see command().
        unsafe { command(&plan) }
    }
    drop(report_write);
    let report = read_report(report_read);
    let status = wait_forwarding(pid, &forwarded).map_err(SpawnError::Release);
    if config.terminal {
        super::reclaim_terminal();
    }
    match report {
        Some((stage, errno)) => Err(failure(stage, errno, config)),
        None => status,
    }
}

/// setns(2) on the pidfd, every namespace at once (kernel 5.8+).
fn join(container: &Pidfd) -> io::Result<()> {
    use std::os::fd::AsFd;
    // SAFETY: setns on a pidfd we own, with namespace flags.
    let ret = unsafe { libc::setns(container.as_fd().as_raw_fd(), JOINED) };
    match ret {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Everything the forked command reads, built before fork.
struct Plan<'a> {
    report: libc::c_int,
    cgroup_procs: &'a [RawFd],
    stdin: Option<libc::c_int>,
    terminal: bool,
    workdir: &'a CString,
    caps: &'a CapPlan,
    user: Option<(libc::uid_t, libc::gid_t)>,
    groups: &'a [libc::gid_t],
    seccomp: Option<&'a Filter>,
    candidates: &'a [CString],
    argv: *const *const c_char,
    envp: *const *const c_char,
}

/// The forked command's side, until exec: raw syscalls on `plan` only.
unsafe fn command(plan: &Plan) -> ! {
    // SAFETY: async-signal-safe syscalls on memory prepared before fork;
    // nothing allocates, locks or logs.
    unsafe {
        // Until its exec this is a copy of the supervisor in the container's
        // pid namespace: once its capabilities are the container's, root
        // there could open /proc/PID/exe (the host's supervisor binary, to
        // write it once we exit: runc's CVE-2019-5736) and read its memory
        // (the caller's environment). Not dumpable, it needs
        // CAP_SYS_PTRACE; the exec makes the command dumpable again. A
        // failure here is as one of drop_capabilities.
        child::check(
            plan.report,
            Stage::Capabilities,
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0),
        );
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        // First, so the limits hold for everything it does.
        child::join_cgroup(plan.report, plan.cgroup_procs);
        // Everything blocked until exec: tcsetpgrp from a background group
        // would otherwise raise SIGTTOU.
        child::reset_signals(true);
        if plan.terminal {
            libc::setpgid(0, 0);
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
        }
        if let Some(null) = plan.stdin {
            libc::dup2(null, libc::STDIN_FILENO);
        }
        child::check(
            plan.report,
            Stage::Workdir,
            libc::chdir(plan.workdir.as_ptr()),
        );
        child::drop_capabilities(plan.report, plan.caps, plan.user, plan.groups);
        child::check(
            plan.report,
            Stage::NoNewPrivs,
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
        );
        child::check(
            plan.report,
            Stage::Seccomp,
            super::seccomp::install_terminal_guard(),
        );
        if let Some(filter) = plan.seccomp {
            child::check(plan.report, Stage::Seccomp, filter.install());
        }
        libc::close_range(
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        );
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        let errno = child::exec_paths(plan.candidates, plan.argv, plan.envp);
        child::fail(plan.report, Stage::Exec, errno)
    }
}

/// (stage, errno) when the command failed before exec; None once it
/// exec'd (the pipe closed unwritten).
fn read_report(fd: OwnedFd) -> Option<(u32, i32)> {
    let mut file = std::fs::File::from(fd);
    let mut msg = [0u8; REPORT_LEN];
    use std::io::Read;
    file.read_exact(&mut msg).ok()?;
    let stage = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let errno = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
    Some((stage, errno))
}

fn failure(stage: u32, errno: i32, config: &JoinConfig) -> SpawnError {
    let source = io::Error::from_raw_os_error(errno);
    let command = config.command[0].to_string_lossy().into_owned();
    match Stage::from_u32(stage) {
        Some(Stage::Workdir) => SpawnError::Workdir {
            dir: config.workdir.clone(),
            source,
        },
        Some(Stage::Exec) if errno == libc::ENOENT => SpawnError::NotFound { command },
        Some(Stage::Exec) => SpawnError::NotExecutable { command, source },
        Some(stage) => SpawnError::Setup { stage, source },
        None => SpawnError::Release(source),
    }
}

/// The signals `exec` passes on to its command, as `run` does to its
/// container: a `kill` of the exec process, or its caller's Ctrl-C when
/// there is no terminal for it to reach the command by itself, ends the
/// command rather than orphaning it.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Blocks FORWARDED and SIGCHLD; returns that set, to wait on.
fn block_forwarded() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset operations on a zeroed stack set; sigprocmask and
    // signal only change this (single-threaded) process's mask and the
    // disposition of SIGCHLD, made default so the child is not reaped
    // behind our back.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in FORWARDED.into_iter().chain([libc::SIGCHLD]) {
            libc::sigaddset(&mut set, signal);
        }
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(set)
    }
}

/// Waits for `pid`, passing every forwarded signal on to it.
fn wait_forwarding(pid: libc::pid_t, set: &libc::sigset_t) -> io::Result<ExitStatus> {
    loop {
        if let Some(status) = reap(pid)? {
            return Ok(status);
        }
        // SAFETY: sigwaitinfo on a set we built, into a zeroed siginfo.
        let signal = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(set, &mut info)
        };
        if signal > 0 && signal != libc::SIGCHLD {
            // SAFETY: kill on our own child, not reaped yet, so its pid
            // cannot have been reused.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

/// How `pid` ended; None while it runs.
fn reap(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child into a stack int.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if ret == pid {
            break;
        }
        if ret == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
    Ok(Some(if libc::WIFSIGNALED(status) {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    }))
}
