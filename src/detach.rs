//! `run -d`: the supervisor forks before it creates anything, and the
//! caller's process waits on a pipe until the container has started with
//! its ports published (then prints its name and exits 0) or start-up
//! failed (then prints the error and exits with its code). The child
//! leaves the caller's session and terminal, sends the container's output
//! and its own messages to the container's log, and runs the normal
//! lifecycle.
//!
//! Forking first keeps the container's creating thread the supervisor's
//! only main thread for its whole life: PR_SET_PDEATHSIG and the pidfd
//! follow that thread, so a fork after clone3 would break both.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::thread::JoinHandle;

use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe2, setsid};

use crate::container_log::{self, Writer};
use crate::error_chain::Chain;
use crate::milestones::pause_at;
use crate::spec::{RunOptions, RunSpec};
use crate::state::{self, Store};
use crate::supervisor::{self, Error};

/// What the caller of `run -d` learns: the container's name, or why it
/// did not start and the code to exit with.
#[derive(Debug)]
pub enum Outcome {
    Started(String),
    Failed { code: u8, message: String },
}

/// Starts the container in the background, its output in a log capped at
/// `log_max_size` bytes. Returns in the caller's process only.
pub fn run(options: RunOptions, log_max_size: u64) -> Result<Outcome, Error> {
    let mut spec = supervisor::prepare(options)?;
    spec.detached = true;
    let log = Writer::create(&spec.state_dir, &spec.name, log_max_size).map_err(|e| {
        name_taken(&spec).unwrap_or(Error::Detach("creating the container's log", e))
    })?;
    let (status_read, status_write) = match pipe2(OFlag::O_CLOEXEC) {
        Ok(pipe) => pipe,
        Err(e) => return Err(discarding(log, Error::Detach("making a pipe", e.into()))),
    };
    // SAFETY: no thread but this one exists yet (the runtime and the log
    // pump start after), so the child may run ordinary code.
    let forked = match unsafe { fork() } {
        Ok(forked) => forked,
        Err(e) => return Err(discarding(log, Error::Detach("forking", e.into()))),
    };
    match forked {
        ForkResult::Parent { .. } => {
            drop(status_write);
            // Not dropped: dropping unlocks, and the lock (on the open file
            // the child shares) must stay the child's; exiting only closes.
            std::mem::forget(log);
            Ok(wait_for_start(status_read, spec.name))
        }
        ForkResult::Child => {
            drop(status_read);
            let code = background(spec, log, status_write);
            std::process::exit(i32::from(code))
        }
    }
}

/// A run that did not start leaves no log: the caller has its error.
fn discarding(log: Writer, err: Error) -> Error {
    let _ = log.discard();
    err
}

/// The live container whose log is in the way has the name: say that, as
/// a foreground run would.
fn name_taken(spec: &RunSpec) -> Option<Error> {
    let record = Store::new(&spec.state_dir).find(&spec.name).ok()??;
    if record.name != spec.name || record.is_stale() {
        return None;
    }
    Some(Error::State(state::Error::NameTaken {
        name: record.name,
        id: record.id,
        pid: record.supervisor.pid,
    }))
}

/// The caller's side: one message on the pipe, or none when the child died.
fn wait_for_start(status: OwnedFd, name: String) -> Outcome {
    let mut bytes = Vec::new();
    let read = File::from(status).read_to_end(&mut bytes);
    match bytes.split_first() {
        Some((0, _)) => Outcome::Started(name),
        Some((&code, message)) => Outcome::Failed {
            code,
            message: String::from_utf8_lossy(message).into_owned(),
        },
        None => Outcome::Failed {
            code: 125,
            message: format!(
                "the background supervisor of {name} died while starting it{}; \
                 see `supervisor logs {name}`",
                read.err().map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        },
    }
}

/// The background supervisor: its own session, its stdio the log, the
/// lifecycle; returns its exit code.
fn background(spec: RunSpec, log: Writer, status: OwnedFd) -> u8 {
    let mut status = Some(File::from(status));
    let report = |status: &mut Option<File>, code: u8, message: &str| {
        if let Some(mut file) = status.take() {
            let mut bytes = vec![code];
            bytes.extend_from_slice(message.as_bytes());
            let _ = file.write_all(&bytes);
        }
    };
    let pump = match redirect() {
        Ok(read) => log.pump(read),
        Err(err) => {
            let _ = log.discard();
            Err(err)
        }
    };
    let pump = match pump {
        Ok(pump) => pump,
        Err(err) => {
            // A pump thread that failed to start took the log with it: its
            // files stay, for `gc`.
            let message = format!("sending the output to the log: {err}");
            report(&mut status, 125, &message);
            return 125;
        }
    };
    let log_paths = container_log::Paths::new(&spec.state_dir, &spec.name);
    let mut pump = Some(pump);
    let started = || {
        report(&mut status, 0, "");
        // Started: the previous run's log, set aside until now, goes (its
        // exited record goes in `supervisor`, for every run; not refused as
        // docker does: runs by name go on working).
        let _ = log_paths.forget_previous();
    };
    // Ended: the log is whole before the exited record says so, and its
    // writer goes with the record (see `supervisor::lifecycle`).
    let ended = || pump.take().map(end_log);
    let result = supervisor::start(spec, started, ended);
    let (code, failed) = match result {
        Ok(code) => (code, None),
        Err(err) => {
            let message = Chain(&err).to_string();
            crate::error_chain::eprint_line(format_args!("supervisor: {message}"));
            (err.exit_code(), Some(message))
        }
    };
    // Unless `ended` has ended it.
    let log = pump.map(end_log);
    if let Some(message) = failed {
        // Not started: its log goes before the caller hears, so the caller
        // returns to a state directory as it was. The writer still holds
        // the lock, so a new run of the same name keeps its own files.
        if status.is_some() {
            if let Some(Ok(log)) = log {
                let _ = log.discard();
            }
        }
        report(&mut status, code, &message);
    }
    code
}

/// Waits for the log's pump to write the last of the output: it reads to
/// the end once the last copy of the pipe is closed; the container's are
/// gone with it, these are the last. Gives the writer back, its lock held.
fn end_log(pump: JoinHandle<Writer>) -> std::thread::Result<Writer> {
    pause_at("log ending");
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = dup2_stdout(&null);
        let _ = dup2_stderr(&null);
    }
    pump.join()
}

/// Leaves the caller's session and terminal; stdin from /dev/null, stdout
/// and stderr into a pipe; returns its read end, for the log's pump.
fn redirect() -> io::Result<OwnedFd> {
    setsid()?;
    let null = File::open("/dev/null")?;
    dup2_stdin(&null)?;
    let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
    // dup2 clears CLOEXEC: the container inherits 1 and 2.
    dup2_stdout(&write)?;
    dup2_stderr(&write)?;
    drop(write);
    Ok(read)
}
