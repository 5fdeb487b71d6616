//! The signals a supervisor forwards to its container, read from a signalfd.
//!
//! They are blocked in every thread (so the mask must be set before the
//! runtime starts any) and read as data, with their siginfo. Blocking also
//! beats an inherited SIG_IGN: a shell starts background jobs with SIGINT
//! and SIGQUIT ignored, yet blocked signals are queued regardless.

use std::io;

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tokio::io::unix::AsyncFd;

/// Forwarded to the container with pidfd_send_signal.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The forwarded signals whose default action ends the process.
const ENDING: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// Runs `wait` with the signals that end a process unblocked in this
/// thread, then blocks again what was blocked: for a wait on the user's
/// input before anything is made (an `--env-file` FIFO waits for its
/// writer), which Ctrl-C or SIGTERM must end as they end any command.
/// `block` left their action the default one, and the other threads block
/// them: this one takes them and the process ends, with nothing of it
/// outliving it yet (one queued since `block` ends it at once).
pub fn ending_unblocked<T>(wait: impl FnOnce() -> T) -> T {
    let mut ending = SigSet::empty();
    for sig in ENDING {
        ending.add(sig);
    }
    let Ok(was) = ending.thread_swap_mask(SigmaskHow::SIG_UNBLOCK) else {
        return wait();
    };
    let result = wait();
    // A mask read back from the kernel is set again without error.
    let _ = was.thread_set_mask();
    result
}

/// The forwarded signals, blocked and waiting on a signalfd.
pub struct Blocked {
    fd: SignalFd,
}

/// Blocks the forwarded signals for this thread and every thread it starts
/// later, and ignores job-control stops: the supervisor must never be
/// stopped behind its container's back.
///
/// Call before starting the runtime or any other thread.
pub fn block() -> io::Result<Blocked> {
    let mut mask = SigSet::empty();
    for sig in FORWARDED {
        mask.add(sig);
        // SAFETY: installing SIG_DFL runs no handler code; it only clears an
        // inherited SIG_IGN.
        unsafe { signal(sig, SigHandler::SigDfl) }?;
    }
    for sig in [Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU] {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { signal(sig, SigHandler::SigIgn) }?;
    }
    mask.thread_block()?;
    let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    Ok(Blocked { fd })
}

/// The signalfd on the runtime.
pub struct Signals {
    fd: AsyncFd<SignalFd>,
}

impl Blocked {
    /// Registers with the current tokio runtime.
    pub fn into_async(self) -> io::Result<Signals> {
        // SAFETY: the AsyncFd owns the SignalFd, whose descriptor stays open
        // and unchanged until both are dropped together.
        let fd = unsafe { AsyncFd::register_with_interest(self.fd, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Signals { fd })
    }
}

impl Signals {
    /// The next signal's number.
    pub async fn recv(&mut self) -> io::Result<i32> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            match guard.get_inner_mut().read_signal() {
                Ok(Some(info)) => return Ok(info.ssi_signo as i32),
                Ok(None) => guard.clear_ready(),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
