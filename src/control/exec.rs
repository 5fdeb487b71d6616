//! `supervisor exec`: a command inside a running container, with the
//! container's environment, working directory, user, capabilities and
//! seccomp filter as its record keeps them (docker's defaults for a record
//! of an older version), changed by `-e`, `-w` and `-u`.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caps::Capability;

use crate::cgroup;
use crate::confinement;
use crate::identity;
use crate::root_file;
use crate::spawn::{self, DEFAULT_CAPABILITIES, Ids, JoinConfig, Pidfd, SpawnError};
use crate::spec::DEFAULT_PATH;
use crate::state::{self, ExecContext, Record, Store};
use crate::values::quoted;

/// How long `exec` waits for a container's command to be released before
/// it refuses it as still starting. Until then its process sets up its
/// mount and IPC namespaces (the host's tree, unsealed, at first), which a
/// command must never join. `run -d` returns at the release, and the record
/// says so a moment later: the wait covers that moment, so that `run -d`
/// then `exec` never fails; a container held longer in its setup is refused
/// (docker's `exec` refuses a container not yet running).
const RELEASE_WAIT: Duration = Duration::from_secs(2);
const RELEASE_POLL: Duration = Duration::from_millis(5);

/// `exec`'s options as the user gave them.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub container: String,
    pub command: Vec<OsString>,
    /// K=V, or K alone for the caller's value.
    pub env: Vec<String>,
    pub workdir: Option<PathBuf>,
    pub user: Option<String>,
    pub interactive: bool,
    pub tty: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no such container: {0}")]
    Unknown(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("{0} is still starting")]
    Starting(String),
    #[error("{0} is a CNI attachment, not a container: its engine manages it (CNI DEL removes it)")]
    Attachment(String),
    #[error("exec into {name} needs root (CAP_SYS_ADMIN, to join its namespaces)")]
    Privileges { name: String },
    #[error("reading container {name}")]
    Proc {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid --workdir {}: must be an absolute path", quoted(.0))]
    Workdir(PathBuf),
    #[error("invalid command \"\": the program name is empty")]
    EmptyProgram,
    #[error("the record of {name} holds an unknown capability {capability:?}")]
    Capability { name: String, capability: String },
    /// A bad `-e`, refused as `run -e` refuses it.
    #[error(transparent)]
    Env(#[from] crate::spec::SpecError),
    #[error(transparent)]
    User(#[from] identity::Error),
    #[error(transparent)]
    UserFile(#[from] root_file::UserFilesError),
    #[error(transparent)]
    Security(#[from] confinement::Error),
    #[error(transparent)]
    State(#[from] state::Error),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("joining the cgroup of {name}")]
    Cgroup {
        name: String,
        #[source]
        source: cgroup::Error,
    },
}

impl ExecError {
    /// docker's: 1 for a container that is unknown or not running, 126 and
    /// 127 for a command that cannot run, 125 for exec's own failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            ExecError::Unknown(_) | ExecError::NotRunning(_) | ExecError::Attachment(_) => 1,
            ExecError::Spawn(err) => err.exit_code(),
            _ => 125,
        }
    }
}

/// Runs the command in the container and returns its exit code. Must be
/// called before this process starts any other thread (see spawn::join).
pub fn exec(state_dir: &Path, options: &ExecOptions) -> Result<u8, ExecError> {
    let target = &options.container;
    if options
        .command
        .first()
        .is_some_and(|program| program.is_empty())
    {
        return Err(ExecError::EmptyProgram);
    }
    // Before the state directory's check, which refuses root's directory
    // to another user: one who forgot sudo is told so.
    if !spawn::missing_capabilities(&[Capability::CAP_SYS_ADMIN]).is_empty() {
        return Err(ExecError::Privileges {
            name: target.clone(),
        });
    }
    // The record names the process whose namespaces the command joins.
    crate::state::check_dir(state_dir)?;
    let store = Store::new(state_dir);
    let started = Instant::now();
    let (record, process) = loop {
        let record = store
            .find_any(target)?
            .ok_or_else(|| ExecError::Unknown(target.clone()))?
            .live()
            .map_err(ExecError::NotRunning)?;
        if record.supervisor.is_none() {
            return Err(ExecError::Attachment(record.name));
        }
        let process = match record.container {
            Some(process) if !record.is_stale() => process,
            _ => return Err(ExecError::NotRunning(record.name)),
        };
        if !record.starting {
            break (record, process);
        }
        if started.elapsed() >= RELEASE_WAIT {
            return Err(ExecError::Starting(record.name));
        }
        std::thread::sleep(RELEASE_POLL);
    };
    let name = record.name.clone();
    let not_running = || ExecError::NotRunning(name.clone());
    let pidfd = Pidfd::of(&process)
        .map_err(|source| ExecError::Proc {
            name: name.clone(),
            source,
        })?
        .ok_or_else(not_running)?;
    let mut config = configure(state_dir, &record, process.pid, options)?;
    // Limited as the container is: its cgroup's files, open until the end.
    let paths = record.resources.as_ref().map_or(&[][..], |l| &l.cgroup[..]);
    let procs = cgroup::join_files(paths).map_err(|source| ExecError::Cgroup { name, source })?;
    config.cgroup_procs = procs.iter().map(|file| file.as_raw_fd()).collect();
    Ok(spawn::run_inside(&pidfd, &config)?.code())
}

/// The command's whole setup, from the record and the options.
fn configure(
    state_dir: &Path,
    record: &Record,
    pid: u32,
    options: &ExecOptions,
) -> Result<JoinConfig, ExecError> {
    let context = record.exec.as_deref().cloned().unwrap_or_default();
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let user_spec = options.user.as_ref().or(context.user.as_ref());
    let user = match user_spec {
        Some(spec) => {
            let (passwd, group) = root_file::user_files(&root, spec)?;
            Some(identity::resolve_user(spec, &passwd, &group)?)
        }
        None => None,
    };
    let mut env = environment(&context, &record.name);
    if let (Some(user), Some(_)) = (&user, &options.user) {
        set(&mut env, "HOME", user.home.clone());
    }
    if options.tty {
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".to_string());
        set(&mut env, "TERM", term);
    }
    for entry in &options.env {
        if let Some((key, value)) = crate::spec::parse_env(entry)? {
            set(&mut env, &key, value);
        }
    }
    let workdir = match &options.workdir {
        Some(dir) if !dir.is_absolute() => return Err(ExecError::Workdir(dir.clone())),
        Some(dir) => dir.clone(),
        None => PathBuf::from(context.workdir.as_deref().unwrap_or("/")),
    };
    let capabilities = capabilities(&context, &record.name)?;
    let seccomp = match context
        .seccomp_program
        .as_deref()
        .and_then(confinement::read_program)
    {
        Some(program) => Some(Arc::new(program)),
        // Gone from the cache, or a record of an earlier version: build the
        // profile again, as run did.
        None => confinement::parse(&context.security_opt)?
            .filter(&capabilities, Some(&state_dir.join("seccomp")))?,
    };
    Ok(JoinConfig {
        env,
        command: options.command.clone(),
        workdir,
        capabilities,
        user: user.map(|u| Ids {
            uid: u.uid,
            gid: u.gid,
            groups: u.groups,
        }),
        seccomp,
        terminal: options.tty && spawn::terminal_is_ours(),
        interactive: options.interactive,
        cgroup_procs: Vec::new(),
    })
}

/// The container's environment; docker's defaults for a record without one.
fn environment(context: &ExecContext, name: &str) -> Vec<(String, String)> {
    if !context.env.is_empty() {
        return context.env.clone();
    }
    vec![
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
        ("HOSTNAME".to_string(), name.to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ]
}

fn set(env: &mut Vec<(String, String)>, key: &str, value: String) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value));
}

fn capabilities(context: &ExecContext, name: &str) -> Result<Vec<Capability>, ExecError> {
    let Some(names) = &context.capabilities else {
        return Ok(DEFAULT_CAPABILITIES.to_vec());
    };
    names
        .iter()
        .map(|c| {
            Capability::from_str(c).map_err(|_| ExecError::Capability {
                name: name.to_string(),
                capability: c.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_options_override_the_containers_and_a_bare_key_takes_the_callers() {
        let context = ExecContext {
            env: vec![("PATH".into(), "/bin".into()), ("A".into(), "1".into())],
            ..ExecContext::default()
        };
        let mut env = environment(&context, "web");
        set(&mut env, "A", "2".into());
        assert_eq!(
            env,
            [("PATH".into(), "/bin".into()), ("A".into(), "2".into())]
        );
        let old = environment(&ExecContext::default(), "web");
        assert!(old.contains(&("HOSTNAME".into(), "web".into())));
    }

    #[test]
    fn a_record_without_capabilities_gets_dockers_default_set() {
        let caps = capabilities(&ExecContext::default(), "web").unwrap();
        assert_eq!(caps, DEFAULT_CAPABILITIES.to_vec());
        let context = ExecContext {
            capabilities: Some(vec!["CAP_NET_ADMIN".into()]),
            ..ExecContext::default()
        };
        assert_eq!(
            capabilities(&context, "web").unwrap(),
            [Capability::CAP_NET_ADMIN]
        );
    }
}
