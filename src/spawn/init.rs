//! `supervisor init -- CMD`: a minimal PID 1 for `run --init`.
//!
//! PID 1 of a pid namespace ignores every signal it has no handler for, and
//! orphans are re-parented to it. Most programs are written for neither, so
//! this init runs the command as its child, forwards the signals it gets,
//! reaps every zombie, and exits with the command's code.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Runs the command under this init; returns the exit code for the process.
pub fn run(command: &[OsString]) -> u8 {
    block_all_signals();
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    // std keeps the parent's signal mask across exec: without this the
    // command would start with every signal blocked, forwarded ones included.
    // SAFETY: sigprocmask on a stack set is async-signal-safe and allocates
    // nothing, as required between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(child) => child.id() as libc::pid_t,
        Err(err) => {
            let name = command[0].to_string_lossy();
            return match err.kind() {
                io::ErrorKind::NotFound => {
                    eprintln!("supervisor init: {name}: command not found");
                    127
                }
                _ => {
                    eprintln!("supervisor init: {name}: cannot execute: {err}");
                    126
                }
            };
        }
    };
    loop {
        let (signal, code) = wait_signal();
        if signal == libc::SIGCHLD {
            if let Some(status) = reap_all(child) {
                return status;
            }
        } else if code != libc::SI_KERNEL {
            // A signal from the kernel (a terminal's Ctrl-C, hangup or
            // resize) went to our whole process group, the command included:
            // forwarding it would deliver it twice.
            // SAFETY: kill on our own child's pid, which we have not reaped.
            unsafe { libc::kill(child, signal) };
        }
    }
}

fn block_all_signals() {
    // SAFETY: filling and installing a signal mask on the stack.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
}

/// The next signal and its si_code.
fn wait_signal() -> (libc::c_int, libc::c_int) {
    // SAFETY: sigwaitinfo with a full set fills a stack siginfo_t.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&all, &mut info);
            if sig > 0 {
                return (sig, info.si_code);
            }
        }
    }
}

/// Reaps every exited child; the command's exit code once it is among them.
fn reap_all(command: libc::pid_t) -> Option<u8> {
    let mut result = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on any child of ours, non-blocking.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return result;
        }
        if pid == command {
            result = Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status) as u8
            } else {
                128u8.wrapping_add(libc::WTERMSIG(status) as u8)
            });
        }
    }
}
