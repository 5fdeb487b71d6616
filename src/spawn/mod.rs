//! Starting the container process: clone3 into new namespaces with a pidfd;
//! it mounts what needs no network namespace at once, is held on a unix
//! socket until its network namespace (made apart by `netns`) is there to
//! enter, then finishes its setup (the rest of the mounts, capabilities,
//! seccomp) while the parent plumbs its network, held again until that is
//! done, then exec.
//! This module knows nothing of networks; it hands out the child's pid and
//! pidfd and lets the caller decide when to release it.

mod caps;
mod child;
mod clone3;
mod init;
mod join;
mod mounts;
mod netns;
mod pidfd;
mod seccomp;

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use libc::c_char;
use tokio::io::AsyncReadExt;

use self::caps::CapPlan;
pub use self::caps::{
    CONTAINER_DEFAULT as DEFAULT_CAPABILITIES, missing as missing_capabilities,
    names as capability_names, not_held as capabilities_not_held,
};
pub use self::child::Stage;
use self::child::{ChildPlan, REPORT_LEN};
use self::clone3::{Forked, clone3};
pub use self::join::{JoinConfig, run_inside};
pub use self::mounts::{MountPlan, Target};
pub use self::netns::{NewNetns, SetUp};
pub use self::pidfd::{ExitStatus, Pidfd};
pub use self::seccomp::Filter as SeccompFilter;
use crate::values::quoted;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{what}")]
    Prepare {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{what} contains a NUL byte")]
    Nul { what: String },
    #[error("clone3 of the container failed")]
    Clone(#[source] io::Error),
    #[error("releasing the container failed")]
    Release(#[source] io::Error),
    /// Its init was gone when released (killed, or its command was),
    /// without a report of a failed setup.
    #[error("the container ended before its command started ({})", ended(.0))]
    EndedBeforeRelease(ExitStatus),
    #[error("making the container's network namespace")]
    Netns(#[source] io::Error),
    #[error("{command}: command not found")]
    NotFound { command: String },
    #[error("{command}: cannot execute")]
    NotExecutable {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("container setup failed while {}", stage.describe())]
    Setup {
        stage: Stage,
        #[source]
        source: io::Error,
    },
    /// `exec`'s command could not enter its working directory (`-w`'s,
    /// or the container's): named, as `run -w` names one it refuses.
    #[error("container setup failed while changing to the working directory {}", quoted(.dir))]
    Workdir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container setup failed while {what}")]
    Mount {
        what: String,
        #[source]
        source: io::Error,
    },
}

/// How a process ended, as the error of one that ended too soon says it.
fn ended(status: &ExitStatus) -> String {
    match status {
        ExitStatus::Exited(code) => format!("it exited with {code}"),
        ExitStatus::Signaled(signal) => format!("it was killed by signal {signal}"),
    }
}

impl SpawnError {
    /// docker's exit codes: 127 not found, 126 not executable, 125 ours.
    pub fn exit_code(&self) -> u8 {
        match self {
            SpawnError::NotFound { .. } => 127,
            SpawnError::NotExecutable { .. } => 126,
            _ => 125,
        }
    }
}

/// What to run and how; validated by the caller.
#[derive(Debug, Clone)]
pub struct SpawnConfig {
    pub hostname: String,
    pub workdir: PathBuf,
    /// The container's whole environment; PATH in it drives the command search.
    pub env: Vec<(String, String)>,
    pub command: Vec<OsString>,
    /// PID 1 is a minimal init (init.rs) with the command as its child;
    /// false: the command is PID 1.
    pub init: bool,
    /// Hand the terminal on stdin to the command's process group, as
    /// `docker run -it` does: Ctrl-C then reaches the command (or its
    /// foreground job), not the supervisor. With an init, the command takes
    /// it itself (see init.rs); without, the supervisor gives it to PID 1.
    pub take_terminal: bool,
    /// The capabilities the command keeps (bounding set and, as root,
    /// permitted and effective).
    pub capabilities: Vec<::caps::Capability>,
    /// None: stay root, with the supervisor's groups.
    pub user: Option<Ids>,
    pub confinement: Confinement,
    /// Another container's PID 1, whose network namespace the child joins
    /// (setns on the pidfd) instead of getting a new one.
    pub join_network: Option<std::sync::Arc<Pidfd>>,
    /// A cgroup2 directory the container starts in (CLONE_INTO_CGROUP),
    /// kept open by the caller until `spawn` returns.
    pub cgroup: Option<std::os::fd::RawFd>,
    /// Files the child writes "0" to as its first step, to join a cgroup
    /// (v1's `tasks`), kept open by the caller until `spawn` returns.
    pub cgroup_join: Vec<std::os::fd::RawFd>,
}

/// The ids the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// What the container may see and call, beyond its namespaces and
/// capabilities: its mounts, then a seccomp filter installed last.
#[derive(Debug, Clone, Default)]
pub struct Confinement {
    pub mounts: MountPlan,
    pub seccomp: Option<std::sync::Arc<SeccompFilter>>,
}

/// Owned, NUL-terminated copies of everything the child reads, built before
/// clone3 so the child never allocates.
struct Prepared {
    hostname: Vec<u8>,
    workdir: CString,
    candidates: Vec<CString>,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const c_char>,
    caps: CapPlan,
    user: Option<(libc::uid_t, libc::gid_t)>,
    groups: Vec<libc::gid_t>,
    /// Memory for the init's command to run on until it execs (init.rs).
    command_stack: Vec<u8>,
}

impl Prepared {
    fn new(config: &SpawnConfig) -> Result<Prepared, SpawnError> {
        let (candidates, argv, envp) = command_strings(&config.command, &config.env)?;
        let argv_ptrs = null_terminated(&argv);
        let envp_ptrs = null_terminated(&envp);
        Ok(Prepared {
            hostname: config.hostname.as_bytes().to_vec(),
            workdir: cstring(
                config.workdir.as_os_str().as_bytes(),
                "the working directory",
            )?,
            candidates,
            _argv: argv,
            argv_ptrs,
            _envp: envp,
            envp_ptrs,
            caps: CapPlan::new(&config.capabilities),
            user: config.user.as_ref().map(|u| (u.uid, u.gid)),
            groups: config.user.as_ref().map_or(vec![], |u| u.groups.clone()),
            command_stack: Vec::with_capacity(if config.init { init::COMMAND_STACK } else { 0 }),
        })
    }

    /// The top of the command's stack, 16-byte aligned as the ABI wants.
    fn command_stack_top(&mut self) -> *mut libc::c_void {
        let capacity = self.command_stack.capacity();
        let top = self.command_stack.as_mut_ptr().wrapping_add(capacity);
        top.wrapping_sub(top as usize % 16).cast()
    }
}

/// The paths to try, argv and envp of `command` in `env`, as C strings.
#[allow(clippy::type_complexity)]
fn command_strings(
    command: &[OsString],
    env: &[(String, String)],
) -> Result<(Vec<CString>, Vec<CString>, Vec<CString>), SpawnError> {
    let candidates = search_path(&command[0], path_of(env))?;
    let argv = command
        .iter()
        .map(|a| cstring(a.as_bytes(), "an argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes(), "an environment variable"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((candidates, argv, envp))
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString, SpawnError> {
    CString::new(bytes).map_err(|_| SpawnError::Nul {
        what: what.to_string(),
    })
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn path_of(env: &[(String, String)]) -> &str {
    env.iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// execvp's candidate list: the command itself when it has a slash, else
/// each PATH directory joined with it.
fn search_path(command: &OsStr, path: &str) -> Result<Vec<CString>, SpawnError> {
    let name = command.as_bytes();
    if name.contains(&b'/') {
        return Ok(vec![cstring(name, "the command")?]);
    }
    path.split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
        .map(|dir| {
            let mut full = dir.as_bytes().to_vec();
            full.push(b'/');
            full.extend_from_slice(name);
            cstring(&full, "the command")
        })
        .collect()
}

/// A container process between clone3 and its exit.
pub struct Container {
    pid: libc::pid_t,
    pidfd: Pidfd,
    release: Option<OwnedFd>,
    /// Whether the child has its first byte (see `begin_setup`).
    setting_up: bool,
    /// Its network namespace when made apart: pending until `begin_setup`,
    /// then kept for `netns` until `release`.
    netns: Netns,
    report: Option<OwnedFd>,
    command: String,
    /// To name the mount that failed.
    mounts: MountPlan,
}

impl Container {
    /// Clones the child into its new namespaces. It mounts what needs no
    /// network namespace at once, so the files its mounts bind must exist;
    /// then it waits, blocked on a unix socket, until `begin_setup`;
    /// dropping the Container before `release` makes it exit.
    pub fn spawn(config: &SpawnConfig) -> Result<Container, SpawnError> {
        Container::clone_child(config, Netns::Child)
    }

    /// As `spawn`, but without a network namespace of clone3's making: the
    /// child enters `netns` at `begin_setup`, once it is made. Unless
    /// `config` joins another container's network, which then wins.
    pub fn spawn_into(config: &SpawnConfig, netns: NewNetns) -> Result<Container, SpawnError> {
        Container::clone_child(config, Netns::Pending(netns))
    }

    fn clone_child(config: &SpawnConfig, netns: Netns) -> Result<Container, SpawnError> {
        let netns = match (&config.join_network, netns) {
            (Some(_), _) => Netns::Child,
            (None, netns) => netns,
        };
        let mut prepared = Prepared::new(config)?;
        let command_stack = prepared.command_stack_top();
        let (release_read, release_write) =
            netns::socket_pair().map_err(|source| SpawnError::Prepare {
                what: "the release socket",
                source,
            })?;
        let (report_read, report_write) = pipe("the report pipe")?;
        let init_closed = match config.init {
            true => Some(pipe("the init's pipe")?),
            false => None,
        };
        let plan = ChildPlan {
            cgroup_join: &config.cgroup_join,
            release_read: release_read.as_raw_fd(),
            release_write: release_write.as_raw_fd(),
            report_write: report_write.as_raw_fd(),
            hostname: &prepared.hostname,
            workdir: &prepared.workdir,
            candidates: &prepared.candidates,
            argv: prepared.argv_ptrs.as_ptr(),
            envp: prepared.envp_ptrs.as_ptr(),
            caps: &prepared.caps,
            user: prepared.user,
            groups: &prepared.groups,
            mounts: &config.confinement.mounts,
            seccomp: config.confinement.seccomp.as_deref(),
            init: config.init,
            command_stack,
            take_terminal: config.take_terminal,
            environ: crate::values::Process::own_environment(),
            join_network: config.join_network.as_ref().map(|p| p.as_fd().as_raw_fd()),
            receive_netns: matches!(netns, Netns::Pending(_)),
            init_closed: init_closed
                .as_ref()
                .map_or((-1, -1), |(r, w)| (r.as_raw_fd(), w.as_raw_fd())),
        };
        // The IPC namespace is the child's own making (see child::run).
        let namespaces = match (&config.join_network, &netns) {
            (None, Netns::Child) => clone3::NAMESPACES,
            _ => clone3::NAMESPACES & !(libc::CLONE_NEWNET as u64),
        } & !(libc::CLONE_NEWIPC as u64);
        // SAFETY: the child runs only child::run, which is async-signal-safe
        // and reads nothing but `plan` and `prepared`, both built above.
        match unsafe { clone3(namespaces, config.cgroup) }.map_err(SpawnError::Clone)? {
            Forked::Child => child::run(&plan),
            Forked::Parent { pid, pidfd } => {
                drop(release_read);
                drop(report_write);
                drop(init_closed);
                let container = Container {
                    pid,
                    pidfd: Pidfd::new(pidfd),
                    release: Some(release_write),
                    setting_up: false,
                    netns,
                    report: Some(report_read),
                    command: config.command[0].to_string_lossy().into_owned(),
                    mounts: config.confinement.mounts.clone(),
                };
                if config.take_terminal && !config.init {
                    container.give_terminal();
                }
                Ok(container)
            }
        }
    }

    /// The container's pid in our (the host's) pid namespace.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    pub fn pidfd(&self) -> &Pidfd {
        &self.pidfd
    }

    /// Its network namespace, for plumbing before release.
    pub fn netns(&self) -> io::Result<std::fs::File> {
        match &self.netns {
            Netns::Ready(fd) => Ok(fd.try_clone()?.into()),
            // Until the child has entered it, /proc would show ours.
            Netns::Pending(_) | Netns::Failed => Err(io::Error::other(
                "the container's network namespace is not made",
            )),
            Netns::Child => std::fs::File::open(format!("/proc/{}/ns/net", self.pid)),
        }
    }

    /// Makes the container's process group the terminal's foreground group,
    /// before it runs, so an interactive shell finds itself in charge.
    fn give_terminal(&self) {
        // SAFETY: setpgid on our own not-yet-exec'd child and tcsetpgrp on
        // stdin; failures only mean job control stays as it was.
        unsafe {
            libc::setpgid(self.pid, self.pid);
            libc::tcsetpgrp(libc::STDIN_FILENO, self.pid);
        }
    }

    /// Lets the child finish setting itself up (the mounts that need its
    /// network namespace, capabilities, seccomp: all but the exec) while
    /// the caller goes on, e.g. plumbing its network; first waits for its
    /// network namespace when that is made apart (`spawn_into`), and sends
    /// it along. A child that fails here reports it at `release`.
    pub async fn begin_setup(&mut self) -> Result<(), SpawnError> {
        if self.setting_up {
            return Ok(());
        }
        self.netns = match std::mem::replace(&mut self.netns, Netns::Failed) {
            Netns::Pending(made) => Netns::Ready(made.ready().await.map_err(SpawnError::Netns)?),
            other => other,
        };
        if let Some(fd) = &self.release {
            // A failed send means the child is gone: its report, if any,
            // is read at release.
            let _ = match &self.netns {
                Netns::Ready(netns) => netns::send_with_fd(fd.as_fd(), netns.as_fd()),
                _ => nix::unistd::write(fd, &[1])
                    .map(drop)
                    .map_err(io::Error::from),
            };
        }
        self.setting_up = true;
        Ok(())
    }

    /// Lets the child go on to exec (after its setup, begun here unless
    /// `begin_setup` did), then waits until it has exec'd or reported why
    /// it could not.
    pub async fn release(&mut self) -> Result<(), SpawnError> {
        if let Err(err) = self.begin_setup().await {
            // The child, never released, ends at EOF.
            self.release = None;
            return Err(err);
        }
        // Its own from now on, which /proc shows.
        self.netns = Netns::Child;
        let released = match self.release.take() {
            Some(fd) => nix::unistd::write(&fd, &[1]).map(drop),
            None => Ok(()),
        };
        let Some(report) = self.report.take() else {
            return released.map_err(|e| SpawnError::Release(e.into()));
        };
        let mut reader =
            tokio::net::unix::pipe::Receiver::from_owned_fd(report).map_err(SpawnError::Release)?;
        let mut msg = Vec::with_capacity(REPORT_LEN);
        reader
            .read_to_end(&mut msg)
            .await
            .map_err(SpawnError::Release)?;
        if msg.len() < REPORT_LEN {
            // EOF with nothing written: the exec succeeded, unless the
            // child was gone before it could read the release (nobody has
            // the channel's other end: EPIPE), which its status explains.
            return match released {
                Err(nix::errno::Errno::EPIPE) => Err(match self.pidfd.wait().await {
                    Ok(status) => SpawnError::EndedBeforeRelease(status),
                    Err(err) => SpawnError::Release(err),
                }),
                other => other.map_err(|e| SpawnError::Release(e.into())),
            };
        }
        let stage = u32::from_ne_bytes(msg[..4].try_into().unwrap_or_default());
        let errno = i32::from_ne_bytes(msg[4..8].try_into().unwrap_or_default());
        let detail = u32::from_ne_bytes(msg[8..12].try_into().unwrap_or_default());
        let source = io::Error::from_raw_os_error(errno);
        let command = self.command.clone();
        Err(match Stage::from_u32(stage) {
            Some(Stage::Exec) if errno == libc::ENOENT => SpawnError::NotFound { command },
            Some(Stage::Exec) => SpawnError::NotExecutable { command, source },
            Some(Stage::Mounts) => SpawnError::Mount {
                what: self.mounts.describe(detail as usize),
                source: MountPlan::cause(errno),
            },
            Some(stage) => SpawnError::Setup { stage, source },
            None => SpawnError::Release(source),
        })
    }

    /// Kills a container that never got released (setup failed) and reaps it.
    pub async fn abort(mut self) {
        self.release = None;
        let _ = self.pidfd.send_signal(libc::SIGKILL);
        let _ = self.pidfd.wait().await;
    }
}

impl AsFd for Container {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

/// Where a container's network namespace comes from.
enum Netns {
    /// The child's own, which /proc shows: clone3 made it, or the child
    /// joined another container's (`join_network`), or entered the one it
    /// was released with.
    Child,
    /// Being made apart; the child gets it at `begin_setup`.
    Pending(NewNetns),
    /// Made, and sent to the child.
    Ready(OwnedFd),
    /// Made apart, and that failed: the child never runs.
    Failed,
}

fn pipe(what: &'static str) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError::Prepare {
        what,
        source: e.into(),
    })
}

/// Gives the terminal back to the supervisor's own process group, if the
/// container had it. SIGTTOU must be ignored or blocked by the caller.
pub fn reclaim_terminal() {
    // SAFETY: getpgrp cannot fail; tcsetpgrp on stdin only changes which
    // group the terminal serves.
    unsafe {
        libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
    }
}

/// The path of the terminal on stdin in our mount namespace, when it leads
/// to that very terminal: the container's /dev/console is bound from it
/// (see `MountPlan::terminal`). None for anything else on stdin, or a
/// terminal whose path is not ours to follow (another namespace's pty),
/// and for a pty's master side: `/dev/ptmx` bound there opens a new,
/// unconnected master, which is not the caller's terminal at all.
pub fn terminal_path() -> Option<PathBuf> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let stdin = std::fs::metadata("/proc/self/fd/0").ok()?;
    if is_pty_master(&stdin) {
        return None;
    }
    let path = std::fs::read_link("/proc/self/fd/0").ok()?;
    let found = std::fs::metadata(&path).ok()?;
    let same = |m: &std::fs::Metadata| (m.dev(), m.ino(), m.rdev());
    (stdin.file_type().is_char_device() && same(&stdin) == same(&found)).then_some(path)
}

/// Whether stdin is the master side of a pseudo-terminal: one opened from
/// /dev/ptmx or devpts's own ptmx (both answer TIOCGPTN, which no slave
/// does), or a BSD-style master (major 2).
fn is_pty_master(stdin: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mut index: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to the pointer given, a
    // local that outlives the call; on anything but a master it fails.
    let master = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGPTN, &mut index) } == 0;
    master || libc::major(stdin.rdev()) == 2
}

/// True when stdin is a terminal whose foreground group is ours: then the
/// container should get the terminal, as a shell gives it to a job.
pub fn terminal_is_ours() -> bool {
    // SAFETY: isatty/tcgetpgrp/getpgrp only query.
    unsafe {
        libc::isatty(libc::STDIN_FILENO) == 1
            && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_with_a_slash_is_its_only_candidate() {
        let c = search_path(OsStr::new("./run.sh"), "/bin:/usr/bin").unwrap();
        assert_eq!(c, vec![CString::new("./run.sh").unwrap()]);
    }

    #[test]
    fn bare_command_is_searched_in_path_order() {
        let c = search_path(OsStr::new("nc"), "/usr/bin::/bin").unwrap();
        let c: Vec<_> = c.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(c, ["/usr/bin/nc", "./nc", "/bin/nc"]);
    }

    #[test]
    fn the_last_path_in_the_environment_wins() {
        let env = vec![
            ("PATH".to_string(), "/a".to_string()),
            ("PATH".to_string(), "/b".to_string()),
        ];
        assert_eq!(path_of(&env), "/b");
    }

    #[test]
    fn the_inits_command_gets_an_aligned_stack_of_its_own_and_no_init_none() {
        let mut config = SpawnConfig {
            hostname: "h".into(),
            workdir: "/".into(),
            env: vec![],
            command: vec!["/bin/true".into()],
            init: true,
            take_terminal: false,
            capabilities: DEFAULT_CAPABILITIES.to_vec(),
            user: None,
            confinement: Confinement::default(),
            join_network: None,
            cgroup: None,
            cgroup_join: Vec::new(),
        };
        let mut p = Prepared::new(&config).unwrap();
        let base = p.command_stack.as_ptr() as usize;
        let top = p.command_stack_top() as usize;
        assert_eq!(top % 16, 0);
        assert!(top <= base + init::COMMAND_STACK && top > base + init::COMMAND_STACK - 16);
        config.init = false;
        assert_eq!(Prepared::new(&config).unwrap().command_stack.capacity(), 0);
    }
}
