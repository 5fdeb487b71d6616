//! Containers seen from another process: `ps`, `stop`, `rm`, `inspect`,
//! `logs`, `check` and `gc`. Each finds containers through their records (see `state`);
//! none of them trusts a pid without its start time.

mod check;
mod exec;
mod inspect;
mod kill;
mod logs;
mod ps;
mod rm;
mod stop;
mod template;

use std::future::Future;
use std::io;
use std::path::Path;

pub use check::check;
pub use exec::{ExecError, ExecOptions, exec};
pub use inspect::inspect;
pub use kill::{kill, parse_signal};
pub use logs::logs;
pub use ps::{PsOptions, ps};
pub use rm::rm;
pub use stop::{stop, stop_all};

use caps::Capability;

use crate::error_chain::Chain;
use crate::firewall;
use crate::ipam::{self, Pool};
use crate::netlink;
use crate::reconcile::{self, Reconciler};
use crate::spawn::{capability_names as names, missing_capabilities};
use crate::state;
use crate::values::quoted;
use crate::values::{Subnet, SubnetError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such container: {0}")]
    Unknown(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is running: stop it first, or rm -f")]
    Running(String),
    #[error("removing the log of {name}")]
    RemoveLog {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{0} is a CNI attachment, not a container: its engine manages it (CNI DEL removes it)")]
    Attachment(String),
    #[error(
        "invalid --filter {}: expected name=SUBSTRING, label=KEY or label=KEY=VALUE",
        quoted(.0)
    )]
    Filter(String),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error("{0} has no log: only a container started with run -d has one")]
    NoLog(String),
    #[error("{}", .0.iter().map(|e| Chain(e).to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<Error>),
    #[error("signalling {what} of {name}")]
    Signal {
        what: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{command} needs {} {why}: run it as root", names(.missing))]
    Privileges {
        command: &'static str,
        missing: Vec<Capability>,
        why: &'static str,
    },
    #[error("reading the container's network namespace")]
    Netns(#[source] io::Error),
    #[error(transparent)]
    State(#[from] state::Error),
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
    #[error(transparent)]
    Netlink(#[from] netlink::Error),
    #[error(transparent)]
    Firewall(#[from] firewall::Error),
    #[error(transparent)]
    Subnet(#[from] SubnetError),
    #[error(transparent)]
    Lease(#[from] ipam::Error),
    #[error("invalid --bridge {name:?}: {reason}")]
    Bridge { name: String, reason: &'static str },
    #[error("starting the async runtime")]
    Runtime(#[source] io::Error),
    #[error("writing the output")]
    Output(#[source] io::Error),
    /// A cleanup went on past these and did the rest: one line each.
    #[error(
        "could not remove {}:\n{}",
        if .0.len() == 1 { "1 thing".to_string() } else { format!("{} things", .0.len()) },
        .0.iter().map(|f| format!("  {}", Chain(f))).collect::<Vec<_>>().join("\n")
    )]
    Incomplete(Vec<reconcile::Failure>),
}

/// Ok when nothing failed; otherwise the one failure, or all of them.
fn all_or_failures(mut failures: Vec<Error>) -> Result<(), Error> {
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        _ => Err(Error::Several(failures)),
    }
}

/// A cleanup that left nothing behind; otherwise every failure.
fn complete(done: reconcile::Collected) -> Result<reconcile::Collected, Error> {
    match done.failed.is_empty() {
        true => Ok(done),
        false => Err(Error::Incomplete(done.failed)),
    }
}

impl Error {
    /// As docker's commands: 1 for every failure.
    pub fn exit_code(&self) -> u8 {
        1
    }
}

/// Refuses up front, naming what is missing and why, a command that would
/// otherwise fail half-way with a bare "Operation not permitted": the
/// containers, their namespaces and the firewall all belong to root.
fn require(command: &'static str, needed: &[Capability], why: &'static str) -> Result<(), Error> {
    let missing = missing_capabilities(needed);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Privileges {
            command,
            missing,
            why,
        })
    }
}

/// Gives back everything crashed supervisors left (see
/// `Reconciler::gc`), on the bridge `bridge` with subnet `subnet` for what
/// only the subnet tells; prints one line per thing removed, and one per
/// live lease kept although it is outside `subnet`. Goes on past what it
/// cannot remove, and then fails naming each.
pub fn gc(
    state_dir: &Path,
    bridge: &str,
    subnet: &str,
    out: &mut dyn io::Write,
) -> Result<(), Error> {
    if let Some(reason) = crate::network::bridge_name_problem(bridge) {
        return Err(Error::Bridge {
            name: bridge.to_string(),
            reason,
        });
    }
    let subnet: Subnet = subnet.parse()?;
    require(
        "gc",
        &[Capability::CAP_NET_ADMIN],
        "to remove links and firewall elements",
    )?;
    crate::state::check_dir(state_dir)?;
    let pool = Pool::new(state_dir, bridge, subnet)?;
    let collected = block_on(async { Ok(Reconciler::new(state_dir)?.gc(&pool).await?) })?;
    for what in &collected.removed {
        writeln!(out, "removed {what}").map_err(Error::Output)?;
    }
    for (name, id) in &collected.marked {
        writeln!(out, "marked record {name} ({id}): its id had no marker")
            .map_err(Error::Output)?;
    }
    for (bridge, kept) in &collected.kept {
        writeln!(out, "kept {kept} (bridge {bridge})").map_err(Error::Output)?;
    }
    complete(collected).map(drop)
}

/// Runs `work` on a current_thread runtime of its own.
fn block_on<T>(work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?
        .block_on(work)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::FileError;

    fn os(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
    }

    #[test]
    fn each_failure_prints_each_cause_once() {
        let err = Error::Several(vec![
            Error::Netlink(netlink::Error::Sysctl {
                path: "/proc/sys/net/ipv4/conf/sv0/route_localnet".into(),
                source: os(libc::ENOENT),
            }),
            Error::Lease(ipam::Error::File(FileError {
                path: "/run/supervisor/leases/sv0/.lock".into(),
                source: os(libc::EACCES),
            })),
            Error::Signal {
                what: "the supervisor",
                name: "web".into(),
                source: os(libc::EPERM),
            },
        ]);
        assert_eq!(
            Chain(&err).to_string(),
            "sysctl /proc/sys/net/ipv4/conf/sv0/route_localnet: No such file or directory (os error 2); \
             /run/supervisor/leases/sv0/.lock: Permission denied (os error 13); \
             signalling the supervisor of web: Operation not permitted (os error 1)"
        );
    }
}
